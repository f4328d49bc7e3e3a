"""CustomResourceDefinitions generated from the pydantic models: the one source of the schema.

`crd_manifests()` turns each spec/status model's JSON schema into a Kubernetes structural
schema: refs inlined, Optional collapsed, Literal -> enum, `str | int` -> int-or-string,
class docstrings and Field descriptions -> description (so `kubectl explain` documents every
field), `cel` class rules -> x-kubernetes-validations. `quantfleet generate` writes them under
crds/ and the Helm chart; `quantfleet generate --check` (CI) fails when a copy is stale.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel

from quantfleet.api.common import API_GROUP, API_VERSION, KubeModel
from quantfleet.api.inferenceservice import InferenceServiceSpec, InferenceServiceStatus
from quantfleet.api.quantizedmodel import QuantizedModelSpec, QuantizedModelStatus

_DROP = {"title", "additionalProperties", "format"}


def _cel_by_title() -> dict[str, tuple[tuple[str, str], ...]]:
    """CEL rules keyed by model class name (the JSON-schema title pydantic emits)."""
    found: dict[str, tuple[tuple[str, str], ...]] = {}

    def walk(cls: type[BaseModel]) -> None:
        if cls.__name__ in found:
            return
        found[cls.__name__] = getattr(cls, "cel", ())
        for field in cls.model_fields.values():
            for arg in _model_args(field.annotation):
                walk(arg)

    for root in (QuantizedModelSpec, QuantizedModelStatus, InferenceServiceSpec, InferenceServiceStatus):
        walk(root)
    return found


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        out.extend(_model_args(arg))
    return out


def structural(model: type[KubeModel]) -> dict[str, Any]:
    """The Kubernetes structural OpenAPI v3 schema for one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.get("$defs", {})
    cel = _cel_by_title()
    return _convert(raw, defs, cel)


def _convert(node: dict[str, Any], defs: dict[str, Any], cel: dict[str, tuple[tuple[str, str], ...]]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs, cel)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        types = sorted(o.get("type", "") for o in options)
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if types == ["integer", "string"]:
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
            if "description" in rest:
                out["description"] = rest["description"]
            return out
        if len(options) != 1:
            raise ValueError(f"cannot express union {node} in a structural schema")
        rest.pop("default", None)  # an Optional's default is None: leave the field unset
        return _convert({**options[0], **rest}, defs, cel)

    out = {}
    title = node.get("title")
    if "description" in node:
        out["description"] = " ".join(str(node["description"]).split())
    if "const" in node:
        out["type"] = "string"
        out["enum"] = [node["const"]]
    for key, value in node.items():
        if key in _DROP or key in ("description", "properties", "items", "required", "$defs", "const"):
            continue
        if key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "minLength" and node.get("type") == "array":
            out["minItems"] = value
        elif key == "maxLength" and node.get("type") == "array":
            out["maxItems"] = value
        elif key == "minLength" and node.get("type") == "object":
            out["minProperties"] = value
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _convert(v, defs, cel) for k, v in node["properties"].items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], defs, cel)
    if "items" in node:
        out["items"] = _convert(node["items"], defs, cel)
    rules = cel.get(title or "", ()) if "properties" in node else ()
    if rules:
        out["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    return out


def _condition_column(ctype: str, field: str) -> str:
    return f'.status.conditions[?(@.type=="{ctype}")].{field}'


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: type[KubeModel],
    status: type[KubeModel],
    description: str,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural(spec),
            "status": structural(status),
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["quantfleet"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crd_manifests() -> dict[str, dict[str, Any]]:
    """File name -> CRD manifest."""
    ready = {"name": "Ready", "type": "string", "jsonPath": _condition_column("Ready", "status")}
    reason = {"name": "Reason", "type": "string", "jsonPath": _condition_column("Ready", "reason"), "priority": 1}
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    qm = _crd(
        "QuantizedModel",
        "quantizedmodels",
        "qm",
        QuantizedModelSpec,
        QuantizedModelStatus,
        "QuantizedModel calibrates a base model into a quantized checkpoint on a suitable GPU pool.",
        [
            ready,
            {"name": "Precision", "type": "string", "jsonPath": ".spec.scheme"},
            {"name": "KV", "type": "string", "jsonPath": ".status.kvCacheDtype"},
            {"name": "Tool", "type": "string", "jsonPath": ".status.tool"},
            {"name": "Pool", "type": "string", "jsonPath": ".status.pool"},
            {"name": "Size", "type": "string", "jsonPath": ".status.checkpoint.size"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            reason,
            age,
        ],
    )
    isvc = _crd(
        "InferenceService",
        "inferenceservices",
        "qisvc",
        InferenceServiceSpec,
        InferenceServiceStatus,
        "InferenceService rolls out vLLM on GPU pools with a precision and KV-cache dtype chosen per pool.",
        [
            ready,
            {"name": "Precision", "type": "string", "jsonPath": ".status.precision"},
            {"name": "Runtime", "type": "string", "jsonPath": ".status.runtime", "priority": 1},
            {"name": "Checkpoint", "type": "string", "jsonPath": ".status.checkpointFormat"},
            {"name": "KV", "type": "string", "jsonPath": ".status.kvCacheDtype"},
            {"name": "Pools", "type": "string", "jsonPath": ".status.pools"},
            {"name": "Compute", "type": "string", "jsonPath": ".status.compute", "priority": 1},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
            reason,
            age,
        ],
    )
    return {
        f"{API_GROUP}_quantizedmodels.yaml": qm,
        f"{API_GROUP}_inferenceservices.yaml": isvc,
    }

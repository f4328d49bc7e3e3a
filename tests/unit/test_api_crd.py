"""The CRDs are generated from the API models: every field documented, rules present, copies fresh."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from quantfleet.api.crd import crd_manifests
from quantfleet.api.inferenceservice import InferenceServiceSpec
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.cli.generate import rendered


def _walk(schema: dict[str, Any], path: str):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", sorted(crd_manifests()))
def test_every_field_has_a_description(name: str) -> None:
    schema = crd_manifests()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [
        path
        for path, node in _walk(schema["properties"]["spec"], "spec")
        if "description" not in node and not path.endswith("[]") and not path.endswith("{}")
    ]
    missing += [
        p for p, n in _walk(schema["properties"]["status"], "status") if "description" not in n and p[-1] not in "]}"
    ]
    assert missing == []


@pytest.mark.parametrize("name", sorted(crd_manifests()))
def test_schema_is_structural(name: str) -> None:
    schema = crd_manifests()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, ""):
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_printer_columns_and_short_names() -> None:
    crds = crd_manifests()
    qm = crds["quantfleet.io_quantizedmodels.yaml"]["spec"]
    isvc = crds["quantfleet.io_inferenceservices.yaml"]["spec"]
    assert qm["names"]["shortNames"] == ["qm"] and isvc["names"]["shortNames"] == ["qisvc"]
    for crd in (qm, isvc):
        cols = [c["name"] for c in crd["versions"][0]["additionalPrinterColumns"]]
        assert {"Ready", "Precision", "KV", "Age"} <= set(cols)
        assert crd["versions"][0]["subresources"] == {"status": {}}


def test_generated_copies_are_fresh() -> None:
    stale = [str(p) for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    assert stale == [], "run `make generate`"


def test_cel_rules_are_emitted() -> None:
    text = "\n".join(rendered()[p] for p in rendered())
    assert "set exactly one of huggingFace or uri" in text
    assert "set exactly one of quantizedModelRef or uri" in text
    assert "must not set flags the operator derives" in text


def test_spec_parses_and_refuses_unknown_fields() -> None:
    spec = QuantizedModelSpec.model_validate(
        {"source": {"huggingFace": {"repo": "Qwen/Qwen3-30B-A3B"}}, "scheme": "nvfp4", "moe": {"minTokensPerExpert": 4}}
    )
    assert spec.moe is not None and spec.moe.min_tokens_per_expert == 4
    with pytest.raises(ValidationError):
        QuantizedModelSpec.model_validate({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "bogus": 1})
    isvc = InferenceServiceSpec.model_validate({"model": {"quantizedModelRef": {"name": "q"}}})
    assert isvc.precision == "auto" and isvc.kv_cache_dtype == "auto" and isvc.gpu_memory_utilization == 0.92

"""Builders and readers shared by the operator's e2e tests (QuantizedModel, InferenceService)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from quantfleet_dev.testing import Sandbox, operator_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "quantfleet.io", "v1alpha1"
MODELS = ROOT / "tests" / "fixtures" / "models"


@contextlib.contextmanager
def running_operator(sb: Sandbox, ns: str) -> Iterator[Any]:
    with operator_process(sb.kubeconfig, ns) as proc:  # event-driven: the resync safety net (10 min) never fires
        yield proc


def model_config(sb: Sandbox, ns: str, model: str) -> str:
    name = f"{model}-config"
    body = {"metadata": {"name": name}, "data": {"config.json": (MODELS / model / "config.json").read_text()}}
    sb.core.create_namespaced_config_map(ns, body)
    return name


def qm(name: str, scheme: str = "fp8-dynamic", model: str | None = "llama-3.1-8b", **spec: Any) -> dict[str, Any]:
    source: dict[str, Any] = {"huggingFace": {"repo": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main"}}
    if model:
        source["modelConfigRef"] = {"name": f"{model}-config"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QuantizedModel",
        "metadata": {"name": name},
        "spec": {"source": source, "scheme": scheme, **spec},
    }


def isvc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name}, "spec": spec}


def apply(sb: Sandbox, ns: str, obj: dict[str, Any], check: bool = True) -> Any:
    return sb.kubectl("apply", "--validate=strict", "-n", ns, "-f", "-", input=yaml.safe_dump(obj), check=check)


def get(sb: Sandbox, ns: str, plural: str, name: str) -> dict[str, Any]:
    return sb.custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)


def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def wait_cond(
    sb: Sandbox,
    ns: str,
    plural: str,
    name: str,
    ctype: str,
    status: str,
    reason: str | None = None,
    timeout: float = 90,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(sb, ns, plural, name)
        c = cond(obj, ctype)
        ok = c.get("status") == status and (reason is None or c.get("reason") == reason)
        return obj if ok else None

    try:
        return wait_for(check, timeout, f"{plural}/{name} {ctype}={status} {reason or ''}")
    except AssertionError:
        with contextlib.suppress(ApiException):
            print(json.dumps(get(sb, ns, plural, name).get("status"), indent=1))
        raise


def jobs(sb: Sandbox, ns: str, qm_name: str) -> list[Any]:
    sel = f"quantfleet.io/quantizedmodel={qm_name},app.kubernetes.io/component=calibration"
    return [j for j in sb.batch.list_namespaced_job(ns, label_selector=sel).items if not j.metadata.deletion_timestamp]


def node_labels(sb: Sandbox, node: str) -> dict[str, str]:
    return sb.core.read_node(node).metadata.labels or {}


def events(sb: Sandbox, ns: str, name: str) -> list[Any]:
    return [e for e in sb.core.list_namespaced_event(ns).items if e.involved_object.name == name]


def merge_patch(sb: Sandbox, ns: str, plural: str, name: str, patch: dict[str, Any]) -> None:
    sb.kubectl("patch", f"{plural}.{GROUP}", name, "-n", ns, "--type=merge", "-p", json.dumps(patch))


# Every quantfleet-managed Deployment an e2e test's namespace held when it was torn down (the namespace fixture adds
# them): tests/e2e/test_vllm_parses_deployments.py runs them all through vLLM's own parser at the end of the run.
PRODUCED_DEPLOYMENTS: list[dict[str, Any]] = []


def remember_deployments(sb: Sandbox, ns: str) -> None:
    with contextlib.suppress(ApiException):
        items = sb.apps.list_namespaced_deployment(ns, label_selector="app.kubernetes.io/managed-by=quantfleet").items
        PRODUCED_DEPLOYMENTS.extend(sb.api.sanitize_for_serialization(d) for d in items)

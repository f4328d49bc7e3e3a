"""Rendered manifests: golden files per case, plus invariants over every rendered pod.

Regenerate the goldens with `UPDATE_GOLDEN=1 make test-unit` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantfleet.api import vllm_flags
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.render.calibration import CalibrationJobInput, expected_job, job_name, storage_target
from quantfleet.render.vllm import (
    STARTUP_BASE_SECONDS,
    CpuRollout,
    ModelLocation,
    PoolRollout,
    ServiceInput,
    expected_deployment,
    expected_pdb,
    expected_service,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# reconcile-* cases pin a whole reconcile Outcome: tests/unit/test_reconcile_golden.py runs them.
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists() and not p.name.startswith("reconcile-"))


def render_case(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["kind"] == "calibration-job":
        recipe = CalibrationRecipe.model_validate(spec["recipe"])
        recipe_hash = recipe.content_hash()
        target = storage_target(
            spec["name"], spec.get("destination"), recipe_hash, spec.get("storage_credentials_secret")
        )
        recipe = recipe.model_copy(update={"output_uri": target.uri})
        inp = CalibrationJobInput(
            name=spec["name"],
            namespace=spec["namespace"],
            uid=spec["uid"],
            recipe=recipe,
            recipe_hash=recipe_hash,
            checkpoint_format=spec["checkpoint_format"],
            storage=target,
            image=spec["image"],
            node_selector=spec["node_selector"],
            gpu_resource=spec["gpu_resource"],
            gpu_count=spec["gpu_count"],
            resources=spec.get("resources"),
            source_claim=spec.get("source_claim"),
            source_credentials_secret=spec.get("source_credentials_secret"),
            retry_token=spec.get("retry_token"),
            pod_labels=spec.get("pod_labels") or {},
        )
        return [expected_job(inp)]
    svc = ServiceInput(**{**spec["service"], "extra_args": tuple(spec["service"].get("extra_args", ()))})
    r = spec["rollout"]
    cpu = CpuRollout(**r["cpu"]) if r.get("cpu") else None
    roll = PoolRollout(**{**r, "model": ModelLocation(r["model"]), "cpu": cpu})
    return [expected_deployment(svc, roll), expected_service(svc), expected_pdb(svc)]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    spec = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())
    got = yaml.safe_dump_all(render_case(spec), sort_keys=True)
    path = GOLDEN / case / "expected.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{case}: no expected.yaml; run with UPDATE_GOLDEN=1 and review it"
    assert got == path.read_text(), f"{case}: rendered output changed; UPDATE_GOLDEN=1 to accept"


def _pods(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objs if o["kind"] in ("Job", "Deployment")]


@pytest.mark.parametrize("case", CASES)
def test_pod_invariants(case: str) -> None:
    spec = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())
    objs = render_case(spec)
    for obj in objs:
        refs = obj["metadata"]["ownerReferences"]
        assert len(refs) == 1 and refs[0]["controller"] is True and refs[0]["uid"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "quantfleet"
    for pod in _pods(objs):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["nodeSelector"], "pods must be pinned to their pool"
        cpu_pool = bool((spec.get("rollout") or {}).get("cpu"))
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            gpu = [k for k in c["resources"].get("limits", {}) if k.endswith("/gpu")]
            if cpu_pool:
                # vLLM's CPU backend: no GPUs, no GPU tolerations, kept off GPU nodes, Guaranteed CPU/memory
                assert gpu == [] and not [t for t in pod["tolerations"] if t["key"].endswith("/gpu")]
                terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                keys = {e["key"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
                assert "nvidia.com/gpu.product" in keys and "amd.com/gpu.product-name" in keys
                for r in ("cpu", "memory"):
                    assert c["resources"]["requests"][r] == c["resources"]["limits"][r]
                env = {e["name"]: e.get("value") for e in c["env"]}
                assert int(env["VLLM_CPU_KVCACHE_SPACE"]) >= 1
                assert "--gpu-memory-utilization" not in c["args"]
                continue
            assert len(gpu) == 1 and int(c["resources"]["limits"][gpu[0]]) >= 1
            assert c["resources"]["limits"][gpu[0]] == c["resources"]["requests"][gpu[0]]
            for env in c.get("env", []):
                assert "valueFrom" in env or not any(s in env["name"] for s in ("TOKEN", "SECRET", "KEY")), env
            assert "sh" not in c.get("command", [])[:1] and "bash" not in c.get("command", [])[:1]


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("vllm")])
def test_vllm_args_within_contract(case: str) -> None:
    spec = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())
    dep = render_case(spec)[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == list(vllm_flags.VLLM_COMMAND)
    extra = len(spec["service"].get("extra_args", []))
    ours = c["args"][: len(c["args"]) - extra]
    assert vllm_flags.problems_in_args(ours) == []
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == vllm_flags.HEALTH_PATH
    # the startup budget is sized to the weights: at least the fixed start, more for bigger models
    budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
    weights = spec["rollout"].get("weights_gib", 0)
    assert STARTUP_BASE_SECONDS <= budget <= STARTUP_BASE_SECONDS + weights * 10 + c["startupProbe"]["periodSeconds"]
    assert (budget > STARTUP_BASE_SECONDS) == (weights > 0)
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == vllm_flags.METRICS_PATH


def test_job_name_changes_with_recipe_and_retry_only() -> None:
    a = job_name("qm", "a" * 64, None)
    assert a == job_name("qm", "a" * 64, None)
    assert a != job_name("qm", "b" * 64, None)
    assert a != job_name("qm", "a" * 64, "1")
    assert len(job_name("q" * 80, "a" * 64, None)) <= 63


def test_recipe_travels_as_argv_not_shell() -> None:
    spec = yaml.safe_load((GOLDEN / "calibration-job-fp8-h100" / "input.yaml").read_text())
    c = render_case(spec)[0]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["quantfleet", "calibrate"] and c["args"][0] == "--recipe-json"
    assert CalibrationRecipe.from_json(c["args"][1]).scheme == "fp8-dynamic"


def test_output_uri_excluded_from_hash_but_storage_follows_hash() -> None:
    base = dict(source_uri="hf://a/b@c", scheme="fp8-dynamic", tool="llm-compressor", tool_version="1", output_uri="")
    r1 = CalibrationRecipe.model_validate(base)
    r2 = CalibrationRecipe.model_validate({**base, "output_uri": "/checkpoints/x"})
    assert r1.content_hash() == r2.content_hash()
    r3 = CalibrationRecipe.model_validate({**base, "seed": 1})
    assert r3.content_hash() != r1.content_hash()
    assert storage_target("m", None, r1.content_hash(), None).uri == f"pvc://m-checkpoints/m-{r1.content_hash()[:8]}"

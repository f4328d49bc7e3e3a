"""QuantizedModel end to end: real API server, Job controller and scheduler; KWOK plays the pods.

Calibration pods finish with a *simulated* result manifest (see the sandbox's fleet.yaml); the
real calibration program is tested in tests/calibration and on a GPU (bench/gpu_calibration.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from qf import (
    apply,
    cond,
    events,
    get,
    jobs,
    merge_patch,
    model_config,
    node_labels,
    qm,
    running_operator,
    wait_cond,
)

from quantfleet_dev.testing import Sandbox, wait_for

PLURAL = "quantizedmodels"


@pytest.fixture
def op(sandbox: Sandbox, namespace: str) -> Any:
    model_config(sandbox, namespace, "llama-3.1-8b")
    model_config(sandbox, namespace, "qwen3-30b-a3b")
    with running_operator(sandbox, namespace) as proc:
        yield proc


def job_pod_node(sb: Sandbox, ns: str, job: str) -> str:
    def scheduled() -> str | None:
        pods = sb.core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items
        return pods[0].spec.node_name if pods and pods[0].spec.node_name else None

    return wait_for(scheduled, 60, f"pod of {job} scheduled")


def test_fp8_calibrates_on_hopper_and_reports_the_checkpoint(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, qm("llama-fp8", "fp8-dynamic", kvCacheScales=True))
    obj = wait_cond(sandbox, namespace, PLURAL, "llama-fp8", "Calibrating", "True")
    job = obj["status"]["jobName"]
    node = job_pod_node(sandbox, namespace, job)
    assert node_labels(sandbox, node)["nvidia.com/gpu.family"] in ("hopper", "blackwell")
    assert node_labels(sandbox, node)["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    obj = wait_cond(sandbox, namespace, PLURAL, "llama-fp8", "Ready", "True", "CheckpointReady")
    st = obj["status"]
    assert st["phase"] == "Ready" and st["observedGeneration"] == obj["metadata"]["generation"]
    assert st["checkpoint"]["simulated"] is True and st["checkpoint"]["format"] == "compressed-tensors"
    assert st["checkpoint"]["uri"].startswith("pvc://llama-fp8-checkpoints/llama-fp8-")
    assert st["checkpoint"]["recipeHash"] == st["recipeHash"] and len(st["checkpoint"]["sha256"]) == 64
    assert st["tool"] == "llm-compressor" and st["kvCacheDtype"] == "fp8_e4m3" and st["pool"] == "h100-sxm"
    pod = sandbox.batch.read_namespaced_job(job, namespace).spec.template.spec
    c = pod.containers[0]
    assert c.command == ["quantfleet", "calibrate"] and c.args[0] == "--recipe-json"
    assert c.resources.limits["nvidia.com/gpu"] == "1" and pod.security_context.run_as_non_root is True
    out = sandbox.kubectl("get", "qm", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header[:6] == ["NAME", "READY", "PRECISION", "KV", "TOOL", "POOL"], out
    assert "fp8-dynamic" in out and "True" in out and "h100-sxm" in out
    assert any(e.reason == "CalibrationStarted" for e in events(sandbox, namespace, "llama-fp8"))


def test_nvfp4_moe_lands_on_blackwell_with_modelopt(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, qm("qwen-nvfp4", "nvfp4", "qwen3-30b-a3b", moe={"minTokensPerExpert": 8}))
    obj = wait_cond(sandbox, namespace, PLURAL, "qwen-nvfp4", "Ready", "True")
    node = job_pod_node(sandbox, namespace, obj["status"]["jobName"])
    assert node_labels(sandbox, node)["nvidia.com/gpu.product"] == "NVIDIA-B200"
    assert obj["status"]["tool"] == "modelopt" and obj["status"]["checkpoint"]["format"] == "modelopt"
    assert "Blackwell" in obj["status"]["placementReason"] or "blackwell" in obj["status"]["placementReason"]
    job = sandbox.batch.read_namespaced_job(obj["status"]["jobName"], namespace)
    recipe = job.spec.template.spec.containers[0].args[1]
    assert "re:.*mlp.gate$" in recipe and '"min_tokens_per_expert":8' in recipe


def test_failed_calibration_reports_pod_message_and_does_not_loop(sandbox: Sandbox, namespace: str, op: Any) -> None:
    failing = {
        "labels": {"sandbox.quantfleet.io/outcome": "fail"},
        "annotations": {
            "sandbox.quantfleet.io/exit-code": "3",
            "sandbox.quantfleet.io/message": "layer 5 expert 7 saw 0 tokens (min 8)",
        },
    }
    apply(sandbox, namespace, qm("broken", podMetadata=failing))
    obj = wait_cond(sandbox, namespace, PLURAL, "broken", "Failed", "True", "CalibrationFailed")
    msg = cond(obj, "Failed")["message"]
    assert "exited with code 3" in msg and "expert 7 saw 0 tokens" in msg, msg
    assert cond(obj, "Ready")["status"] == "False" and obj["status"]["phase"] == "Failed"
    first = [j.metadata.name for j in jobs(sandbox, namespace, "broken")]
    time.sleep(8)  # several resync periods: no retry loop
    assert [j.metadata.name for j in jobs(sandbox, namespace, "broken")] == first
    # An explicit retry makes a new Job (and deletes the failed one).
    merge_patch(sandbox, namespace, PLURAL, "broken", {"metadata": {"annotations": {"quantfleet.io/retry": "1"}}})
    # the new Job is created, then the failed one deleted, in one pass: wait for that pass to finish, not just start
    wait_for(
        lambda: len(names := [j.metadata.name for j in jobs(sandbox, namespace, "broken")]) == 1 and names != first,
        60,
        "one retry Job, the failed one deleted",
    )


def test_same_recipe_reuses_the_checkpoint(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, qm("first", "w4a16", algorithm="gptq"))
    first = wait_cond(sandbox, namespace, PLURAL, "first", "Ready", "True")
    apply(sandbox, namespace, qm("second", "w4a16", algorithm="gptq"))
    second = wait_cond(sandbox, namespace, PLURAL, "second", "Ready", "True", "CheckpointReused")
    assert second["status"]["checkpoint"]["uri"] == first["status"]["checkpoint"]["uri"]
    assert second["status"]["checkpoint"]["reusedFrom"] == "first"
    assert jobs(sandbox, namespace, "second") == []
    # a different recipe (seed) is not reused
    apply(sandbox, namespace, qm("third", "w4a16", algorithm="gptq", calibration={"seed": 7}))
    third = wait_cond(sandbox, namespace, PLURAL, "third", "Ready", "True", "CheckpointReady")
    assert third["status"]["recipeHash"] != first["status"]["recipeHash"]


def test_spec_change_mid_calibration_replaces_the_job(sandbox: Sandbox, namespace: str, op: Any) -> None:
    slow = {"annotations": {"sandbox.quantfleet.io/duration": "25s"}}
    apply(sandbox, namespace, qm("moving", podMetadata=slow))
    obj = wait_cond(sandbox, namespace, PLURAL, "moving", "Calibrating", "True")
    old_job, old_hash = obj["status"]["jobName"], obj["status"]["recipeHash"]
    merge_patch(
        sandbox,
        namespace,
        PLURAL,
        "moving",
        {
            "spec": {
                "calibration": {"samples": 256},
                "podMetadata": {"annotations": {"sandbox.quantfleet.io/duration": "2s"}},
            }
        },
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "moving", "Ready", "True", timeout=90)
    assert obj["status"]["recipeHash"] != old_hash and obj["status"]["jobName"] != old_job
    wait_for(lambda: old_job not in [j.metadata.name for j in jobs(sandbox, namespace, "moving")], 30, "old Job gone")
    assert any(e.reason == "ObsoleteJobDeleted" for e in events(sandbox, namespace, "moving"))


def test_operator_restart_mid_calibration(sandbox: Sandbox, namespace: str) -> None:
    model_config(sandbox, namespace, "llama-3.1-8b")
    slow = {"annotations": {"sandbox.quantfleet.io/duration": "15s"}}
    with running_operator(sandbox, namespace):
        apply(sandbox, namespace, qm("restart", podMetadata=slow))
        obj = wait_cond(sandbox, namespace, PLURAL, "restart", "Calibrating", "True")
    # operator gone while the Job runs; a new one must adopt it, not create another
    with running_operator(sandbox, namespace):
        done = wait_cond(sandbox, namespace, PLURAL, "restart", "Ready", "True", timeout=90)
        assert done["status"]["jobName"] == obj["status"]["jobName"]
        assert [j.metadata.name for j in jobs(sandbox, namespace, "restart")] == [obj["status"]["jobName"]]
        ready_since = cond(done, "Ready")["lastTransitionTime"]
    with running_operator(sandbox, namespace):
        time.sleep(5)
        again = get(sandbox, namespace, PLURAL, "restart")
        assert cond(again, "Ready")["lastTransitionTime"] == ready_since  # status not lost or churned
        assert len(jobs(sandbox, namespace, "restart")) == 1


@pytest.mark.parametrize("retention", ["Retain", "Delete"])
def test_delete_honours_retention(sandbox: Sandbox, namespace: str, op: Any, retention: str) -> None:
    apply(sandbox, namespace, qm("gone", storage={"retention": retention, "size": "10Gi"}))
    wait_cond(sandbox, namespace, PLURAL, "gone", "Ready", "True")
    assert sandbox.core.read_namespaced_persistent_volume_claim("gone-checkpoints", namespace)
    sandbox.kubectl("delete", "qm", "gone", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: jobs(sandbox, namespace, "gone") == [], 60, "Jobs garbage-collected")
    pvcs = [
        p.metadata.name
        for p in sandbox.core.list_namespaced_persistent_volume_claim(namespace).items
        if not p.metadata.deletion_timestamp
    ]
    if retention == "Retain":
        assert "gone-checkpoints" in pvcs
    else:
        assert "gone-checkpoints" not in pvcs


def test_nvfp4_without_blackwell_explains_or_falls_back(sandbox: Sandbox, namespace: str, op: Any) -> None:
    b200 = [n.metadata.name for n in sandbox.core.list_node(label_selector="nvidia.com/gpu.product=NVIDIA-B200").items]
    assert b200, "the default fleet has B200 nodes"
    try:
        for n in b200:
            sandbox.kubectl("cordon", n)
        apply(sandbox, namespace, qm("no-bw", "nvfp4", "qwen3-30b-a3b"))
        obj = wait_cond(sandbox, namespace, PLURAL, "no-bw", "Ready", "False", "NoSuitablePool")
        assert "Blackwell" in cond(obj, "Ready")["message"] and "allowFallback" in cond(obj, "Ready")["message"]
        assert jobs(sandbox, namespace, "no-bw") == []
        merge_patch(sandbox, namespace, PLURAL, "no-bw", {"spec": {"placement": {"allowFallback": True}}})
        obj = wait_cond(sandbox, namespace, PLURAL, "no-bw", "Ready", "True")
        assert obj["status"]["pool"] == "h100-sxm" and "falling back" in obj["status"]["placementReason"]
    finally:
        for n in b200:
            sandbox.kubectl("uncordon", n)


SCHEMA_REJECTED = [
    ({"source": {"huggingFace": {"repo": "a/b"}, "uri": "pvc://x/y"}, "scheme": "fp8-dynamic"}, "exactly one of"),
    ({"source": {}, "scheme": "fp8-dynamic"}, "exactly one of"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "int3"}, "Unsupported value"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "w4a16"}, "algorithm (gptq or awq) is required"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "algorithm": "gptq"}, "only valid with scheme w4a16"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-block", "tool": "modelopt"}, "tool modelopt supports"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "w4a16", "algorithm": "gptq", "tool": "modelopt"}, "cannot produce"),
    ({"source": {"uri": "http://example.com/m"}, "scheme": "fp8-dynamic"}, "should match"),
    ({"source": {"uri": "pvc://Bad_Claim/x"}, "scheme": "fp8-dynamic"}, "should match"),
    ({"source": {"huggingFace": {"repo": "noslash"}}, "scheme": "fp8-dynamic"}, "should match"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "calibration": {"samples": 0}}, "should be greater"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "calibration": {"sequenceLength": 8}}, "greater"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "storage": {"retention": "Forever"}}, "Unsupported"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "storage": {"size": "lots"}}, "should match"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "qualityGate": {"maxPerplexityDelta": 0}}, "greater"),
    (
        {"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "resources": {"limits": {"nvidia.com/gpu": 8}}},
        "must not set GPU resources",
    ),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "placement": {"gpuCount": 16}}, "less than or equal"),
    ({"source": {"uri": "pvc://m/x"}, "scheme": "fp8-dynamic", "bogus": True}, "unknown field"),
]


@pytest.mark.parametrize(("spec", "message"), SCHEMA_REJECTED, ids=[f"schema-{i}" for i in range(len(SCHEMA_REJECTED))])
def test_invalid_spec_rejected_by_the_api_server(sandbox: Sandbox, namespace: str, spec: dict, message: str) -> None:
    obj = {"apiVersion": "quantfleet.io/v1alpha1", "kind": "QuantizedModel", "metadata": {"name": "bad"}, "spec": spec}
    proc = apply(sandbox, namespace, obj, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_invalid_spec_reported_as_spec_invalid(sandbox: Sandbox, namespace: str, op: Any) -> None:
    sandbox.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "broken-config"}, "data": {"config.json": "{not json"}}
    )
    cases = {
        "bad-config": qm(
            "bad-config", model=None, source={"uri": "pvc://m/x", "modelConfigRef": {"name": "broken-config"}}
        ),
        "escape": qm("escape", storage={"destination": "pvc://claim/../../etc"}),
    }
    for obj in cases.values():
        apply(sandbox, namespace, obj)
    for name, needle in (("bad-config", "not a usable config.json"), ("escape", "without '..'")):
        got = wait_cond(sandbox, namespace, PLURAL, name, "Ready", "False", "SpecInvalid")
        assert needle in cond(got, "Ready")["message"]
        assert jobs(sandbox, namespace, name) == []
        assert any(e.reason == "SpecInvalid" and e.type == "Warning" for e in events(sandbox, namespace, name))


def test_quality_gate_blocks_a_checkpoint_without_measurements(sandbox: Sandbox, namespace: str, op: Any) -> None:
    # the sandbox's simulated manifest carries no perplexity: a gated checkpoint must not become Ready
    apply(sandbox, namespace, qm("gated", "nvfp4a16", qualityGate={"maxPerplexityDelta": 0.05}))
    obj = wait_cond(sandbox, namespace, PLURAL, "gated", "Ready", "False", "QualityGateFailed")
    assert cond(obj, "QualityGate")["status"] == "False" and obj["status"]["phase"] == "Failed"
    assert "no perplexity" in cond(obj, "Ready")["message"]


def test_objects_carry_no_finalizer_unless_deletion_has_work(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, qm("kept", storage={"retention": "Retain"}))
    apply(sandbox, namespace, qm("dropped", "fp8-block", storage={"retention": "Delete"}))
    wait_cond(sandbox, namespace, PLURAL, "kept", "Ready", "True")
    wait_cond(sandbox, namespace, PLURAL, "dropped", "Ready", "True")
    assert not get(sandbox, namespace, PLURAL, "kept")["metadata"].get("finalizers")
    assert get(sandbox, namespace, PLURAL, "dropped")["metadata"].get("finalizers") == ["quantfleet.io/finalizer"]


def test_objects_that_predate_the_operator_are_placed_on_the_full_fleet(sandbox: Sandbox, namespace: str) -> None:
    # resume handlers run right at start-up: placement must not see a half-filled Node cache
    model_config(sandbox, namespace, "llama-3.1-8b")
    apply(sandbox, namespace, qm("early-fp8", "fp8-dynamic"))
    with running_operator(sandbox, namespace):
        obj = wait_cond(sandbox, namespace, PLURAL, "early-fp8", "Ready", "True")
    assert obj["status"]["pool"] == "h100-sxm", obj["status"].get("placementReason")

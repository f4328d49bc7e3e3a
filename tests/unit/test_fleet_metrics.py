"""Fleet gauges (quantfleet.manager.metrics): what an InferenceService's or QuantizedModel's status says, as samples.

The statuses are the golden reconcile outputs (tests/golden/reconcile-*/expected.yaml): what decide() really writes,
so a renamed status field breaks these tests rather than silently emptying a dashboard panel. The failure cases a
golden does not cover (a failed calibration, a failed quality gate) are built in the same wire shape.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from quantfleet.hardware.pools import group_pools
from quantfleet.manager.metrics import (
    FLEET_GAUGES,
    ManagerCollector,
    Sample,
    fleet_samples,
    model_counts,
    model_samples,
    service_samples,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def reconciled(case: str) -> dict[str, Any]:
    """The case's object carrying the status its reconcile produced."""
    obj = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())["object"]
    status = yaml.safe_load((GOLDEN / case / "expected.yaml").read_text())["status"]
    return {**obj, "status": status}


def by_name(samples: list[Sample], name: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for metric, labels, value in samples if metric == name]


def cond(ctype: str, status: str, reason: str) -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason, "message": "", "lastTransitionTime": "t"}


def qm(name: str, scheme: str, status: dict[str, Any] | None, tool: str = "auto") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": "ml", "name": name}, "spec": {"scheme": scheme, "tool": tool}}
    if status is not None:
        obj["status"] = status
    return obj


def test_service_pools_planned_ready_precision_and_kv_capacity() -> None:
    samples = list(service_samples(reconciled("reconcile-isvc-first-pass-explicit-pools")))
    ident = {"namespace": "team-a", "inferenceservice": "llama-8b"}
    assert by_name(samples, "quantfleet_inferenceservice_replicas") == [
        ({**ident, "pool": "h100"}, 2.0),
        ({**ident, "pool": "a10g"}, 1.0),
    ]
    assert by_name(samples, "quantfleet_inferenceservice_ready_replicas") == [
        ({**ident, "pool": "h100"}, 0.0),
        ({**ident, "pool": "a10g"}, 0.0),
    ]
    assert by_name(samples, "quantfleet_inferenceservice_kv_cache_tokens") == [
        ({**ident, "pool": "h100"}, 501172.0),
        ({**ident, "pool": "a10g"}, 28758.0),
    ]
    info = by_name(samples, "quantfleet_inferenceservice_pool_info")
    assert info[0] == (
        {
            **ident,
            "pool": "h100",
            "gpu": "H100-SXM",
            "device": "gpu",
            "precision": "fp8",
            "kv_cache_dtype": "bfloat16",
            "checkpoint_format": "bf16",
            "native": "true",
        },
        1.0,
    )
    assert info[1][0]["precision"] == "bf16" and info[1][0]["gpu"] == "A10G"


def test_service_conditions_are_one_sample_each_with_the_reason() -> None:
    rolling = list(service_samples(reconciled("reconcile-isvc-first-pass-explicit-pools")))
    conds = {
        labels["type"]: (labels["reason"], value)
        for labels, value in by_name(rolling, "quantfleet_inferenceservice_condition")
    }
    assert conds == {
        "Ready": ("RollingOut", 0.0),
        "ModelReady": ("Resolved", 1.0),
        "Planned": ("Planned", 1.0),
        "Available": ("RollingOut", 0.0),
        "Progressing": ("RollingOut", 1.0),
        "Degraded": ("AsPlanned", 0.0),
    }
    refused = list(service_samples(reconciled("reconcile-isvc-cpu-avx2-fp8-kv-refused")))
    ready = [s for s in by_name(refused, "quantfleet_inferenceservice_condition") if s[0]["type"] == "Ready"]
    assert ready == [
        (
            {
                "namespace": ready[0][0]["namespace"],
                "inferenceservice": ready[0][0]["inferenceservice"],
                "type": "Ready",
                "reason": "CannotHonour",
            },
            0.0,
        )
    ]
    # refused before any decision: no pool gauges, nothing invented
    assert by_name(refused, "quantfleet_inferenceservice_replicas") == []


def test_cpu_pool_device_and_a_service_without_status() -> None:
    cpu = list(service_samples(reconciled("reconcile-isvc-cpu-explicit-pool-first-pass")))
    (labels, _), *_ = by_name(cpu, "quantfleet_inferenceservice_pool_info")
    assert labels["device"] == "cpu" and labels["gpu"].startswith("cpu-")
    assert list(service_samples({"metadata": {"namespace": "a", "name": "new"}, "spec": {}})) == []


def test_quantized_model_conditions_and_outcomes_by_scheme_and_tool() -> None:
    calibrating = reconciled("reconcile-qm-first-pass-fp8")
    failed = qm(
        "broken",
        "w4a16",
        {
            "phase": "Failed",
            "tool": "llm-compressor",
            "conditions": [cond("Ready", "False", "CalibrationFailed"), cond("Failed", "True", "CalibrationFailed")],
        },
    )
    gated = qm(
        "lossy",
        "nvfp4",
        {
            "phase": "Failed",
            "tool": "modelopt",
            "quality": {"perplexityBase": "5.0", "perplexityQuantized": "6.0", "delta": "0.2000", "gate": "Failed"},
            "conditions": [
                cond("Ready", "False", "QualityGateFailed"),
                cond("Failed", "True", "QualityGateFailed"),
                cond("QualityGate", "False", "ThresholdExceeded"),
            ],
        },
        tool="modelopt",
    )
    diverged = qm("nan", "fp8-dynamic", {"phase": "Failed", "quality": {"delta": "nan", "gate": "Failed"}})
    fresh = qm("fresh", "fp8-dynamic", None)

    samples = [s for m in (calibrating, failed, gated, diverged) for s in model_samples(m)]
    failed_conds = [
        (labels["quantizedmodel"], labels["reason"])
        for labels, value in by_name(samples, "quantfleet_quantizedmodel_condition")
        if labels["type"] == "Failed" and value == 1.0
    ]
    assert failed_conds == [("broken", "CalibrationFailed"), ("lossy", "QualityGateFailed")]
    # a non-finite delta (which the gate always fails) is no number to plot
    assert by_name(samples, "quantfleet_quantizedmodel_perplexity_delta") == [
        ({"namespace": "ml", "quantizedmodel": "lossy"}, 0.2)
    ]

    counts = list(model_counts([calibrating, failed, gated, diverged, fresh]))
    assert by_name(counts, "quantfleet_quantizedmodels") == [
        ({"phase": "Calibrating", "scheme": "fp8-dynamic", "tool": "llm-compressor"}, 1.0),
        ({"phase": "Failed", "scheme": "fp8-dynamic", "tool": "auto"}, 1.0),
        ({"phase": "Failed", "scheme": "nvfp4", "tool": "modelopt"}, 1.0),
        ({"phase": "Failed", "scheme": "w4a16", "tool": "llm-compressor"}, 1.0),
        ({"phase": "Unknown", "scheme": "fp8-dynamic", "tool": "auto"}, 1.0),
    ]
    assert by_name(counts, "quantfleet_quantizedmodel_quality_gates") == [
        ({"scheme": "fp8-dynamic", "tool": "auto", "result": "Failed"}, 1.0),
        ({"scheme": "nvfp4", "tool": "modelopt", "result": "Failed"}, 1.0),
    ]


def test_every_sample_fills_its_declared_labels() -> None:
    services = [reconciled(c) for c in sorted(p.name for p in GOLDEN.glob("reconcile-isvc-*"))]
    models = [reconciled(c) for c in sorted(p.name for p in GOLDEN.glob("reconcile-qm-*"))]
    seen = set()
    for name, labels, _ in fleet_samples(services, models):
        assert set(labels) == set(FLEET_GAUGES[name][1]), name
        seen.add(name)
    # the goldens exercise every gauge but the gate counts and the perplexity delta (no golden has a manifest)
    assert set(FLEET_GAUGES) - seen == {
        "quantfleet_quantizedmodel_quality_gates",
        "quantfleet_quantizedmodel_perplexity_delta",
    }


class FakeQueue:
    def __len__(self) -> int:
        return 0

    def waiting(self) -> int:
        return 0


def fake_manager(leading: bool, services: list[dict[str, Any]]) -> Any:
    objects = {"InferenceService": services, "QuantizedModel": []}
    cache = SimpleNamespace(stores={}, pools=lambda: group_pools([]), objects=lambda kind: objects[kind])
    return SimpleNamespace(queue=FakeQueue(), reconciled_counts=dict, leading=leading, cache=cache)


def test_only_the_leader_exports_the_fleet_read_at_scrape_time() -> None:
    services: list[dict[str, Any]] = []
    leader, standby = CollectorRegistry(), CollectorRegistry()
    leader.register(ManagerCollector(fake_manager(True, services)))
    standby.register(ManagerCollector(fake_manager(False, services)))
    # declared before any object exists, so a dashboard query is never "no such metric"
    assert "# TYPE quantfleet_inferenceservice_replicas gauge" in generate_latest(leader).decode()
    services.append(reconciled("reconcile-isvc-first-pass-explicit-pools"))
    text = generate_latest(leader).decode()
    line = 'quantfleet_inferenceservice_replicas{inferenceservice="llama-8b",namespace="team-a",pool="h100"} 2.0'
    assert line in text
    assert "quantfleet_inferenceservice_replicas" not in generate_latest(standby).decode()

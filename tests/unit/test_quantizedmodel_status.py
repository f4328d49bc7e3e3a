"""QuantizedModel status from a finished Job: a checkpoint is Ready only if its manifest validates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.quantizedmodel.jobs import JobObservation, Termination
from quantfleet.quantizedmodel.plan import Plan
from quantfleet.quantizedmodel.status import ready_condition, status_from_job
from quantfleet.render.calibration import storage_target

SPEC = {"source": {"uri": "pvc://base/llama"}, "scheme": "w4a16", "algorithm": "gptq"}


def plan(gate: float | None = None) -> Plan:
    spec = QuantizedModelSpec.model_validate(
        {**SPEC, **({"qualityGate": {"maxPerplexityDelta": gate}} if gate else {})}
    )
    recipe = CalibrationRecipe(
        source_uri="pvc://base/llama",
        scheme="w4a16",
        algorithm="gptq",
        tool="llm-compressor",
        tool_version="0.14.0.1",
        output_uri="",
    )
    h = recipe.content_hash()
    return Plan(spec, None, recipe, h, "compressed-tensors", storage_target("m", None, h, None), "why", "m-job")


def manifest(p: Plan, **over: Any) -> str:
    body = {
        "schema": "quantfleet.io/calibration-result/v1",
        "recipe_hash": p.recipe_hash,
        "checkpoint_uri": p.storage.uri,
        "format": "compressed-tensors",
        "scheme": "w4a16",
        "tool": "llm-compressor",
        "tool_version": "0.14.0.1",
        "bytes": 123,
        "sha256": "a" * 64,
        "seconds": 1.5,
        "quality": {"perplexity_base": 10.0, "perplexity_quantized": 10.4, "delta": 0.04, "eval_tokens": 4096},
        "expert_coverage": {"num_experts": 8, "routed_min": 0, "calibrated_min": 512, "all_experts": True},
    }
    body.update(over)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def finished(text: str) -> JobObservation:
    return JobObservation("m-job", "succeeded", "", Termination(0, "Completed", text))


def conds(result: tuple[dict[str, Any], list[Any]]) -> dict[str, tuple[str, str]]:
    """Conditions by type, with Ready derived from the declared conjunction as the status writer does."""
    return {c.type: (c.status, c.reason) for c in [ready_condition(result[1]), *result[1]]}


def test_valid_manifest_is_ready_with_facts() -> None:
    p = plan()
    status, cs = status_from_job(p, finished(manifest(p)), {})
    assert conds((status, cs))["Ready"] == ("True", "CheckpointReady")
    assert status["checkpoint"]["sha256"] == "a" * 64 and status["checkpoint"]["size"] == "123 B"
    assert status["expertCoverage"]["calibratedMin"] == 512 and status["quality"]["delta"] == "0.0400"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no result manifest"),
        ("calibration finished", "invalid result manifest"),
        ("{}", "invalid result manifest"),
    ],
)
def test_unusable_manifest_is_failed(text: str, needle: str) -> None:
    status, cs = status_from_job(plan(), finished(text), {})
    assert conds((status, cs))["Ready"] == ("False", "InvalidManifest")
    assert any(needle in c.message for c in cs if c.type == "Failed")


def test_manifest_for_another_recipe_or_without_checksum_is_rejected() -> None:
    p = plan()
    _, cs = status_from_job(p, finished(manifest(p, recipe_hash="b" * 64)), {})
    assert conds((_, cs))["Ready"][1] == "InvalidManifest"
    _, cs = status_from_job(p, finished(manifest(p, sha256="")), {})
    assert conds((_, cs))["Ready"][1] == "InvalidManifest"
    _, cs = status_from_job(p, finished(manifest(p, scheme="nvfp4")), {})
    assert conds((_, cs))["Ready"][1] == "InvalidManifest"


def test_non_finite_perplexity_never_passes() -> None:
    p = plan(gate=0.05)
    text = manifest(p).replace('"perplexity_quantized": 10.4', '"perplexity_quantized": NaN')
    _, cs = status_from_job(p, finished(text), {})
    assert conds((_, cs))["Ready"] == ("False", "InvalidManifest")


def test_quality_gate() -> None:
    p = plan(gate=0.05)
    _, cs = status_from_job(p, finished(manifest(p)), {})
    assert conds((_, cs))["Ready"] == ("True", "CheckpointReady") and conds((_, cs))["QualityGate"][0] == "True"
    worse = manifest(
        p, quality={"perplexity_base": 10.0, "perplexity_quantized": 12.0, "delta": 0.2, "eval_tokens": 4096}
    )
    _, cs = status_from_job(p, finished(worse), {})
    assert conds((_, cs))["Ready"] == ("False", "QualityGateFailed") and conds((_, cs))["QualityGate"][0] == "False"
    _, cs = status_from_job(p, finished(manifest(p, quality=None)), {})
    assert conds((_, cs))["Ready"] == ("False", "QualityGateFailed")
    assert conds((_, cs))["QualityGate"] == ("False", "NotMeasured")


def test_failed_job_names_exit_code_and_message() -> None:
    obs = JobObservation("m-job", "failed", "BackoffLimitExceeded", Termination(3, "Error", "expert 7 starved"))
    status, cs = status_from_job(plan(), obs, {})
    failed = next(c for c in cs if c.type == "Failed")
    assert failed.status == "True" and "code 3" in failed.message and "expert 7 starved" in failed.message
    assert status["phase"] == "Failed"

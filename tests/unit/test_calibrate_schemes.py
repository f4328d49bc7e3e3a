"""The scheme x tool table and the quality gate arithmetic (pure, no torch)."""

from __future__ import annotations

import math

import pytest

from quantfleet.api.recipe import SCHEMES
from quantfleet.api.schemes import TOOL_CHECKPOINT_FORMAT, UnsupportedRecipe, ignore_patterns, support, supported_pairs
from quantfleet.calibrate.quality import QualityGateFailed, check


def test_llm_compressor_covers_every_scheme() -> None:
    covered = {scheme for tool, scheme, _ in supported_pairs() if tool == "llm-compressor"}
    assert covered == set(SCHEMES)


def test_presets() -> None:
    assert support("llm-compressor", "fp8-static", None).preset == "FP8"
    assert support("llm-compressor", "w4a16", None).algorithm == "gptq"
    assert support("modelopt", "w4a16", None).preset == "INT4_AWQ_CFG"
    nvfp4 = support("modelopt", "nvfp4", None)
    assert (nvfp4.preset, nvfp4.moe_preset) == ("NVFP4_DEFAULT_CFG", "NVFP4_MLP_ONLY_CFG")


@pytest.mark.parametrize(
    ("tool", "scheme", "alg", "why"),
    [
        ("modelopt", "fp8-block", None, "weight-only"),
        ("modelopt", "w4a16", "gptq", "not offered"),
        ("llm-compressor", "fp8-static", "gptq", "w4a16 only"),
        ("quark", "fp8-block", None, "AMD targets only"),
        ("quark", "nvfp4", None, "no ROCm serving path"),
        ("quark", "w4a16", None, "quark cannot produce w4a16 \\(awq\\)"),
    ],
)
def test_unsupported_pairs_say_why(tool: str, scheme: str, alg: str | None, why: str) -> None:
    with pytest.raises(UnsupportedRecipe, match=why):
        support(tool, scheme, alg)  # type: ignore[arg-type]


def test_quark_schemes_and_pairs() -> None:
    assert {(s, a) for tool, s, a in supported_pairs() if tool == "quark"} == {
        ("fp8-dynamic", None),
        ("fp8-static", None),
        ("mxfp4", None),
    }
    assert support("quark", "fp8-dynamic", None).preset == "ptpc_fp8"
    assert support("quark", "mxfp4", None).preset == "mxfp4"
    assert TOOL_CHECKPOINT_FORMAT["quark"] == "quark"


def test_router_patterns_per_family() -> None:
    assert ignore_patterns("qwen3_moe", ()) == ["lm_head", "re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"]
    assert "re:.*block_sparse_moe.gate$" in ignore_patterns("mixtral", ())
    assert ignore_patterns("llama4", ("re:.*vision.*", "lm_head")) == ["lm_head", "re:.*router", "re:.*vision.*"]


def test_quality_gate() -> None:
    assert check(10.0, 10.5, 0.1) == pytest.approx(0.05)
    with pytest.raises(QualityGateFailed, match="above max_perplexity_delta"):
        check(10.0, 12.0, 0.1)
    for broken in (math.nan, math.inf):
        with pytest.raises(QualityGateFailed, match="not finite"):
            check(10.0, broken, None)
    with pytest.raises(QualityGateFailed, match="base model"):
        check(math.nan, 10.0, None)

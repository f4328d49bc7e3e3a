"""choose_tool per scheme x architecture, explicit tools that cannot make a scheme, and placement preferences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantfleet.hardware import facts_for
from quantfleet.planning import PlanError, choose_tool, parse_model_config, placement_for
from quantfleet.planning.model import ModelArch
from quantfleet.planning.tools import ATTENTION_PATTERN, SCHEMES, amd_placement

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def arch(name: str) -> ModelArch:
    cfg: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return parse_model_config(cfg)


DENSE = arch("llama-3.1-8b")
QWEN = arch("qwen3-30b-a3b")
MIXTRAL = arch("mixtral-8x7b")
TRINITY = arch("trinity-mini")


@pytest.mark.parametrize(
    ("scheme", "algorithm", "model", "tool", "preset"),
    [
        ("fp8-dynamic", None, DENSE, "llm-compressor", "QuantizationModifier(scheme=FP8_DYNAMIC)"),
        ("fp8-block", None, DENSE, "llm-compressor", "QuantizationModifier(scheme=FP8_BLOCK)"),
        ("fp8-static", None, QWEN, "llm-compressor", "QuantizationModifier(scheme=FP8)"),
        ("w4a16", None, DENSE, "llm-compressor", "GPTQModifier(scheme=W4A16)"),  # gptq is the default
        ("w4a16", "awq", DENSE, "llm-compressor", "AWQModifier + QuantizationModifier(scheme=W4A16)"),
        ("nvfp4", None, DENSE, "llm-compressor", "QuantizationModifier(scheme=NVFP4)"),
        ("nvfp4", None, QWEN, "modelopt", "NVFP4_MLP_ONLY_CFG"),  # MoE: MLP-only (docs/calibration.md)
        ("nvfp4", None, TRINITY, "modelopt", "NVFP4_MLP_ONLY_CFG"),
        ("nvfp4a16", None, QWEN, "llm-compressor", "QuantizationModifier(scheme=NVFP4A16)"),
        ("mxfp4", None, MIXTRAL, "llm-compressor", "QuantizationModifier(scheme=MXFP4)"),
    ],
)
def test_auto_tool(scheme: str, algorithm: str | None, model: ModelArch, tool: str, preset: str) -> None:
    choice = choose_tool(scheme, "auto", model, algorithm=algorithm)
    assert (choice.tool, choice.preset) == (tool, preset)
    assert choice.reason.startswith("auto:")
    assert choice.ignore[0] == "lm_head"
    assert choice.calibrate_all_experts == model.is_moe


def test_moe_ignores_the_family_router() -> None:
    assert "re:.*mlp.gate$" in choose_tool("fp8-dynamic", "auto", QWEN).ignore
    assert "re:.*mlp.shared_expert_gate$" in choose_tool("fp8-dynamic", "auto", QWEN).ignore
    assert "re:.*block_sparse_moe.gate$" in choose_tool("w4a16", "auto", MIXTRAL).ignore
    assert "re:.*mlp.router.*" in choose_tool("nvfp4", "llm-compressor", TRINITY).ignore
    assert choose_tool("fp8-dynamic", "auto", DENSE).ignore == ("lm_head",)


def test_mlp_only_with_llm_compressor_ignores_attention() -> None:
    assert ATTENTION_PATTERN in choose_tool("mxfp4", "auto", QWEN).ignore
    assert ATTENTION_PATTERN in choose_tool("nvfp4", "llm-compressor", QWEN).ignore
    assert ATTENTION_PATTERN not in choose_tool("mxfp4", "auto", DENSE).ignore
    assert ATTENTION_PATTERN not in choose_tool("w4a16", "auto", QWEN).ignore


def test_modelopt_moe_turns_on_all_expert_calibration_and_says_so() -> None:
    choice = choose_tool("nvfp4", "auto", QWEN)
    assert choice.calibrate_all_experts
    assert any("moe_calib_experts_ratio=1.0" in n for n in choice.notes)


def test_calibration_data_requirements() -> None:
    assert not choose_tool("fp8-dynamic", "auto", DENSE).needs_calibration_data
    assert choose_tool("fp8-static", "auto", DENSE).needs_calibration_data
    assert choose_tool("w4a16", "auto", DENSE).needs_calibration_data


@pytest.mark.parametrize(
    ("scheme", "algorithm", "tool"),
    [
        ("fp8-static", None, "modelopt"),
        ("fp8-dynamic", None, "modelopt"),
        ("nvfp4a16", None, "modelopt"),
        ("w4a16", "awq", "modelopt"),
        ("nvfp4", None, "modelopt"),
        ("mxfp4", None, "modelopt"),
        *[(s, None, "llm-compressor") for s in SCHEMES],
        ("fp8-dynamic", None, "quark"),
        ("fp8-static", None, "quark"),
        ("mxfp4", None, "quark"),
    ],
)
def test_explicit_tool_that_can(scheme: str, algorithm: str | None, tool: str) -> None:
    choice = choose_tool(scheme, tool, DENSE, algorithm=algorithm)
    assert choice.tool == tool and choice.reason.startswith("requested tool")


@pytest.mark.parametrize(
    ("scheme", "algorithm", "tool", "message"),
    [
        ("w4a16", "gptq", "modelopt", "modelopt cannot make w4a16 (gptq)"),
        ("fp8-block", None, "modelopt", "modelopt cannot make fp8-block"),
        ("fp8-block", None, "quark", "quark cannot make fp8-block; it supports: fp8-dynamic, fp8-static, mxfp4"),
        ("nvfp4", None, "quark", "NVFP4 has no ROCm serving path"),
        ("w4a16", "gptq", "quark", "quark cannot make w4a16 (gptq)"),
        ("int8", None, "auto", "unknown scheme"),
        ("fp8-dynamic", None, "tensorrt", "unknown tool"),
        ("w4a16", "rtn", "auto", "unknown w4a16 algorithm"),
        ("fp8-dynamic", "gptq", "auto", "only applies to w4a16"),
    ],
)
def test_impossible_combinations(scheme: str, algorithm: str | None, tool: str, message: str) -> None:
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_tool(scheme, tool, DENSE, algorithm=algorithm)


def test_unknown_moe_family_gets_a_note() -> None:
    cfg = json.loads((FIXTURES / "mixtral-8x7b" / "config.json").read_text())
    cfg["model_type"] = "brand_new_moe"
    choice = choose_tool("fp8-dynamic", "auto", parse_model_config(cfg))
    assert any("no router pattern known" in n for n in choice.notes)


@pytest.mark.parametrize(
    ("scheme", "native", "not_native"),
    [
        ("nvfp4", ("blackwell",), ("hopper", "cdna3", "cdna4")),
        ("fp8-dynamic", ("ada-lovelace", "hopper", "blackwell", "cdna3", "cdna4"), ("ampere", "turing")),
        ("fp8-block", ("hopper", "blackwell"), ("ampere", "ada-lovelace")),
        ("mxfp4", ("blackwell", "cdna4"), ("hopper", "cdna3")),
        ("w4a16", ("turing", "ampere", "ada-lovelace", "hopper", "blackwell"), ()),
    ],
)
def test_placement_preferences(scheme: str, native: tuple[str, ...], not_native: tuple[str, ...]) -> None:
    pref = placement_for(scheme)
    for family in native:
        assert family in pref.native_families, pref.reason
    for family in not_native:
        assert family not in pref.native_families, pref.reason
    assert pref.reason.startswith(scheme)


@pytest.mark.parametrize(
    ("scheme", "gpu", "rank"),
    [
        ("nvfp4", "b200", 0),
        ("nvfp4", "h100", 1),  # Marlin weight-only fallback
        ("nvfp4", "mi300x", None),
        ("fp8-dynamic", "l40s", 0),
        ("fp8-dynamic", "a100-80gb", 1),
        ("fp8-dynamic", "mi300x", 0),
        ("mxfp4", "mi355x", 0),
        ("mxfp4", "mi300x", None),
        ("w4a16", "t4", 0),
        ("nvfp4a16", "a10g", 0),
    ],
)
def test_placement_rank(scheme: str, gpu: str, rank: int | None) -> None:
    assert placement_for(scheme).rank(facts_for(gpu)) == rank


def test_placement_min_compute_capability() -> None:
    assert placement_for("fp8-dynamic").min_compute_capability == (8, 9)
    assert placement_for("nvfp4").min_compute_capability == (10, 0)
    assert placement_for("mxfp4").amd_gfx_arches == ("gfx950",)
    with pytest.raises(PlanError):
        placement_for("fp4")


def test_tool_tables_match_what_the_calibration_program_runs() -> None:
    from quantfleet.api.schemes import LLMC, MODELOPT, QUARK
    from quantfleet.planning import tools

    assert set(tools._LLM_COMPRESSOR) == set(LLMC)
    assert set(tools._MODELOPT) == set(MODELOPT)
    assert set(tools._QUARK) == set(QUARK)


MI300X = "amd.com/gpu.product-name=AMD_Instinct_MI300X"


@pytest.mark.parametrize(
    ("scheme", "model", "preset", "words"),
    [
        ("fp8-dynamic", DENSE, "QConfig(global_quant_config=ptpc_fp8)", "converts it to e4m3fnuz at load on MI300X"),
        ("fp8-static", QWEN, "QConfig(global_quant_config=fp8)", "converts it to e4m3fnuz at load on MI300X"),
        ("mxfp4", QWEN, "QConfig(global_quant_config=mxfp4)", "native on MI355X/gfx950 only"),
    ],
)
def test_auto_picks_quark_for_amd_placements(scheme: str, model: ModelArch, preset: str, words: str) -> None:
    choice = choose_tool(scheme, "auto", model, amd_target=MI300X)
    assert (choice.tool, choice.preset) == ("quark", preset)
    assert choice.reason.startswith(f"auto: the placement targets AMD GPUs ({MI300X}) and AMD Quark makes {scheme}")
    assert words in choice.reason
    # without an AMD placement the choice is what it always was
    assert choose_tool(scheme, "auto", model).tool == "llm-compressor"


def test_quark_on_moe_keeps_routers_and_attention_rules_and_says_how_experts_are_covered() -> None:
    choice = choose_tool("mxfp4", "auto", QWEN, amd_target=MI300X)
    assert "re:.*mlp.gate$" in choice.ignore and ATTENTION_PATTERN in choice.ignore
    assert choice.calibrate_all_experts
    assert any("widens the routing" in n for n in choice.notes)
    assert not choice.needs_calibration_data  # dynamic MX activations, weight scales from the weights
    assert choose_tool("fp8-static", "quark", QWEN).needs_calibration_data
    assert ATTENTION_PATTERN not in choose_tool("fp8-static", "quark", QWEN).ignore


@pytest.mark.parametrize(
    ("scheme", "algorithm", "kv", "tool", "why"),
    [
        ("fp8-block", None, False, "llm-compressor", "it makes only fp8-dynamic, fp8-static, mxfp4"),
        ("w4a16", "gptq", False, "llm-compressor", "it makes only fp8-dynamic, fp8-static, mxfp4"),
        (
            "mxfp4",
            None,
            True,
            "llm-compressor",
            "quantfleet calibrates FP8 KV-cache scales with Quark only for the fp8",
        ),
    ],
)
def test_auto_says_why_not_quark_on_amd(scheme: str, algorithm: str | None, kv: bool, tool: str, why: str) -> None:
    choice = choose_tool(scheme, "auto", DENSE, algorithm=algorithm, amd_target=MI300X, kv_cache_scales=kv)
    assert choice.tool == tool
    assert f"not Quark although the placement targets AMD GPUs ({MI300X}): {why}" in choice.reason


def test_quark_kv_cache_scales_go_with_the_fp8_schemes_only() -> None:
    with pytest.raises(PlanError, match="quark cannot make mxfp4 with kvCacheScales"):
        choose_tool("mxfp4", "quark", DENSE, kv_cache_scales=True)
    auto = choose_tool("fp8-dynamic", "auto", DENSE, amd_target=MI300X, kv_cache_scales=True)
    assert auto.tool == "quark"
    assert auto.needs_calibration_data  # the k/v output quantizers are static: they calibrate on data
    assert not choose_tool("fp8-dynamic", "quark", DENSE).needs_calibration_data


def test_amd_placement_reads_the_amd_node_labeller_keys() -> None:
    assert amd_placement(None) is None
    assert amd_placement({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}) is None
    assert amd_placement({"amd.com/gpu.family": "AI", "zone": "a"}) == "amd.com/gpu.family=AI"
    assert amd_placement({"beta.amd.com/gpu.device-id": "74a1"}) == "beta.amd.com/gpu.device-id=74a1"


def test_modelopt_awq_refused_for_moe_with_the_measured_reason() -> None:
    with pytest.raises(PlanError, match="fused experts"):
        choose_tool("w4a16", "modelopt", QWEN, algorithm="awq")
    assert choose_tool("w4a16", "modelopt", DENSE, algorithm="awq").tool == "modelopt"

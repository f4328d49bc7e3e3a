"""llm-compressor through `quantfleet calibrate` on the CPU, for real, on a tiny MoE model built here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from quantfleet.api.manifest import parse_manifest
from quantfleet.calibrate.publish import MANIFEST_NAME, checksum

from .conftest import NUM_SAMPLES, SEQ_LEN, read_config, tensor_dtypes

pytestmark = pytest.mark.calibration


def _reloaded_perplexity(path: Path, source: Path) -> float:
    """Load the published checkpoint with plain transformers and score the same held-out blocks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantfleet.calibrate.data import build_calibration_data
    from quantfleet.calibrate.quality import perplexity

    tok = AutoTokenizer.from_pretrained(path)
    data = build_calibration_data(tok, "builtin:python-stdlib", NUM_SAMPLES, SEQ_LEN, seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ppl, _ = perplexity(model, data.heldout, torch.device("cpu"))
    return ppl


def test_fp8_dynamic_checkpoint(tiny_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(tiny_model_dir, scheme="fp8-dynamic", tool="llm-compressor")
    assert run.code == 0, run.termination

    manifest = parse_manifest(run.termination)
    assert (manifest.format, manifest.scheme, manifest.tool) == ("compressed-tensors", "fp8-dynamic", "llm-compressor")
    assert manifest.recipe_hash == run.recipe.content_hash()
    # the full manifest beside the checkpoint says the same, and the checksum matches the files
    beside = parse_manifest((run.output / MANIFEST_NAME).read_text())
    assert beside == manifest
    assert checksum(run.output) == (manifest.sha256, manifest.bytes)
    # FP8 dynamic needs no calibration data: nothing to cover, and the manifest says so by omission
    assert manifest.expert_coverage is None

    qc = read_config(run.output)["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "float-quantized"
    assert any("mlp.gate" in name for name in qc["ignore"]), qc["ignore"]
    dtypes = tensor_dtypes(run.output)
    # experts are split, one FP8 tensor per expert projection; routers stay in high precision
    assert dtypes["model.layers.0.mlp.experts.7.down_proj.weight"] == "F8_E4M3"
    assert dtypes["model.layers.1.self_attn.q_proj.weight"] == "F8_E4M3"
    assert dtypes["model.layers.0.mlp.gate.weight"] in ("F32", "BF16")

    assert manifest.quality is not None
    reloaded = _reloaded_perplexity(run.output, tiny_model_dir)
    assert math.isclose(reloaded, manifest.quality.perplexity_quantized, rel_tol=0.02), (
        reloaded,
        manifest.quality.perplexity_quantized,
    )


def test_w4a16_gptq_checkpoint(tiny_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(
        tiny_model_dir, scheme="w4a16", algorithm="gptq", tool="llm-compressor", min_tokens_per_expert=1
    )
    assert run.code == 0, run.termination
    manifest = parse_manifest(run.termination)
    assert manifest.scheme == "w4a16"

    qc = read_config(run.output)["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    weights = qc["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["type"], weights["group_size"]) == (4, "int", 128)
    dtypes = tensor_dtypes(run.output)
    assert "model.layers.0.mlp.experts.3.up_proj.weight_packed" in dtypes
    assert "model.layers.0.mlp.gate.weight" in dtypes  # router not packed

    # GPTQ calibrates on data: every expert saw every calibration token (all-expert mode is the default)
    cov = manifest.expert_coverage
    assert cov is not None and cov.all_experts
    assert cov.calibrated_min == NUM_SAMPLES * SEQ_LEN
    assert cov.routed_min < cov.calibrated_min
    assert [lc.layer for lc in cov.layers] == [0, 1]

    assert manifest.quality is not None
    reloaded = _reloaded_perplexity(run.output, tiny_model_dir)
    assert math.isclose(reloaded, manifest.quality.perplexity_quantized, rel_tol=0.02)


def test_all_expert_mode_raises_min_tokens_per_expert(tiny_model_dir: Path, run_calibrate) -> None:
    off = run_calibrate(tiny_model_dir, scheme="fp8-static", tool="llm-compressor", calibrate_all_experts=False)
    assert off.code == 0, off.termination
    cov_off = parse_manifest(off.termination).expert_coverage
    on = run_calibrate(tiny_model_dir, scheme="fp8-static", tool="llm-compressor", calibrate_all_experts=True)
    assert on.code == 0, on.termination
    cov_on = parse_manifest(on.termination).expert_coverage
    assert cov_off is not None and cov_on is not None

    # mode off: each expert was calibrated on exactly the tokens the router sent it
    assert not cov_off.all_experts
    assert all(lc.min == lc.routed_min for lc in cov_off.layers)
    assert cov_off.calibrated_min == cov_off.routed_min
    # mode on: every expert saw every calibration token
    assert cov_on.calibrated_min == NUM_SAMPLES * SEQ_LEN > cov_off.calibrated_min
    # the router itself does not change with the mode
    assert cov_on.routed_min == cov_off.routed_min


def test_starved_experts_fail_with_their_names(starved_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(
        starved_model_dir,
        scheme="fp8-static",
        tool="llm-compressor",
        calibrate_all_experts=False,
        min_tokens_per_expert=1,
    )
    assert run.code == 1
    assert run.termination.startswith("calibration failed: expert coverage below min_tokens_per_expert=1")
    assert "layer 1 experts [4, 5, 6, 7]" in run.termination
    assert "layer 0 experts" not in run.termination
    assert not run.output.exists(), "a failed calibration must publish nothing"
    assert not list(run.output.parent.glob(f".{run.output.name}.partial-*")), "staging directory left behind"


def test_starved_router_is_fixed_by_all_expert_mode(starved_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(
        starved_model_dir,
        scheme="fp8-static",
        tool="llm-compressor",
        calibrate_all_experts=True,
        min_tokens_per_expert=1,
    )
    assert run.code == 0, run.termination
    cov = parse_manifest(run.termination).expert_coverage
    assert cov is not None
    layer1 = next(lc for lc in cov.layers if lc.layer == 1)
    assert layer1.routed_min == 0 and layer1.min == NUM_SAMPLES * SEQ_LEN and layer1.starved == []


def test_mixtral_family(mixtral_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(mixtral_model_dir, scheme="fp8-static", tool="llm-compressor", min_tokens_per_expert=1)
    assert run.code == 0, run.termination
    manifest = parse_manifest(run.termination)
    assert read_config(run.output)["model_type"] == "mixtral"
    qc = read_config(run.output)["quantization_config"]
    # saved under Mixtral's own checkpoint names (block_sparse_moe.*), routers left unquantized
    assert {"model.layers.0.block_sparse_moe.gate", "model.layers.1.block_sparse_moe.gate"} <= set(qc["ignore"])
    dtypes = tensor_dtypes(run.output)
    routers = {k: v for k, v in dtypes.items() if k.endswith("block_sparse_moe.gate.weight")}
    experts = {k: v for k, v in dtypes.items() if ".experts." in k and k.endswith(".weight")}
    assert len(routers) == 2 and set(routers.values()) <= {"F32", "BF16"}, routers
    assert len(experts) == 2 * 8 * 3 and set(experts.values()) == {"F8_E4M3"}, sorted(experts)[:4]
    cov = manifest.expert_coverage
    assert cov is not None and cov.calibrated_min == NUM_SAMPLES * SEQ_LEN

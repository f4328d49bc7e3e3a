"""NVIDIA ModelOpt through `quantfleet calibrate` on the CPU, for real, on a tiny MoE model built here.

ModelOpt's FP8 path runs on the CPU as fake-quant (no CUDA extension needed for FP8
E4M3 simulation in torch 2.x) and `export_hf_checkpoint` writes real FP8 tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantfleet.api.manifest import parse_manifest
from quantfleet.calibrate.publish import MANIFEST_NAME, checksum

from .conftest import NUM_SAMPLES, SEQ_LEN, read_config, tensor_dtypes

pytestmark = pytest.mark.calibration


def test_fp8_checkpoint(tiny_model_dir: Path, run_calibrate) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    run = run_calibrate(tiny_model_dir, scheme="fp8-static", tool="modelopt", min_tokens_per_expert=1)
    assert run.code == 0, run.termination
    manifest = parse_manifest(run.termination)
    assert (manifest.format, manifest.tool, manifest.scheme) == ("modelopt", "modelopt", "fp8-static")
    assert parse_manifest((run.output / MANIFEST_NAME).read_text()) == manifest
    assert checksum(run.output) == (manifest.sha256, manifest.bytes)

    hf_quant = json.loads((run.output / "hf_quant_config.json").read_text())
    assert hf_quant["producer"]["name"] == "modelopt"
    assert hf_quant["quantization"]["quant_algo"] == "FP8"
    excluded = hf_quant["quantization"]["exclude_modules"]
    assert {"model.layers.0.mlp.gate", "model.layers.1.mlp.gate", "lm_head"} <= set(excluded)
    assert read_config(run.output)["quantization_config"]["quant_method"] == "modelopt"

    # experts are exported split; dequantized FP8 weights are the base weights within FP8 precision
    dtypes = tensor_dtypes(run.output)
    assert dtypes["model.layers.1.mlp.experts.5.gate_proj.weight"] == "F8_E4M3"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    inter = base.config.moe_intermediate_size
    ref = base.model.layers[1].mlp.experts.gate_up_proj[5, :inter]
    with safe_open(str(run.output / "model.safetensors"), "pt") as st:
        w = st.get_tensor("model.layers.1.mlp.experts.5.gate_proj.weight").float()
        scale = st.get_tensor("model.layers.1.mlp.experts.5.gate_proj.weight_scale").float()
    rel = float((w * scale - ref).norm() / ref.norm())
    assert rel < 0.05, rel

    # transformers loads the checkpoint (architecture, config and tokenizer are intact)
    model = AutoModelForCausalLM.from_pretrained(run.output)
    assert model.config.model_type == "qwen3_moe"

    # quantfleet's widened-routing pass makes every expert see every token (ModelOpt's own
    # moe_calib_experts_ratio does not reach transformers-5 fused experts)
    cov = manifest.expert_coverage
    assert cov is not None
    assert cov.calibrated_min == NUM_SAMPLES * SEQ_LEN > cov.routed_min
    assert manifest.quality is not None and manifest.quality.delta < 0.05


def test_unsupported_pair_fails_cleanly(tiny_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(tiny_model_dir, scheme="fp8-block", tool="modelopt")
    assert run.code == 1
    assert run.termination.startswith("calibration failed: modelopt cannot produce fp8-block")

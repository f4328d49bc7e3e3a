"""AMD Quark through `quantfleet calibrate` on the CPU, for real, on a tiny MoE model built here.

Quark's FP8 and MXFP4 paths run on the CPU (fake-quant during calibration, a small C++ emulation extension it
JIT-compiles on first import) and `export_safetensors` writes real FP8 / packed MXFP4 tensors. Each saved
config.json must parse into the normalized description the planner uses for a Quark checkpoint of that scheme.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantfleet.api.checkpoint import TensorQuant, from_calibration, parse_checkpoint_quant
from quantfleet.api.manifest import parse_manifest
from quantfleet.calibrate.publish import MANIFEST_NAME, checksum

from .conftest import NUM_SAMPLES, SEQ_LEN, read_config, tensor_dtypes

pytest.importorskip("quark")

pytestmark = pytest.mark.calibration

ROUTERS = ("re:.*mlp.gate$",)  # what the planner's recipe carries for qwen3_moe (api.schemes.ROUTER_IGNORE)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def assert_matches_fixture(config: dict[str, object], scheme: str) -> None:
    """The quantization_config kept in tests/fixtures/models is still what Quark exports."""
    kept = json.loads((FIXTURES / f"quantfleet--tiny-qwen3-moe-quark-{scheme}" / "config.json").read_text())
    assert config["quantization_config"] == kept["quantization_config"]


def test_fp8_static_checkpoint(tiny_model_dir: Path, run_calibrate) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    run = run_calibrate(tiny_model_dir, scheme="fp8-static", tool="quark", ignore=ROUTERS, min_tokens_per_expert=1)
    assert run.code == 0, run.termination
    manifest = parse_manifest(run.termination)
    assert (manifest.format, manifest.tool, manifest.scheme) == ("quark", "quark", "fp8-static")
    assert parse_manifest((run.output / MANIFEST_NAME).read_text()) == manifest
    assert checksum(run.output) == (manifest.sha256, manifest.bytes)

    # config.json: the normalized description equals what the planner assumes for a calibrated Quark fp8-static
    config = read_config(run.output)
    qc = config["quantization_config"]
    assert qc["quant_method"] == "quark" and qc["export"]["weight_format"] == "real_quantized"
    assert {"model.layers.0.mlp.gate", "model.layers.1.mlp.gate", "lm_head"} == set(qc["exclude"])
    assert_matches_fixture(config, "fp8-static")
    quant = parse_checkpoint_quant(config)
    planned = from_calibration("fp8-static", "quark", ignore=("lm_head", *ROUTERS))
    assert quant is not None
    assert (quant.method, quant.vllm_method, quant.scheme, quant.weights, quant.activations) == (
        planned.method,
        planned.vllm_method,
        planned.scheme,
        planned.weights,
        planned.activations,
    )
    assert quant.describe().startswith("fp8-w8a8/quark: fp8 per-tensor weights, static fp8 per-tensor activations")
    for module in ("model.layers.0.mlp.gate", "lm_head"):
        assert not quant.quantizes(module) and not planned.quantizes(module)
    for module in ("model.layers.1.mlp.experts.5.gate_proj", "model.layers.0.self_attn.q_proj"):
        assert quant.quantizes(module) and planned.quantizes(module)

    # experts exported split, OCP e4m3fn; dequantized weights are the base weights within FP8 precision
    dtypes = tensor_dtypes(run.output)
    assert dtypes["model.layers.1.mlp.experts.5.gate_proj.weight"] == "F8_E4M3"
    assert dtypes["model.layers.0.mlp.gate.weight"] in ("F32", "BF16")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    inter = base.config.moe_intermediate_size
    ref = base.model.layers[1].mlp.experts.gate_up_proj[5, :inter]
    with safe_open(str(run.output / "model.safetensors"), "pt") as st:
        w = st.get_tensor("model.layers.1.mlp.experts.5.gate_proj.weight")
        scale = st.get_tensor("model.layers.1.mlp.experts.5.gate_proj.weight_scale").float()
        assert "model.layers.1.mlp.experts.5.gate_proj.input_scale" in st.keys()  # noqa: SIM118
    assert w.dtype == torch.float8_e4m3fn  # OCP; vLLM's ROCm build converts it to e4m3fnuz on MI300X
    rel = float((w.float() * scale - ref.detach()).norm() / ref.detach().norm())
    assert rel < 0.05, rel

    # quantfleet's widened-routing pass makes every expert see every calibration token
    cov = manifest.expert_coverage
    assert cov is not None and cov.all_experts
    assert cov.calibrated_min == NUM_SAMPLES * SEQ_LEN > cov.routed_min
    assert [lc.layer for lc in cov.layers] == [0, 1] and all(lc.starved == [] for lc in cov.layers)
    assert manifest.quality is not None and manifest.quality.delta < 0.05


def test_routed_only_calibration_when_all_experts_is_off(tiny_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(tiny_model_dir, scheme="fp8-static", tool="quark", ignore=ROUTERS, calibrate_all_experts=False)
    assert run.code == 0, run.termination
    cov = parse_manifest(run.termination).expert_coverage
    assert cov is not None and not cov.all_experts
    assert cov.calibrated_min == cov.routed_min < NUM_SAMPLES * SEQ_LEN
    assert all(lc.min == lc.routed_min for lc in cov.layers)


@pytest.mark.parametrize(
    ("scheme", "weights", "acts", "weight_dtype"),
    [
        (
            "fp8-dynamic",
            TensorQuant("float", 8, "channel"),
            TensorQuant("float", 8, "token", dynamic=True),
            "F8_E4M3",
        ),
        (
            "mxfp4",
            TensorQuant("float", 4, "group", group_size=32),
            TensorQuant("float", 4, "group", group_size=32, dynamic=True),
            "U8",
        ),
    ],
)
def test_data_free_schemes(
    tiny_model_dir: Path, run_calibrate, scheme: str, weights: TensorQuant, acts: TensorQuant, weight_dtype: str
) -> None:
    # mxfp4 on a MoE model: the planner keeps attention in BF16 (MLP-only), so the recipe carries the pattern
    extra = ("re:.*self_attn.*",) if scheme == "mxfp4" else ()
    run = run_calibrate(tiny_model_dir, scheme=scheme, tool="quark", ignore=(*ROUTERS, *extra))
    assert run.code == 0, run.termination
    manifest = parse_manifest(run.termination)
    assert manifest.format == "quark"
    assert manifest.expert_coverage is None  # dynamic activations, weight scales from the weights: no data needed

    config = read_config(run.output)
    quant = parse_checkpoint_quant(config)
    planned = from_calibration(scheme, "quark", ignore=("lm_head", *ROUTERS, *extra))  # type: ignore[arg-type]
    assert quant is not None
    assert (quant.method, quant.scheme, quant.weights, quant.activations) == ("quark", planned.scheme, weights, acts)
    assert (planned.weights, planned.activations) == (weights, acts)
    dtypes = tensor_dtypes(run.output)
    assert dtypes["model.layers.0.mlp.experts.3.up_proj.weight"] == weight_dtype
    if scheme == "mxfp4":
        assert_matches_fixture(config, scheme)
        assert dtypes["model.layers.0.mlp.experts.3.up_proj.weight_scale"] == "U8"  # e8m0, one per 32 elements
        assert dtypes["model.layers.0.self_attn.q_proj.weight"] in ("F32", "BF16")
        assert not quant.quantizes("model.layers.0.self_attn.q_proj")


def test_fp8_kv_cache_scales(tiny_model_dir: Path, run_calibrate) -> None:
    # fp8-dynamic is data-free, but Quark's KV-cache output quantizers are static: they calibrate on the data
    run = run_calibrate(tiny_model_dir, scheme="fp8-dynamic", tool="quark", ignore=ROUTERS, kv_cache_fp8=True)
    assert run.code == 0, run.termination
    config = read_config(run.output)
    qc = config["quantization_config"]
    assert qc["export"]["kv_cache_group"] == ["*k_proj", "*v_proj"]
    assert qc["layer_quant_config"]["*k_proj"]["output_tensors"]["dtype"] == "fp8_e4m3"
    quant = parse_checkpoint_quant(config)
    planned = from_calibration("fp8-dynamic", "quark", kv_cache_scales=True, ignore=("lm_head", *ROUTERS))
    assert quant is not None and quant.kv_cache == planned.kv_cache
    assert (quant.weights, quant.activations) == (planned.weights, planned.activations)
    dtypes = tensor_dtypes(run.output)
    # loaded by vLLM as attn.k_scale / attn.v_scale (QuarkConfig.get_cache_scale_mapper)
    assert dtypes["model.layers.1.self_attn.k_proj.output_scale"] == "F32"
    assert dtypes["model.layers.1.self_attn.v_proj.output_scale"] == "F32"
    assert "model.layers.1.self_attn.q_proj.output_scale" not in dtypes
    assert parse_manifest(run.termination).expert_coverage is not None  # the data pass ran, experts counted


def test_unsupported_pair_fails_cleanly(tiny_model_dir: Path, run_calibrate) -> None:
    run = run_calibrate(tiny_model_dir, scheme="fp8-block", tool="quark")
    assert run.code == 1
    assert run.termination.startswith("calibration failed: quark cannot produce fp8-block")

"""Published, pre-quantized checkpoints end to end through the pure core: capacity from the real layout, the per-pool
decision, and the property that no rendered Deployment for such a checkpoint ever carries `--quantization`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantfleet.api.checkpoint import CheckpointQuant, UnsupportedCheckpoint, from_calibration, parse_checkpoint_quant
from quantfleet.api.recipe import SCHEMES
from quantfleet.hardware import GPU_TABLE, facts_for
from quantfleet.hardware.pools import group_pools
from quantfleet.inferenceservice import decide as isvc
from quantfleet.planning import Checkpoint, PlanError, PlanRequest, decide, parse_model_config
from quantfleet.planning.capacity import GIB, checkpoint_weight_bytes, weight_bytes
from quantfleet.planning.model import ModelArch
from quantfleet.render.vllm import ModelLocation, PoolRollout, ServiceInput, vllm_args
from quantfleet_dev.testing import gpu_node

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
PUBLISHED = sorted(p.name for p in FIXTURES.iterdir() if (p / "SOURCE.md").is_file())
BASES = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "trinity-mini"]


def files(model: str) -> dict[str, str]:
    out = {"config.json": (FIXTURES / model / "config.json").read_text()}
    hq = FIXTURES / model / "hf_quant_config.json"
    if hq.is_file():
        out["hf_quant_config.json"] = hq.read_text()
    return out


def load(model: str) -> tuple[ModelArch, CheckpointQuant]:
    data = files(model)
    cfg = json.loads(data["config.json"])
    q = parse_checkpoint_quant(
        cfg, json.loads(data["hf_quant_config.json"]) if "hf_quant_config.json" in data else None
    )
    assert q is not None
    return parse_model_config(cfg), q


def request(model: str, **kw: Any) -> tuple[ModelArch, PlanRequest]:
    arch, q = load(model)
    req = PlanRequest(max_model_len=8192, checkpoints=(Checkpoint.published(q, f"hf://{model}"),), base_model=False)
    return arch, (PlanRequest(**{**req.__dict__, **kw}) if kw else req)


# --- the property: never --quantization for a checkpoint that names its method --------------------------------------


def service(model: str, gpu: str, **spec: Any) -> dict[str, Any]:
    nodes = [gpu_node(f"{gpu.lower()}-0", gpu, 8)]
    obj = {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns", "uid": "u", "generation": 1},
        # 4096, or less for a model that cannot take it (the 2048-token tiny MoE of the Quark export fixtures)
        "spec": {
            "model": {"uri": "hf://org/model", "configRef": {"name": "cfg"}},
            "maxModelLen": min(
                4096, parse_model_config(json.loads(files(model)["config.json"])).max_position_embeddings
            ),
            **spec,
        },
    }
    out = isvc.outcome(
        obj,
        isvc.ServiceFacts(
            pools=group_pools(nodes),
            configmaps={"cfg": {"data": files(model)}},
            quantized_model=None,
            deployments={},
            vllm_image="vllm/vllm-openai:v0.33.0",
            vllm_cpu_image="vllm/vllm-openai-cpu:v0.33.0-x86_64",
            now="2026-12-02T12:00:00Z",
        ),
    )
    return {"apply": out.apply, "status": out.status, "events": out.events}


@pytest.mark.parametrize("gpu", [s.key for s in GPU_TABLE])
@pytest.mark.parametrize("model", PUBLISHED)
def test_no_rendered_deployment_for_a_prequantized_checkpoint_carries_quantization(model: str, gpu: str) -> None:
    out = service(model, gpu)
    deployments = [o for o in out["apply"] if o["kind"] == "Deployment"]
    for dep in deployments:
        for container in dep["spec"]["template"]["spec"]["containers"]:
            args = container.get("args") or []
            assert not any(a.startswith("--quantization") for a in args), (model, gpu, args)
    status = out["status"]
    if deployments:
        (d,) = status["decisions"]
        assert "quantization" not in d
        assert d["checkpointFormat"] == load(model)[1].label
        assert d["compute"] and " via " in d["compute"]
        return
    # refused: a CannotHonour naming the method (vLLM cannot load it) or the GPU (cannot run it here), or too big
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["status"] == "False" and planned["reason"] == "CannotHonour", planned
    assert (
        "cannot serve the" in planned["message"]
        or "bitsandbytes" in planned["message"]
        or ("does not fit" in planned["message"])
    ), planned["message"]


@pytest.mark.parametrize("gpu", ["H100-SXM", "A10G", "MI300X"])
@pytest.mark.parametrize("model", BASES[:2])
def test_base_models_still_get_on_the_fly_fp8_where_native(model: str, gpu: str) -> None:
    out = service(model, gpu)
    (dep,) = [o for o in out["apply"] if o["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--quantization" in args) is (gpu != "A10G")
    assert out["status"]["decisions"][0]["checkpointFormat"] == "bf16"


def test_renderer_drops_quantization_for_a_quantized_checkpoint() -> None:
    svc = ServiceInput("s", "ns", "u", "s", 4096, 0.92, "vllm/vllm-openai:v0.33.0")
    roll = PoolRollout("p", {}, "nvidia.com/gpu", 1, "auto", "fp8", ModelLocation("hf://a/b"), 1)
    assert "--quantization" in vllm_args(svc, roll)
    roll = PoolRollout(
        "p", {}, "nvidia.com/gpu", 1, "auto", "fp8", ModelLocation("hf://a/b"), 1, quantized_checkpoint=True
    )
    assert "--quantization" not in vllm_args(svc, roll)


def test_hf_quant_config_key_of_the_configmap_is_read() -> None:
    out = service("nvidia--llama-3.1-70b-instruct-fp8", "B200")
    (d,) = out["status"]["decisions"]
    assert d["checkpointFormat"] == "fp8-w8a8/modelopt" and d["kvCacheDtype"] == "fp8_e4m3"
    assert d["weightsGib"] == "67.7"  # FP8, not the 131 GiB of a BF16 plan


def test_precision_is_a_constraint_not_a_transformation() -> None:
    ok = service("openai--gpt-oss-20b", "H100-SXM", precision="mxfp4")
    assert ok["status"]["decisions"][0]["precision"] == "mxfp4"
    bad = service("openai--gpt-oss-20b", "H100-SXM", precision="fp8")
    planned = next(c for c in bad["status"]["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == "CannotHonour"
    assert "precision fp8 requested but the checkpoint" in planned["message"]
    assert not [o for o in bad["apply"] if o["kind"] == "Deployment"]


# --- the per-pool decision -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "gpu", "precision", "native", "kv", "compute"),
    [
        ("nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing", "h100", "fp8", True,
         "bfloat16", "fp8 W8A8 via CUTLASS"),
        ("nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing", "a10g", "fp8", False,
         "bfloat16", "fp8 weights, bf16 math via Humming/Marlin (W8A16)"),
        ("amd--llama-3.1-8b-instruct-fp8-kv", "mi300x", "fp8", True, "fp8_e4m3",
         "fp8 W8A8 via torch._scaled_mm (FNUZ)"),
        ("qwen--qwen3-30b-a3b-fp8", "l40s", "fp8-block", False, "bfloat16",
         "fp8 block weights, bf16 math via Marlin for linears (MoE experts: FP8 Triton)"),
        ("nvidia--qwen3-30b-a3b-nvfp4", "b200", "nvfp4", True, "fp8_e4m3",
         "nvfp4 W4A4 via FlashInfer (FP4 tensor cores)"),
        ("nvidia--qwen3-30b-a3b-nvfp4", "h100", "nvfp4", False, "fp8_e4m3",
         "nvfp4 weights, bf16 math via Humming/Marlin (W4A16)"),
        ("moma1820--meta-llama-3.1-8b-instruct-gptq-4bit", "t4", "w4a16", True, "float16",
         "int4 weights, fp16 math via Marlin"),
        ("openai--gpt-oss-20b", "h100", "mxfp4", False, "bfloat16",
         "mxfp4 weights, bf16 math via OAI Triton MoE kernels"),
        ("openai--gpt-oss-20b", "b200", "mxfp4", True, "bfloat16",
         "mxfp4 experts, bf16 activations via FlashInfer TRT-LLM MoE"),
    ],
)  # fmt: skip
def test_decision(model: str, gpu: str, precision: str, native: bool, kv: str, compute: str) -> None:
    arch, req = request(model)
    d = decide(arch, facts_for(gpu, 8), req)
    assert (d.precision, d.native, d.kv_cache_dtype, d.compute) == (precision, native, kv, compute)
    assert d.quantization_flag is None and not any(a.startswith("--quantization") for a in d.vllm_args)
    assert d.checkpoint_format == load(model)[1].label and d.kernel
    if not native:
        assert any("is not native" in w for w in d.warnings)


def test_calibrated_kv_scales_say_so_and_an_explicit_kv_dtype_wins() -> None:
    arch, req = request("nvidia--llama-3.1-70b-instruct-fp8")
    d = decide(arch, facts_for("b200", 8), req)
    assert d.kv_cache_dtype == "fp8_e4m3" and "calibrated FP8 KV-cache scales" in d.reason
    assert not any("without calibrated KV scales" in w for w in d.warnings)
    arch, req = request("nvidia--llama-3.1-70b-instruct-fp8", kv_cache_dtype="bfloat16")
    assert decide(arch, facts_for("b200", 8), req).kv_cache_dtype == "bfloat16"
    arch, req = request("nvidia--llama-3.1-70b-instruct-fp8")
    d = decide(arch, facts_for("a100-80gb", 8), req)
    assert d.kv_cache_dtype == "bfloat16" and any("FP8 KV is not native" in w for w in d.warnings)


@pytest.mark.parametrize(
    ("model", "gpu", "message"),
    [
        ("nvidia--qwen3-30b-a3b-nvfp4", "mi300x", "EmulationNvFp4LinearKernel"),
        ("openai--gpt-oss-20b", "t4", "Minimum capability: 80"),
        ("nvidia--llama-3.1-70b-instruct-fp8", "t4", "Minimum capability: 80"),
    ],
)
def test_refused_pools_say_why(model: str, gpu: str, message: str) -> None:
    arch, req = request(model)
    with pytest.raises(PlanError) as info:
        decide(arch, facts_for(gpu, 8), req)
    assert info.value.kind == "unsupported" and message in info.value.reason and "vLLM 0.33.0" in info.value.reason


def test_precision_mismatch_is_an_invalid_request() -> None:
    arch, req = request("moma1820--meta-llama-3.1-8b-instruct-gptq-4bit", precision="bf16")
    with pytest.raises(PlanError) as info:
        decide(arch, facts_for("h100", 8), req)
    assert info.value.kind == "invalid-request" and "int4-w4a16/gptq (w4a16)" in info.value.reason


# --- capacity from the real layout ---------------------------------------------------------------------------------


def test_gpt_oss_keeps_everything_but_the_experts_in_bf16() -> None:
    arch, q = load("openai--gpt-oss-20b")
    wb = checkpoint_weight_bytes(arch, q)
    assert wb.quantized_roles == ("expert",)
    assert {"attention", "embedding", "lm_head", "router"} <= set(wb.bf16_roles)
    assert 12 < wb.total / GIB < 14  # the 20B model in ~13 GB, vs ~39 GiB in BF16
    assert weight_bytes(arch, "bf16").total / GIB > 38


def test_modelopt_nvfp4_quantizes_attention_too_and_keeps_routers() -> None:
    arch, q = load("nvidia--qwen3-30b-a3b-nvfp4")
    wb = checkpoint_weight_bytes(arch, q)
    assert set(wb.quantized_roles) == {"attention", "expert"} and "router" in wb.bf16_roles
    # an MLP-only NVFP4 checkpoint of the same model would keep attention in 16 bits
    mlp_only = checkpoint_weight_bytes(arch, from_calibration("nvfp4", "modelopt"))
    assert mlp_only.by_role["attention"] > wb.by_role["attention"]


def test_fp8_block_excluded_routers_are_bf16() -> None:
    arch, q = load("qwen--qwen3-30b-a3b-fp8")
    wb = checkpoint_weight_bytes(arch, q)
    assert "router" in wb.bf16_roles and set(wb.quantized_roles) == {"attention", "expert"}


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "fp8-static"])
def test_calibrated_layout_matches_the_format_estimate(base: str, scheme: Any) -> None:
    """Both paths meet: a calibrated checkpoint sized from its description equals the per-format estimate."""
    cfg = json.loads((FIXTURES / base / "config.json").read_text())
    arch = parse_model_config(cfg)
    ckpt = Checkpoint.calibrated(scheme, "compressed-tensors", "pvc://c/x")
    assert checkpoint_weight_bytes(arch, ckpt.quant).total == weight_bytes(arch, ckpt.weight_format).total


def test_modelopt_int4_awq_calibration_cannot_be_served() -> None:
    with pytest.raises(PlanError) as info:
        Checkpoint.calibrated("w4a16", "modelopt", "pvc://c/x", algorithm="awq")
    assert info.value.kind == "unsupported" and "no INT4-AWQ or MXFP4 algo" in info.value.reason
    with pytest.raises(UnsupportedCheckpoint):
        from_calibration("mxfp4", "modelopt")


def test_render_cli_reads_hf_quant_config_beside_config_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from quantfleet.cli import main

    (tmp_path / "isvc.yaml").write_text(
        "apiVersion: quantfleet.io/v1alpha1\nkind: InferenceService\nmetadata: {name: q}\n"
        "spec: {model: {uri: 'hf://nvidia/Qwen3-30B-A3B-NVFP4', configRef: {name: c}}, maxModelLen: 8192}\n"
    )
    (tmp_path / "nodes.yaml").write_text(json.dumps(gpu_node("b200-0", "B200", 8)))
    rc = main(
        [
            "render",
            "-f",
            str(tmp_path / "isvc.yaml"),
            "--model-config",
            str(FIXTURES / "nvidia--qwen3-30b-a3b-nvfp4" / "config.json"),
            "--nodes",
            str(tmp_path / "nodes.yaml"),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and "checkpoint nvfp4/modelopt" in err and "--quantization" not in out

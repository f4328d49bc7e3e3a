"""The SGLang launch command rendered from a pool's decision (quantfleet.render.sglang): mapping and contract."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from quantfleet.api import sglang_flags as sf
from quantfleet.render.sglang import (
    SglangUnsupported,
    kv_cache_dtype_for_sglang,
    mem_fraction_static_for,
    quantization_for_sglang,
    sglang_args,
    sglang_command,
)
from quantfleet.render.vllm import PORT, CpuRollout, ModelLocation, PoolRollout, ServiceInput


def make_service(**overrides: object) -> ServiceInput:
    base: dict[str, object] = {
        "name": "chat",
        "namespace": "llm",
        "uid": "u-1",
        "served_model_name": "qwen3",
        "max_model_len": 32768,
        "gpu_memory_utilization": 0.92,
        "image": "lmsysorg/sglang:v0.5.23",
    }
    return ServiceInput(**{**base, **overrides})  # type: ignore[arg-type]


def make_rollout(**overrides: object) -> PoolRollout:
    base: dict[str, object] = {
        "pool": "h100",
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "gpu_resource": "nvidia.com/gpu",
        "tensor_parallel_size": 2,
        "kv_cache_dtype": "auto",
        "quantization": None,
        "model": ModelLocation("pvc://models/qwen3-8b"),
        "replicas": 1,
    }
    return PoolRollout(**{**base, **overrides})  # type: ignore[arg-type]


def option(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` (None when absent)."""
    return args[args.index(flag) + 1] if flag in args else None


def test_command_is_the_launch_module() -> None:
    assert sglang_command() == ["python3", "-m", "sglang.launch_server"]


def test_bf16_pool_on_a_mounted_checkpoint() -> None:
    args = sglang_args(make_service(), make_rollout())
    assert args == [
        "--model-path",
        "/models/qwen3-8b",
        "--served-model-name",
        "qwen3",
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--tp-size",
        "2",
        "--context-length",
        "32768",
        "--kv-cache-dtype",
        "auto",
        "--enable-metrics",
    ]
    assert sf.problems_in_args(args) == []


def test_hf_model_with_revision_is_fetched_into_the_cache() -> None:
    args = sglang_args(make_service(), make_rollout(model=ModelLocation("hf://Qwen/Qwen3-8B@abc123")))
    assert option(args, "--model-path") == "Qwen/Qwen3-8B"
    assert option(args, "--revision") == "abc123"
    assert option(args, "--download-dir") == "/cache/models"
    assert sf.problems_in_args(args) == []


def test_on_the_fly_fp8_of_a_bf16_checkpoint() -> None:
    args = sglang_args(make_service(), make_rollout(quantization="fp8", kv_cache_dtype="fp8_e4m3"))
    assert option(args, "--quantization") == "fp8"
    assert option(args, "--kv-cache-dtype") == "fp8_e4m3"


def test_a_quantized_checkpoint_gets_no_quantization_flag() -> None:
    # SGLang detects the checkpoint's method; a different --quantization stops it at start-up.
    args = sglang_args(make_service(), make_rollout(quantization="fp8", quantized_checkpoint=True))
    assert "--quantization" not in args


def test_vllm_extra_args_are_not_passed_to_sglang() -> None:
    # spec.vllm.extraArgs are vLLM flags: SGLang would refuse the ones it lacks (--enable-prefix-caching) at start-up
    args = sglang_args(make_service(extra_args=("--enable-prefix-caching",)), make_rollout())
    assert "--enable-prefix-caching" not in args and args[-1] == "--enable-metrics"


@pytest.mark.parametrize(
    ("utilization", "expected"),
    [(0.92, None), (0.95, None), (1.0, None), (0.5, 0.5), (0.85, 0.85)],
)
def test_mem_fraction_static_mapping(utilization: float, expected: float | None) -> None:
    assert mem_fraction_static_for(utilization) == expected


def test_default_utilization_leaves_the_static_fraction_to_sglang() -> None:
    assert "--mem-fraction-static" not in sglang_args(make_service(), make_rollout())


def test_lowered_utilization_caps_the_static_fraction() -> None:
    args = sglang_args(make_service(gpu_memory_utilization=0.6), make_rollout())
    assert option(args, "--mem-fraction-static") == "0.6"


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_mem_fraction_static_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(SglangUnsupported):
        mem_fraction_static_for(bad)


@pytest.mark.parametrize("dtype", ["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"])
def test_kv_cache_dtype_keeps_the_vllm_spelling(dtype: str) -> None:
    assert kv_cache_dtype_for_sglang(dtype) == dtype


@pytest.mark.parametrize("dtype", ["fp8", "fp16", "float16", ""])
def test_kv_cache_dtype_outside_the_contract_is_refused(dtype: str) -> None:
    with pytest.raises(SglangUnsupported, match="KV cache dtype"):
        kv_cache_dtype_for_sglang(dtype)


def test_quantization_other_than_fp8_is_refused() -> None:
    assert quantization_for_sglang("fp8") == "fp8"
    with pytest.raises(SglangUnsupported, match="fp8_per_block"):
        quantization_for_sglang("fp8_per_block")
    with pytest.raises(SglangUnsupported):
        sglang_args(make_service(), make_rollout(quantization="awq"))


def test_cpu_pool_is_refused() -> None:
    roll = make_rollout(cpu=CpuRollout(kv_cache_space_gib=8, cpus="16", memory="64Gi"))
    with pytest.raises(SglangUnsupported, match="CPU pool"):
        sglang_args(make_service(), roll)


MODELS = ("pvc://models/qwen3-8b", "hf://Qwen/Qwen3-8B", "hf://Qwen/Qwen3-8B@main", "s3://bucket/qwen3")
KV = ("auto", "bfloat16", "fp8_e4m3", "fp8_e5m2")


@pytest.mark.parametrize(
    ("uri", "kv", "quantization", "checkpoint", "utilization"),
    list(itertools.product(MODELS, KV, (None, "fp8"), (False, True), (0.92, 0.7))),
)
def test_every_rendering_stays_inside_the_contract(
    uri: str, kv: str, quantization: str | None, checkpoint: bool, utilization: float
) -> None:
    roll = make_rollout(
        model=ModelLocation(uri), kv_cache_dtype=kv, quantization=quantization, quantized_checkpoint=checkpoint
    )
    args = sglang_args(make_service(gpu_memory_utilization=utilization), roll)
    assert sf.problems_in_args(args) == []
    assert sf.FLAG_ENABLE_METRICS in args  # /metrics exists only with it


def test_rollout_dataclasses_are_the_vllm_ones() -> None:
    # The lead passes the same PoolRollout to either renderer; the SGLang side adds no field.
    assert {f.name for f in dataclasses.fields(PoolRollout)} >= {"kv_cache_dtype", "quantization", "cpu"}

"""Where SGLang 0.5.23 refuses what vLLM serves (quantfleet.hardware.sglang), rule by rule."""

from __future__ import annotations

import pytest

from quantfleet.api.checkpoint import CheckpointQuant
from quantfleet.api.vllm_flags import DETECTED_QUANTIZATION_METHODS
from quantfleet.hardware.sglang import SglangUnsupported, sglang_method, sglang_refusal

H100 = (9, 0)
L40S = (8, 9)
A100 = (8, 0)
T4 = (7, 5)


def nvidia(precision: str, method: str | None, cc: tuple[int, int] | None, kv: str = "auto") -> str | None:
    return sglang_refusal(precision, method, kv, "gpu", "nvidia", compute_capability=cc)


def amd(precision: str, method: str | None, arch: str | None, kv: str = "auto") -> str | None:
    return sglang_refusal(precision, method, kv, "gpu", "amd", gfx_arch=arch)


@pytest.mark.parametrize(
    ("precision", "method", "cc"),
    [
        ("bf16", None, T4),
        ("bf16", None, None),
        ("fp8", None, A100),
        ("fp8", None, H100),
        ("fp8", "compressed-tensors", A100),
        ("w4a16", "compressed-tensors", A100),
        ("nvfp4", "compressed-tensors", H100),
        ("fp8", "modelopt", L40S),
        ("nvfp4", "modelopt_fp4", A100),
        ("fp8", "fp8", A100),
        ("mxfp4", "mxfp4", H100),
        ("mxfp4", "gpt_oss_mxfp4", A100),
        ("w4a16", "auto_gptq", A100),
        ("w4a16", "auto_awq", A100),
        ("fp8", "quark", H100),
        ("mxfp4", "quark", A100),
    ],
)
def test_nvidia_pools_sglang_serves(precision: str, method: str | None, cc: tuple[int, int] | None) -> None:
    assert nvidia(precision, method, cc) is None


@pytest.mark.parametrize(
    ("precision", "method", "cc", "words"),
    [
        ("fp8", None, T4, "compute capability 8.0 for on-the-fly FP8"),
        ("fp8", "modelopt", A100, "compute capability 8.9 for the modelopt checkpoint (SGLang method modelopt_fp8)"),
        ("w4a16", "auto_gptq", T4, "sglang/srt/layers/quantization/gptq/gptq.py GPTQMarlinConfig"),
        ("w4a16", "auto_awq", T4, "AWQMarlinConfig"),
        ("fp8", "quark", A100, "QuarkW8A8Fp8"),
        ("fp8", "compressed-tensors", T4, "CompressedTensorsW8A16Fp8"),
        ("fp8", "fp8", None, "compute capability is unknown"),
    ],
)
def test_nvidia_floors_above_vllms(precision: str, method: str | None, cc: tuple[int, int] | None, words: str) -> None:
    reason = nvidia(precision, method, cc)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize(
    ("precision", "method", "arch"),
    [
        ("bf16", None, "gfx942"),
        ("fp8", None, "gfx942"),
        ("fp8", "compressed-tensors", "gfx942"),
        ("fp8", "fp8", "gfx950"),
        ("w4a16", "auto_awq", "gfx942"),
        ("fp8", "quark", "gfx942"),
        ("mxfp4", "quark", "gfx950"),
        ("mxfp4", "mxfp4", "gfx950"),
        ("mxfp4", "gpt_oss_mxfp4", "gfx950"),
    ],
)
def test_amd_pools_sglang_serves(precision: str, method: str | None, arch: str) -> None:
    assert amd(precision, method, arch) is None


@pytest.mark.parametrize(
    ("precision", "method", "arch", "words"),
    [
        ("w4a16", "auto_gptq", "gfx942", "does not load the auto_gptq checkpoint (SGLang method gptq_marlin) on ROCm"),
        ("fp8", "modelopt", "gfx942", "on ROCm"),
        ("nvfp4", "modelopt_fp4", "gfx950", "on ROCm"),
        ("mxfp4", "mxfp4", "gfx942", "only for gfx950 (MI350X/MI355X), not gfx942"),
        ("mxfp4", "gpt_oss_mxfp4", None, "not an unknown gfx arch"),
    ],
)
def test_amd_refusals(precision: str, method: str, arch: str | None, words: str) -> None:
    reason = amd(precision, method, arch)
    assert reason is not None and words in reason, reason


def test_cpu_pools_are_refused() -> None:
    reason = sglang_refusal("bf16", None, "auto", "cpu", None)
    assert reason is not None and "CPU pools" in reason


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bf16", None, "fp8", "gpu", "nvidia"), "KV cache dtype 'fp8'"),
        (("bf16", None, "auto", "gpu", "intel"), "NVIDIA or AMD"),
        (("bf16", None, "auto", "tpu", "nvidia"), "unknown device"),
        (("int8", None, "auto", "gpu", "nvidia"), "unknown precision"),
        (("w4a16", None, "auto", "gpu", "nvidia"), "needs a quantized checkpoint"),
        (("w4a16", "bitsandbytes", "auto", "gpu", "nvidia"), "no SGLang equivalent"),
    ],
)
def test_other_refusals(args: tuple[str, str | None, str, str, str], words: str) -> None:
    reason = sglang_refusal(*args, compute_capability=H100)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize("kv", ["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"])
def test_every_kv_dtype_quantfleet_decides_is_served(kv: str) -> None:
    assert nvidia("bf16", None, H100, kv=kv) is None


def test_every_vllm_method_has_an_sglang_name() -> None:
    # Every CheckpointQuant.vllm_method (the set vLLM's contract declares) maps, so none falls through as "unknown".
    for method in DETECTED_QUANTIZATION_METHODS:
        assert sglang_method(method, "nvidia")
        assert sglang_method(method, "amd")
    assert sglang_method("auto_awq", "nvidia") == "awq_marlin"
    assert sglang_method("auto_awq", "amd") == "awq"
    with pytest.raises(SglangUnsupported):
        sglang_method("gguf", "nvidia")


def test_signature_takes_what_the_decision_carries() -> None:
    # checkpoint_method is CheckpointQuant.vllm_method; the field exists under that name.
    assert "vllm_method" in CheckpointQuant.__dataclass_fields__

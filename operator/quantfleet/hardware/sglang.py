"""Where SGLang 0.5.23 serves a precision / checkpoint / KV cache differently from vLLM: the refusals, with sources.

Why this module exists: the precision decision (``quantfleet.planning.decision``) and the kernel table
(``quantfleet.hardware.kernels``) are written against vLLM 0.33.0. A pool served by SGLang takes the same decision
and then asks :func:`sglang_refusal` whether SGLang can serve it too; the answer is ``None`` (it can) or one sentence
naming the reason and the SGLang file it was read from. Only the rules that *differ* from vLLM live here; a
combination vLLM already refuses never reaches this function.

The call::

    sglang_refusal(precision, checkpoint_method, kv_cache_dtype, device, gpu_vendor,
                   compute_capability=(9, 0), gfx_arch=None) -> str | None

- ``precision``: ``Decision.precision`` (bf16, fp8, fp8-block, w4a16, nvfp4, mxfp4);
- ``checkpoint_method``: ``Decision.checkpoint.quant.vllm_method`` (vLLM's name: compressed-tensors, modelopt,
  modelopt_fp4, fp8, mxfp4, gpt_oss_mxfp4, auto_gptq, auto_awq, quark), ``None`` for BF16 base weights (bf16, or
  on-the-fly ``--quantization fp8``);
- ``kv_cache_dtype``: ``Decision.kv_cache_dtype`` (vLLM spelling);
- ``device``: ``Decision.device`` ("gpu" or "cpu");
- ``gpu_vendor``: ``GpuFacts.vendor`` ("nvidia" or "amd"; ignored for CPU);
- ``compute_capability`` (NVIDIA, ``GpuFacts.compute_capability``) and ``gfx_arch`` (AMD, ``GpuFacts.gfx_arch``):
  SGLang's per-method capability floors and its gfx950-only MXFP4 need them; when the one a quantized pool needs is
  missing the answer is a refusal (as ``quantfleet.hardware.kernels`` does for an unknown capability).

What differs from vLLM 0.33.0 (paths inside the SGLang 0.5.23 wheel; the floors and the ROCm list are checked against
the source by tests/unit/test_sglang_contract.py):

- no CPU pools: SGLang's CPU backend (Intel Xeon builds) is out of quantfleet's scope, CPU pools stay on vLLM;
- capability floors (``get_min_capability``, enforced in ``model_loader/loader.py``): on-the-fly and checkpoint FP8
  (``Fp8Config``) 8.0 where vLLM serves FP8 weight-only through Marlin from 7.5 (T4); ModelOpt FP8 8.9 (vLLM: 8.0);
  GPTQ/AWQ through Marlin 8.0 (vLLM: 7.5); compressed-tensors FP8 W8A8 falls back to W8A16 below 8.9 and NVFP4
  W4A4 to weight-only below 10.0, every scheme quantfleet plans needing 8.0;
- ROCm: only the methods in ``rocm_supported_quantization`` (``configs/model_config.py``) load: compressed-tensors,
  fp8, mxfp4, awq, quark, ... but not ModelOpt and not GPTQ (plain ``gptq`` is registered only on NPU/CPU/XPU, and
  ``gptq_marlin`` is not on the ROCm list), where vLLM serves GPTQ on ROCm through its Triton/Exllama kernels;
- MXFP4 on AMD only on gfx950 (MI350X/MI355X): ``Mxfp4Config`` is registered ``if is_cpu() or is_cuda() or
  _is_gfx95_supported or is_xpu()`` (``layers/quantization/__init__.py``), so not on MI300X/MI325X (gfx942);
- GPTQ and AWQ on CUDA are served only when the checkpoint converts to Marlin (``override_quantization_method`` ->
  ``gptq_marlin`` / ``awq_marlin``): 4/8-bit symmetric GPTQ, 4-bit AWQ, Marlin group sizes. This module sees the
  method only; a non-convertible checkpoint is refused by SGLang at start-up ("Unknown quantization method: gptq").
- KV cache dtypes: SGLang's ``--kv-cache-dtype`` choices include all four vLLM spellings quantfleet emits (``auto``,
  ``bfloat16``, ``fp8_e4m3``, ``fp8_e5m2``; ``arg_groups/fields/model.py``); anything else is refused.

Pure: no I/O, imports only the SGLang flag declarations.
"""

from __future__ import annotations

from typing import Final

from quantfleet.api import sglang_flags as sf

SRC_FIELDS: Final = "sglang/srt/arg_groups/fields/model.py (kv_cache_dtype choices)"
SRC_REGISTRY: Final = "sglang/srt/layers/quantization/__init__.py (BASE_QUANTIZATION_METHODS)"
SRC_ROCM: Final = "sglang/srt/configs/model_config.py (_verify_quantization: rocm_supported_quantization)"
SRC_LOADER: Final = "sglang/srt/model_loader/loader.py (minimum capability check)"
SRC_CPU: Final = "sglang/srt/layers/quantization/__init__.py (CPU_QUANTIZATION_METHODS: the Xeon backend)"

# vLLM method name (CheckpointQuant.vllm_method) -> the method SGLang resolves the same checkpoint to, per vendor.
_SGLANG_METHOD: Final[dict[str, tuple[str, str]]] = {
    # vllm_method: (on NVIDIA, on AMD)
    "compressed-tensors": (sf.QUANT_METHOD_COMPRESSED_TENSORS, sf.QUANT_METHOD_COMPRESSED_TENSORS),
    "modelopt": (sf.QUANT_METHOD_MODELOPT_FP8, sf.QUANT_METHOD_MODELOPT_FP8),
    "modelopt_fp4": (sf.QUANT_METHOD_MODELOPT_FP4, sf.QUANT_METHOD_MODELOPT_FP4),
    "fp8": (sf.QUANT_METHOD_FP8, sf.QUANT_METHOD_FP8),
    "mxfp4": (sf.QUANT_METHOD_MXFP4, sf.QUANT_METHOD_MXFP4),
    "gpt_oss_mxfp4": (sf.QUANT_METHOD_MXFP4, sf.QUANT_METHOD_MXFP4),
    # GPTQ has no ROCm path in SGLang; the AMD entry names what the checkpoint says, which ROCm then refuses.
    "auto_gptq": (sf.QUANT_METHOD_GPTQ_MARLIN, sf.QUANT_METHOD_GPTQ_MARLIN),
    # awq_marlin needs CUDA (AWQMarlinConfig.is_awq_marlin_compatible); on ROCm the checkpoint stays `awq`.
    "auto_awq": (sf.QUANT_METHOD_AWQ_MARLIN, sf.QUANT_METHOD_AWQ),
    "quark": (sf.QUANT_METHOD_QUARK, sf.QUANT_METHOD_QUARK),
}

# The config class behind each SGLang method and its get_min_capability() in 0.5.23 (file, class): the contract test
# compares every entry with the source. Compressed-tensors is listed by the schemes quantfleet plans (each falls back
# to a weight-only scheme at 8.0 where its own math is missing); Quark by its FP8 scheme.
MIN_CAPABILITY: Final[dict[str, tuple[int, str, str]]] = {
    sf.QUANT_METHOD_FP8: (80, "layers/quantization/fp8.py", "Fp8Config"),
    sf.QUANT_METHOD_MODELOPT_FP8: (89, "layers/quantization/modelopt_quant.py", "ModelOptFp8Config"),
    sf.QUANT_METHOD_MODELOPT_FP4: (80, "layers/quantization/modelopt_quant.py", "ModelOptFp4Config"),
    sf.QUANT_METHOD_MXFP4: (80, "layers/quantization/mxfp4.py", "Mxfp4Config"),
    sf.QUANT_METHOD_GPTQ_MARLIN: (80, "layers/quantization/gptq/gptq.py", "GPTQMarlinConfig"),
    sf.QUANT_METHOD_AWQ_MARLIN: (80, "layers/quantization/awq/awq.py", "AWQMarlinConfig"),
    sf.QUANT_METHOD_COMPRESSED_TENSORS: (
        80,
        "layers/quantization/compressed_tensors/schemes/compressed_tensors_w8a16_fp8.py",
        "CompressedTensorsW8A16Fp8",
    ),
    sf.QUANT_METHOD_QUARK: (89, "layers/quantization/quark/schemes/quark_w8a8_fp8.py", "QuarkW8A8Fp8"),
}
# Floors of the other classes the rules above lean on (checked by the contract test as well).
SCHEME_MIN_CAPABILITY: Final[dict[str, int]] = {
    "CompressedTensorsW8A8Fp8": 89,
    "CompressedTensorsWNA16": 80,
    "CompressedTensorsW4A16Fp4": 80,
    "QuarkW4A4MXFP4": 70,
}
# Quark checkpoints whose scheme is not FP8 (MXFP4) load from 7.0 (QuarkW4A4MXFP4).
_QUARK_NON_FP8_FLOOR: Final = 70

# AMD architectures SGLang registers MXFP4 on (`_is_gfx95_supported`).
MXFP4_GFX_ARCHES: Final[frozenset[str]] = frozenset({"gfx950"})

_PRECISIONS: Final[frozenset[str]] = frozenset({"bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4"})


class SglangUnsupported(ValueError):
    """A value quantfleet would pass to SGLang is not one SGLang accepts."""


def kv_cache_dtype_for_sglang(vllm_value: str) -> str:
    """SGLang's ``--kv-cache-dtype`` for a vLLM-spelled KV cache dtype.

    The four values quantfleet decides (auto, bfloat16, fp8_e4m3, fp8_e5m2) are spelled the same in SGLang 0.5.23
    (``auto`` also follows the model dtype there). Anything else (vLLM's platform-dependent ``fp8`` alias, ``fp16``,
    ...) raises :class:`SglangUnsupported`.
    """
    if vllm_value in sf.KV_CACHE_DTYPES:
        return vllm_value
    raise SglangUnsupported(
        f"KV cache dtype {vllm_value!r} is not one SGLang is given by quantfleet "
        f"(one of {', '.join(sf.KV_CACHE_DTYPES)}; {SRC_FIELDS})"
    )


def sglang_method(vllm_method: str, gpu_vendor: str) -> str:
    """The method SGLang resolves a checkpoint to, from vLLM's name for it; unknown: SglangUnsupported."""
    pair = _SGLANG_METHOD.get(vllm_method)
    if pair is None:
        raise SglangUnsupported(f"checkpoint method {vllm_method!r} has no SGLang equivalent in quantfleet's table")
    return pair[1] if gpu_vendor == "amd" else pair[0]


def sglang_refusal(
    precision: str,
    checkpoint_method: str | None,
    kv_cache_dtype: str,
    device: str,
    gpu_vendor: str | None,
    *,
    compute_capability: tuple[int, int] | None = None,
    gfx_arch: str | None = None,
) -> str | None:
    """``None`` when SGLang 0.5.23 serves this pool's decision, else why not (one sentence, with its SGLang source).

    See the module docstring for the arguments and the rules.
    """
    if device == "cpu":
        return f"SGLang does not serve CPU pools in quantfleet (its CPU backend is out of scope; {SRC_CPU})"
    if device != "gpu":
        return f"unknown device {device!r}"
    if gpu_vendor not in ("nvidia", "amd"):
        return f"SGLang pools need an NVIDIA or AMD GPU, not {gpu_vendor!r}"
    if precision not in _PRECISIONS:
        return f"unknown precision {precision!r}"
    try:
        kv_cache_dtype_for_sglang(kv_cache_dtype)
    except SglangUnsupported as exc:
        return str(exc)

    if checkpoint_method is None:
        if precision == "bf16":
            return None
        if precision != "fp8":
            return f"{precision} needs a quantized checkpoint: SGLang quantizes on the fly only to fp8 in quantfleet"
        method = sf.QUANT_METHOD_FP8
        what = "on-the-fly FP8 (--quantization fp8)"
    else:
        try:
            method = sglang_method(checkpoint_method, gpu_vendor)
        except SglangUnsupported as exc:
            return str(exc)
        what = f"the {checkpoint_method} checkpoint (SGLang method {method})"

    if gpu_vendor == "amd":
        if method not in sf.ROCM_QUANTIZATION_METHODS:
            return f"SGLang does not load {what} on ROCm ({SRC_ROCM})"
        if method == sf.QUANT_METHOD_MXFP4 and gfx_arch not in MXFP4_GFX_ARCHES:
            arch = gfx_arch or "an unknown gfx arch"
            return (
                f"SGLang registers MXFP4 on AMD only for gfx950 (MI350X/MI355X), not {arch} "
                f"({SRC_REGISTRY}: `_is_gfx95_supported`)"
            )
        return None

    floor, path, cls = MIN_CAPABILITY[method]
    if method == sf.QUANT_METHOD_QUARK and precision not in ("fp8", "fp8-block"):
        floor, path, cls = (
            _QUARK_NON_FP8_FLOOR,
            "layers/quantization/quark/schemes/quark_w4a4_mxfp4.py",
            "QuarkW4A4MXFP4",
        )
    if compute_capability is None:
        return f"the GPU's compute capability is unknown; SGLang needs {floor // 10}.{floor % 10} for {what}"
    have = compute_capability[0] * 10 + compute_capability[1]
    if have < floor:
        return (
            f"SGLang needs compute capability {floor // 10}.{floor % 10} for {what}, the GPU has "
            f"{compute_capability[0]}.{compute_capability[1]} (sglang/srt/{path} {cls}.get_min_capability; "
            f"{SRC_LOADER})"
        )
    return None

"""Which vLLM 0.33.0 kernel serves a quantized checkpoint on a GPU: natively, through a fallback, or not at all.

Why this module exists: the GPU table (gpus.yaml) says what a GPU can do with a *format*; a published checkpoint is
more specific than a format. vLLM resolves each checkpoint to a config class whose capability floor differs by method
(ModelOpt FP8 needs compute capability 8.0 where compressed-tensors FP8 loads on 7.5; Quark FP8 needs 8.9), and then
walks a per-platform kernel list whose first supported entry wins. This module restates those rules for the schemes
quantfleet plans (`quantfleet.api.checkpoint.ServingScheme`), keyed by the checkpoint's method and the GPU's compute
capability or gfx arch, and names the kernel the way vLLM 0.33.0 does. It decides for every checkpoint, published or
calibrated by a QuantizedModel.

Levels (the same words as quantfleet.hardware.support):

- ``native``   — the checkpoint's scheme runs in its own kernel: FP8 / FP4 tensor-core math for W8A8 / W4A4 schemes;
  for schemes that are weight-only by declaration (INT4 W4A16, NVFP4A16, FP8 W8A16) the format's own dequantizing
  kernel (Marlin, Machete, Triton W4A16) is its native path.
- ``fallback`` — vLLM serves it, but the GPU lacks the scheme's math: weights are dequantized to 16 bits inside a
  weight-only kernel (Marlin, Humming, OAI Triton), so the checkpoint saves memory and the math is 16-bit.
- ``no``       — vLLM 0.33.0 refuses it at start-up on this GPU (capability floor, no kernel on the platform), or only
  emulates it (dequantize + BF16 matmul, logged as "slow and unoptimized": a correctness tool, not a serving path).

Every rule cites the vLLM 0.33.0 file it was read from (paths inside the wheel, relative to ``vllm/``); the whole table
with those references is docs/checkpoint-formats.md. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from quantfleet.api.checkpoint import CheckpointQuant
from quantfleet.hardware.support import Support, SupportAccessors

_N, _F, _X = Support.NATIVE, Support.FALLBACK, Support.NO

# Sources (vLLM 0.33.0 wheel, relative to vllm/), cited by the rules below.
SRC_CAPABILITY: Final = "config/vllm.py:916-943 (_get_quantization_config: minimum capability)"
SRC_FP8_KERNELS: Final = "model_executor/kernels/linear/__init__.py:458-491 (_POSSIBLE_FP8_KERNELS)"
SRC_WFP8A16: Final = "model_executor/kernels/linear/__init__.py:522-537 (_POSSIBLE_WFP8A16_KERNELS)"
SRC_FP8_MARLIN: Final = "model_executor/kernels/linear/scaled_mm/marlin.py:29-49"
SRC_BLOCK: Final = "model_executor/kernels/linear/__init__.py:494-520 (_POSSIBLE_FP8_BLOCK_KERNELS)"
SRC_MP: Final = "model_executor/kernels/linear/__init__.py:539-566,887-955 (_POSSIBLE_KERNELS, choose_mp_linear_kernel)"
SRC_NVFP4: Final = "model_executor/kernels/linear/__init__.py:592-612,1191-1309 (_POSSIBLE_NVFP4_KERNELS)"
SRC_MXFP4: Final = "model_executor/kernels/linear/__init__.py:625-642 (_POSSIBLE_MXFP4_KERNELS)"
SRC_MXFP4_MOE: Final = "model_executor/layers/fused_moe/oracle/mxfp4.py:402-435 (gpt-oss MXFP4 MoE backends)"
SRC_MODELOPT_MIN: Final = "model_executor/layers/quantization/modelopt.py:449 (ModelOptFp8Config min capability 80)"
SRC_QUARK_MIN: Final = "model_executor/layers/quantization/quark/schemes/quark_w8a8_fp8.py:75-77 (min capability 89)"
SRC_MXFP4_MIN: Final = "model_executor/layers/quantization/mxfp4.py:71 (Mxfp4Config min capability 80)"
SRC_CT_MXFP4_MIN: Final = (
    "model_executor/layers/quantization/compressed_tensors/schemes/compressed_tensors_w4a4_mxfp4.py:46"
)
SRC_FNUZ: Final = "platforms/rocm.py:1259-1268, model_executor/layers/quantization/utils/w8a8_utils.py:109-129"

# Lowest NVIDIA capability quantfleet plans quantized checkpoints for: Marlin / Humming start at 7.5.
_TURING: Final = 75


@dataclass(frozen=True)
class KernelChoice:
    """How vLLM 0.33.0 runs one checkpoint on one GPU."""

    level: Support
    kernel: str | None  # the vLLM kernel / backend class, as vLLM names it (None when refused)
    compute: str  # what the pool computes in, e.g. "mxfp4 weights, bf16 math via Marlin"
    reason: str  # one sentence: why this level
    source: str  # where in vLLM 0.33.0 it was read

    @property
    def native(self) -> bool:
        return self.level is _N


def checkpoint_kernel(gpu: SupportAccessors, quant: CheckpointQuant) -> KernelChoice:
    """The kernel vLLM 0.33.0 serves `quant` with on `gpu` (a GpuFacts or a GPU table row)."""
    if gpu.vendor == "amd":
        return _amd(gpu.gfx_arch or "", quant)
    cc = gpu.compute_capability
    if cc is None:
        return KernelChoice(_X, None, "", "the GPU's compute capability is unknown", SRC_CAPABILITY)
    return _nvidia(cc[0] * 10 + cc[1], quant)


def _b16(c: int) -> str:
    return "fp16" if c < 80 else "bf16"


def _refuse(why: str, source: str) -> KernelChoice:
    return KernelChoice(_X, None, "", why, source)


def _nvidia(c: int, q: CheckpointQuant) -> KernelChoice:
    if c < _TURING:
        return _refuse(
            f"compute capability {c / 10:.1f}: quantfleet plans no quantized checkpoints below 7.5 (vLLM's Marlin "
            "fallbacks start at 7.5)",
            SRC_CAPABILITY,
        )
    scheme, m, b16 = q.scheme, q.method, _b16(c)
    wo = f"weights dequantized to {b16} inside the kernel: a memory win, not a math win"
    if scheme in ("fp8-w8a8", "fp8-block") and m == "modelopt" and c < 80:
        return _refuse(
            "vLLM's ModelOptFp8Config needs compute capability 8.0 ('The quantization method modelopt is not "
            "supported for the current GPU. Minimum capability: 80')",
            SRC_MODELOPT_MIN,
        )
    if scheme in ("fp8-w8a8", "fp8-block") and m == "quark" and c < 89:
        return _refuse(
            "vLLM's QuarkW8A8Fp8 scheme needs compute capability 8.9 ('Quantization scheme is not supported for the "
            "current GPU. Min capability: 89')",
            SRC_QUARK_MIN,
        )
    if scheme == "fp8-w8a8":
        if c < 89:
            kernel = (
                "HummingFP8ScaledMMLinearKernel (MarlinFP8ScaledMMLinearKernel without humming)"
                if m == "compressed-tensors"
                else "MarlinFP8ScaledMMLinearKernel"
            )
            return KernelChoice(
                _F,
                kernel,
                f"fp8 weights, {b16} math via {'Humming/Marlin' if m == 'compressed-tensors' else 'Marlin'} (W8A16)",
                f"no FP8 math below compute capability 8.9: vLLM loads the checkpoint as W8A16, {wo}",
                SRC_WFP8A16 if m == "compressed-tensors" else SRC_FP8_MARLIN,
            )
        if 100 <= c < 120:
            return KernelChoice(
                _N,
                "FlashInferFP8ScaledMMLinearKernel (per-tensor) / CutlassFP8ScaledMMLinearKernel",
                "fp8 W8A8 via FlashInfer/CUTLASS",
                "FP8 tensor-core GEMMs (FlashInfer on Blackwell for per-tensor scales, else CUTLASS)",
                SRC_FP8_KERNELS,
            )
        return KernelChoice(
            _N,
            "CutlassFP8ScaledMMLinearKernel",
            "fp8 W8A8 via CUTLASS",
            "FP8 tensor-core GEMMs (CUTLASS; compute capability 8.9 needs CUDA >= 12.4)",
            SRC_FP8_KERNELS,
        )
    if scheme == "fp8-w8a16":
        return KernelChoice(
            _N,
            "HummingFP8ScaledMMLinearKernel (MarlinFP8ScaledMMLinearKernel without humming)",
            f"fp8 weights, {b16} math via Humming/Marlin (W8A16)",
            "the checkpoint declares 16-bit activations (W8A16); its weight-only kernel runs here",
            SRC_WFP8A16,
        )
    if scheme == "fp8-block":
        if c < 89:
            return KernelChoice(
                _F,
                "MarlinFP8ScaledMMLinearKernel (linears), Marlin MoE experts",
                f"fp8 block weights, {b16} math via Marlin (W8A16)",
                f"no FP8 math below compute capability 8.9: block-FP8 layers run weight-only in Marlin, {wo}",
                SRC_BLOCK,
            )
        if c == 89:
            return KernelChoice(
                _F,
                "MarlinFP8ScaledMMLinearKernel (linears; CUTLASS block-FP8 needs 9.0 and Marlin precedes Triton); "
                "TritonExperts for MoE experts",
                f"fp8 block weights, {b16} math via Marlin for linears (MoE experts: FP8 Triton)",
                "no native block-scaled FP8 linear kernel before Hopper: vLLM picks weight-only Marlin for the linears",
                SRC_BLOCK,
            )
        return KernelChoice(
            _N,
            "DeepGEMM / CutlassFp8BlockScaledMMKernel",
            "fp8 block W8A8 via DeepGEMM/CUTLASS",
            "128x128 block-scaled FP8 GEMMs run natively (DeepGEMM, CUTLASS block FP8; Blackwell needs CUDA >= 12.8)",
            SRC_BLOCK,
        )
    if scheme == "int4-w4a16":
        if c == 90:
            return KernelChoice(
                _N,
                "MacheteLinearKernel (when type/group fit), else Humming, else MarlinLinearKernel",
                "int4 weights, bf16 math via Machete",
                "INT4 W4A16 is weight-only by design; Hopper has the Machete mixed-input GEMM",
                SRC_MP,
            )
        return KernelChoice(
            _N,
            "MarlinLinearKernel",
            f"int4 weights, {b16} math via Marlin",
            "INT4 W4A16 is weight-only by design: weights are dequantized to 16 bits in Marlin",
            SRC_MP,
        )
    if scheme == "nvfp4":
        if 100 <= c < 120:
            return KernelChoice(
                _N,
                "FlashInferCuteDslNvFp4LinearKernel (then FlashInferCutlass, CutlassNvFp4)",
                "nvfp4 W4A4 via FlashInfer (FP4 tensor cores)",
                "W4A4 on Blackwell FP4 tensor cores (CUDA >= 12.8)",
                SRC_NVFP4,
            )
        if c >= 120:
            return KernelChoice(
                _N,
                "FlashInferCutlassNvFp4LinearKernel",
                "nvfp4 W4A4 via FlashInfer CUTLASS (FP4 tensor cores)",
                "W4A4 on Blackwell FP4 tensor cores (sm120 kernels; CUDA >= 12.8)",
                SRC_NVFP4,
            )
        kernel = (
            "HummingNvFp4 (preferred at 9.0), else MarlinNvFp4LinearKernel" if c == 90 else "MarlinNvFp4LinearKernel"
        )
        return KernelChoice(
            _F,
            kernel,
            f"nvfp4 weights, {b16} math via {'Humming/Marlin' if c == 90 else 'Marlin'} (W4A16)",
            f"no FP4 tensor cores before Blackwell: the NVFP4 checkpoint runs as W4A16, {wo}",
            SRC_NVFP4,
        )
    if scheme == "nvfp4-w4a16":
        if c in (100, 103):
            kernel, words = "FlashInferCuteDslNvFp4W4A16LinearKernel (else MarlinNvFp4LinearKernel)", "FlashInfer"
        elif c == 90:
            kernel, words = "Humming, else MarlinNvFp4LinearKernel", "Humming/Marlin"
        else:
            kernel, words = "MarlinNvFp4LinearKernel", "Marlin"
        return KernelChoice(
            _N,
            kernel,
            f"nvfp4 weights, {b16} math via {words}",
            "NVFP4A16 is weight-only by design (vLLM forces its W4A16 kernel)",
            SRC_NVFP4,
        )
    if scheme == "mxfp4":
        if c < 80:
            return _refuse("vLLM's compressed-tensors MXFP4 scheme needs compute capability 8.0", SRC_CT_MXFP4_MIN)
        if c >= 100:
            return KernelChoice(
                _N,
                "FlashInferMxFp4LinearKernel",
                "mxfp4 W4A4 via FlashInfer (FP4 tensor cores)",
                "W4A4 on Blackwell FP4 tensor cores",
                SRC_MXFP4,
            )
        return KernelChoice(
            _F,
            "MarlinMxFp4LinearKernel" + (" (Humming preferred at 9.0)" if c == 90 else ""),
            "mxfp4 weights, bf16 math via Marlin (W4A16)",
            f"no FP4 tensor cores before Blackwell: MXFP4 runs weight-only, {wo}",
            SRC_MXFP4,
        )
    # mxfp4-experts (gpt-oss): the MoE backend list of fused_moe/oracle/mxfp4.py
    if c < 80:
        return _refuse(
            "vLLM's MXFP4 config needs compute capability 8.0 ('Minimum capability: 80'; it also needs BF16)",
            SRC_MXFP4_MIN,
        )
    if 100 <= c < 120:
        return KernelChoice(
            _N,
            "FLASHINFER_TRTLLM_MXFP4_BF16",
            "mxfp4 experts, bf16 activations via FlashInfer TRT-LLM MoE",
            "Blackwell runs the MXFP4 experts in FlashInfer's TRT-LLM MoE kernel (the checkpoint declares 16-bit "
            "activations)",
            SRC_MXFP4_MOE,
        )
    if c == 90:
        return KernelChoice(
            _F,
            "TRITON (OAI triton_kernels MoE)",
            "mxfp4 weights, bf16 math via OAI Triton MoE kernels",
            f"no MX hardware on Hopper: the MXFP4 experts run in OpenAI's Triton MoE kernels, {wo}",
            SRC_MXFP4_MOE,
        )
    why = (
        "sm120 has FP4 tensor cores but vLLM 0.33.0 demotes the OAI Triton MoE kernels below Marlin on family 120"
        if c >= 120
        else "no MX hardware before Hopper"
    )
    return KernelChoice(
        _F,
        "MARLIN (MoE)",
        "mxfp4 weights, bf16 math via Marlin",
        f"{why}: the MXFP4 experts run in Marlin, {wo}",
        SRC_MXFP4_MOE,
    )


def _amd(gfx: str, q: CheckpointQuant) -> KernelChoice:
    if gfx not in ("gfx942", "gfx950"):
        return _refuse(
            f"quantfleet has no rules for {gfx or 'this AMD GPU'}: it plans gfx942 and gfx950 only", SRC_FNUZ
        )
    scheme, m = q.scheme, q.method
    fnuz = gfx == "gfx942"
    if scheme in ("fp8-w8a8", "fp8-block"):
        conv = " (weights converted to FP8 E4M3 FNUZ at load, scales x2)" if fnuz else ""
        if scheme == "fp8-block":
            return KernelChoice(
                _N,
                "TritonFp8BlockScaledMMKernel (AiterFp8BlockScaledMMKernel with VLLM_ROCM_USE_AITER=1)",
                f"fp8 block W8A8 via Triton{' (FNUZ)' if fnuz else ''}",
                f"block-scaled FP8 GEMMs on the matrix cores{conv}",
                f"{SRC_BLOCK}; {SRC_FNUZ}",
            )
        return KernelChoice(
            _N,
            "torch._scaled_mm (PerTensorTorch / ChannelWiseTorch; AITER with VLLM_ROCM_USE_AITER=1)",
            f"fp8 W8A8 via torch._scaled_mm{' (FNUZ)' if fnuz else ''}",
            f"FP8 GEMMs on the matrix cores{conv}",
            f"{SRC_FP8_KERNELS}; {SRC_FNUZ}",
        )
    if scheme == "fp8-w8a16":
        return _refuse("vLLM 0.33.0 has no FP8 W8A16 kernel on ROCm (its ROCm list is empty)", SRC_WFP8A16)
    if scheme == "int4-w4a16":
        kernel = "Triton AWQ (AutoAWQLinearMethod)" if m == "awq" else "TritonW4A16LinearKernel"
        return KernelChoice(
            _N,
            kernel,
            "int4 weights, bf16 math via Triton",
            "INT4 W4A16 is weight-only by design: weights are dequantized to 16 bits in a Triton kernel",
            SRC_MP,
        )
    if scheme == "nvfp4":
        return _refuse(
            "vLLM 0.33.0 has only EmulationNvFp4LinearKernel on ROCm (dequantize to BF16 + matmul, logged as slow and "
            "unoptimized): not a serving path",
            SRC_NVFP4,
        )
    if scheme == "nvfp4-w4a16":
        return _refuse(
            "vLLM forces MarlinNvFp4LinearKernel for NVFP4A16 and Marlin FP4 is not available on ROCm ('Forced NVFP4 "
            "kernel MarlinNvFp4LinearKernel is not supported')",
            SRC_NVFP4,
        )
    if scheme == "mxfp4":
        if fnuz:
            return _refuse(
                "no MX hardware on gfx942: vLLM 0.33.0 would only emulate MXFP4 (EmulationMxfp4LinearKernel): not a "
                "serving path",
                SRC_MXFP4,
            )
        return KernelChoice(
            _N,
            "AiterMxfp4LinearKernel (needs AITER in the image)",
            "mxfp4 W4A4 via AITER",
            "native MX formats on gfx950",
            SRC_MXFP4,
        )
    # mxfp4-experts (gpt-oss)
    if fnuz:
        return KernelChoice(
            _F,
            "TRITON (OAI triton_kernels MoE; AITER_TRITON_MXFP4_BF16 with VLLM_ROCM_USE_AITER=1)",
            "mxfp4 weights, bf16 math via OAI Triton MoE kernels",
            "no MX hardware on gfx942: the MXFP4 experts are dequantized to BF16 inside OpenAI's Triton MoE kernels",
            SRC_MXFP4_MOE,
        )
    return KernelChoice(
        _N,
        "AITER_MXFP4_BF16 (with VLLM_ROCM_USE_AITER=1), else TRITON (OAI triton_kernels MoE)",
        "mxfp4 experts, bf16 activations via AITER/Triton MoE",
        "native MX formats on gfx950",
        SRC_MXFP4_MOE,
    )

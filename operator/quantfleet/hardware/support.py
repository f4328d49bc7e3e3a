"""What a GPU can do with each quantized format, as rules over compute capability / gfx arch.

Why this module exists: the GPU table (gpus.yaml) states the support levels of the GPUs we know, but a node can carry
a GPU the table has never heard of (a new SKU, a renamed product string). For those, quantfleet still has to decide
from what GPU Feature Discovery does tell us — compute capability, family, memory — and these rules are how. The
table test checks that every table row agrees with these rules, so the two can never drift apart.

Support levels (vLLM 0.33.0 source; the facts with their file:line references are in docs/gpu-formats.md):

- ``native``   — the format's own kernel runs on this GPU: low-precision tensor-core math for W8A8/W4A4 formats
  (FP8 W8A8, FP8 block, NVFP4, MXFP4), the format's designated weight-only kernel for W8A16/W4A16 formats.
- ``fallback`` — vLLM loads the checkpoint and serves it, but through a lesser path: weight-only Marlin (weights
  stay small, math is 16-bit, so a memory win and no compute win) or a generic Triton kernel. Planning may pick it,
  and must say so in its reason.
- ``no``       — vLLM refuses the checkpoint on this GPU, or only emulates the format (treated as no: emulation is a
  correctness tool, not a serving path).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, get_args

from quantfleet.api.schemes import FORMATS as FORMATS
from quantfleet.api.schemes import Format as Format


class Support(StrEnum):
    """How well vLLM runs a quantized format on a GPU (see the module docstring for the exact meaning)."""

    NATIVE = "native"
    FALLBACK = "fallback"
    NO = "no"


Vendor = Literal["nvidia", "amd"]
VENDORS: Final[tuple[Vendor, ...]] = get_args(Vendor)

# NVIDIA spellings are GFD's `nvidia.com/gpu.family` values; cdna* are AMD's; "unknown" is for GPUs derived from labels
# that name no family we know.
Family = Literal[
    "pascal", "volta", "turing", "ampere", "ada-lovelace", "hopper", "blackwell", "cdna2", "cdna3", "cdna4", "unknown"
]
FAMILIES: Final[tuple[Family, ...]] = get_args(Family)

Fp8Flavour = Literal["e4m3fn", "e4m3fnuz"]

ComputeCapability = tuple[int, int]


@dataclass(frozen=True)
class FormatSupport:
    """Support level for every format quantfleet can plan with."""

    fp8_w8a8: Support
    fp8_weight_only: Support
    fp8_block: Support
    nvfp4: Support
    mxfp4: Support
    int4_w4a16: Support

    def level(self, fmt: Format) -> Support:
        """The level for one format."""
        level: Support = getattr(self, fmt)
        return level

    def as_dict(self) -> dict[Format, Support]:
        """Format → level, in FORMATS order."""
        return {fmt: self.level(fmt) for fmt in FORMATS}

    @classmethod
    def from_levels(cls, levels: dict[Format, Support]) -> FormatSupport:
        """Build from a complete mapping (KeyError if a format is missing)."""
        return cls(
            fp8_w8a8=levels["fp8_w8a8"],
            fp8_weight_only=levels["fp8_weight_only"],
            fp8_block=levels["fp8_block"],
            nvfp4=levels["nvfp4"],
            mxfp4=levels["mxfp4"],
            int4_w4a16=levels["int4_w4a16"],
        )


class SupportAccessors:
    """Mixin for GpuSpec and GpuFacts: ``x.fp8_w8a8`` etc. as shortcuts for ``x.support.fp8_w8a8``, and
    ``x.support_reason(fmt)`` for the sentence a decision can quote."""

    support: FormatSupport
    vendor: Vendor
    family: Family
    compute_capability: ComputeCapability | None
    gfx_arch: str | None

    def support_reason(self, fmt: Format) -> str:
        """Why ``fmt`` is native / fallback / no on this GPU, in one sentence."""
        level = self.support.level(fmt)
        return support_reason(fmt, level, self.vendor, self.family, self.compute_capability, self.gfx_arch)

    @property
    def fp8_w8a8(self) -> Support:
        return self.support.fp8_w8a8

    @property
    def fp8_weight_only(self) -> Support:
        return self.support.fp8_weight_only

    @property
    def fp8_block(self) -> Support:
        return self.support.fp8_block

    @property
    def nvfp4(self) -> Support:
        return self.support.nvfp4

    @property
    def mxfp4(self) -> Support:
        return self.support.mxfp4

    @property
    def int4_w4a16(self) -> Support:
        return self.support.int4_w4a16


_N, _F, _X = Support.NATIVE, Support.FALLBACK, Support.NO

# Thresholds, each read from the vLLM 0.33.0 source (docs/gpu-formats.md).
TURING: Final[ComputeCapability] = (7, 5)  # lowest capability quantfleet plans quantized formats for (Marlin on sm75)
MARLIN_BF16: Final[ComputeCapability] = (8, 0)  # Marlin MXFP4 needs BF16 activations: Ampere and later
FP8_W8A8: Final[ComputeCapability] = (8, 9)  # CUTLASS FP8 GEMM: Ada and later
HOPPER: Final[ComputeCapability] = (9, 0)  # native block-scaled FP8
BLACKWELL: Final[ComputeCapability] = (10, 0)  # FP4 tensor cores: NVFP4 W4A4 and MXFP4


def nvidia_support(cc: ComputeCapability) -> FormatSupport:
    """Support levels for an NVIDIA GPU of compute capability ``cc`` (docs/gpu-formats.md)."""
    if cc < TURING:
        return FormatSupport(_X, _X, _X, _X, _X, _X)
    return FormatSupport(
        fp8_w8a8=_N if cc >= FP8_W8A8 else _F,
        fp8_weight_only=_N,
        fp8_block=_N if cc >= HOPPER else _F,
        nvfp4=_N if cc >= BLACKWELL else _F,
        mxfp4=_N if cc >= BLACKWELL else (_F if cc >= MARLIN_BF16 else _X),
        int4_w4a16=_N,
    )


# gfx arch → (family, FP8 flavour, support). Only the CDNA generations vLLM plans quantized formats for.
_AMD_ARCHES: Final[dict[str, tuple[Family, Fp8Flavour, FormatSupport]]] = {
    "gfx942": ("cdna3", "e4m3fnuz", FormatSupport(_N, _X, _N, _X, _X, _N)),
    "gfx950": ("cdna4", "e4m3fn", FormatSupport(_N, _X, _N, _X, _N, _N)),
}
_NOTHING: Final[FormatSupport] = FormatSupport(_X, _X, _X, _X, _X, _X)


def amd_support(gfx_arch: str) -> FormatSupport:
    """Support levels for an AMD GPU of ``gfx_arch``; architectures we have no rules for support nothing quantized."""
    entry = _AMD_ARCHES.get(gfx_arch)
    return entry[2] if entry else _NOTHING


def amd_family(gfx_arch: str) -> Family:
    """CDNA generation of a gfx arch ("unknown" if we have no rules for it)."""
    if gfx_arch == "gfx90a":
        return "cdna2"
    entry = _AMD_ARCHES.get(gfx_arch)
    return entry[0] if entry else "unknown"


def amd_fp8_flavour(gfx_arch: str) -> Fp8Flavour:
    """gfx942 computes FP8 as FNUZ; everything else speaks OCP e4m3fn."""
    entry = _AMD_ARCHES.get(gfx_arch)
    return entry[1] if entry else "e4m3fn"


def amd_arch_known(gfx_arch: str) -> bool:
    """Whether we have support rules for this gfx arch."""
    return gfx_arch in _AMD_ARCHES


def family_for_cc(cc: ComputeCapability) -> Family:
    """GFD's family name for a compute capability ("unknown" outside the generations we know)."""
    major, minor = cc
    if major == 6:
        return "pascal"
    if major == 7:
        return "turing" if minor >= 5 else "volta"
    if major == 8:
        return "ada-lovelace" if minor >= 9 else "ampere"
    if major == 9:
        return "hopper"
    if major in (10, 11, 12):
        return "blackwell"
    return "unknown"


# The LOWEST compute capability of each family: when only the family label is known we assume the weakest member,
# so a derived GPU is never credited with a native path it may not have.
_FAMILY_FLOOR: Final[dict[str, ComputeCapability]] = {
    "pascal": (6, 0),
    "volta": (7, 0),
    "turing": (7, 5),
    "ampere": (8, 0),
    "ada-lovelace": (8, 9),
    "hopper": (9, 0),
    "blackwell": (10, 0),
}


def cc_floor_for_family(family: str) -> ComputeCapability | None:
    """Lowest compute capability of a GFD family, or None for a family we do not know."""
    return _FAMILY_FLOOR.get(family)


def as_family(value: str) -> Family | None:
    """``value`` as a Family literal, or None if it is not one."""
    for family in FAMILIES:
        if family == value:
            return family
    return None


_FORMAT_NAMES: Final[dict[Format, str]] = {
    "fp8_w8a8": "FP8 W8A8",
    "fp8_weight_only": "FP8 weight-only (W8A16)",
    "fp8_block": "Block-scaled FP8",
    "nvfp4": "NVFP4",
    "mxfp4": "MXFP4",
    "int4_w4a16": "INT4 weight-only (W4A16)",
}

_LEVEL_WORDS: Final[dict[Support, str]] = {
    Support.NATIVE: "runs natively",
    Support.FALLBACK: "runs only as a fallback",
    Support.NO: "is not available",
}

_MARLIN_WO: Final = "weight-only through Marlin: weights stay small, the math is 16-bit (a memory win, not a speed win)"

# (format, level, vendor) → why; levels not listed fall through to a generic sentence in support_reason.
_REASONS: Final[dict[tuple[Format, Support, Vendor], str]] = {
    ("fp8_w8a8", _N, "nvidia"): "FP8 tensor-core GEMMs (CUTLASS; compute capability >= 8.9, CUDA >= 12.4)",
    ("fp8_w8a8", _N, "amd"): "FP8 GEMMs on the matrix cores",
    (
        "fp8_w8a8",
        _F,
        "nvidia",
    ): f"no FP8 math below compute capability 8.9: FP8 checkpoints load as W8A16, {_MARLIN_WO}",
    ("fp8_weight_only", _N, "nvidia"): f"runs {_MARLIN_WO}",
    ("fp8_weight_only", _X, "amd"): "no W8A16 FP8 path on ROCm (Marlin is CUDA-only); serve FP8 W8A8 instead",
    ("fp8_block", _N, "nvidia"): "128x128 block-scaled FP8 GEMMs run natively",
    ("fp8_block", _N, "amd"): "block-scaled FP8 GEMMs run on ROCm's FP8 kernels",
    ("fp8_block", _F, "nvidia"): f"no native block-scaled FP8 kernel before Hopper: vLLM runs the linears {_MARLIN_WO}",
    ("nvfp4", _N, "nvidia"): "W4A4 on Blackwell FP4 tensor cores (CUDA >= 12.8)",
    ("nvfp4", _F, "nvidia"): f"no FP4 tensor cores: NVFP4 checkpoints run as W4A16, {_MARLIN_WO}",
    ("nvfp4", _X, "amd"): "NVFP4 is emulation-only on AMD: not a serving path",
    ("mxfp4", _N, "nvidia"): "W4A4 on Blackwell FP4 tensor cores",
    ("mxfp4", _N, "amd"): "native MX formats on gfx950",
    ("mxfp4", _F, "nvidia"): f"no FP4 tensor cores: MXFP4 checkpoints run as W4A16, {_MARLIN_WO}",
    ("mxfp4", _X, "nvidia"): "Marlin's MXFP4 kernel needs BF16 activations (compute capability >= 8.0)",
    ("mxfp4", _X, "amd"): "no native MX formats before gfx950",
    ("int4_w4a16", _N, "nvidia"): "GPTQ/AWQ weights are dequantized to 16-bit before the matmul (Marlin): "
    "saves memory, not math",
    ("int4_w4a16", _N, "amd"): "GPTQ/AWQ weights are dequantized to 16-bit before the matmul (ROCm Triton/ExLlama "
    "kernels): saves memory, not math",
}


def support_reason(
    fmt: Format,
    level: Support,
    vendor: Vendor,
    family: Family,
    cc: ComputeCapability | None,
    gfx_arch: str | None,
) -> str:
    """One sentence — "<format> <runs natively | runs only as a fallback | is not available> on <gpu>: <why>" — for
    decision reasons and ``quantfleet plan`` output."""
    if vendor == "nvidia":
        gpu = f"{family} (compute capability {cc[0]}.{cc[1]})" if cc else family
    else:
        gpu = f"{family} ({gfx_arch})" if gfx_arch else family
    why = _REASONS.get((fmt, level, vendor))
    if fmt == "fp8_w8a8" and level is _N and vendor == "amd":
        fnuz = amd_fp8_flavour(gfx_arch or "") == "e4m3fnuz"
        why = f"{why}, as {'E4M3 FNUZ (OCP checkpoints are converted at load)' if fnuz else 'OCP E4M3'}"
    if why is None:
        below_turing = vendor == "nvidia" and (cc is None or cc < TURING)
        unknown_amd = vendor == "amd" and not amd_arch_known(gfx_arch or "")
        why = (
            "quantfleet plans no quantized formats for this architecture: serve it in 16-bit"
            if below_turing or unknown_amd
            else "vLLM has no path for it here"
        )
    return f"{_FORMAT_NAMES[fmt]} {_LEVEL_WORDS[level]} on {gpu}: {why}"

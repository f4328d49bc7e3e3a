"""Node labels → CpuFacts: what a GPU-less node's CPU can do for vLLM's CPU backend, and which kernel serves what.

Why this module exists: a CPU pool is served by vLLM's CPU backend, and what that backend can run depends on the
instruction set: an FP8 KV cache needs AVX-512 or AMX, INT4 W4A16 weights need the AVX-512 build of vLLM's
``cpu_gemm_wna16``, FP8-block weights need AMX tiles. The operator never runs code on a node; all it knows about a
node's CPU is what Node Feature Discovery (NFD) published as ``feature.node.kubernetes.io/cpu-cpuid.<FLAG>=true``
labels (flag names as NFD's cpuid source spells them, e.g. ``AVX512F``, ``AMXTILE``; NFD docs, "Feature labels",
CPU section). This module turns those labels into one ``CpuFacts`` and, per checkpoint scheme, into the vLLM 0.33.0
CPU kernel or the reason the backend refuses it (``cpu_checkpoint_kernel``; the measured behaviour of the CPU build
is in docs/vllm-cpu.md).

It also goes the other way (``nfd_labels_for``): the NFD labels a node of a given ISA level carries, for the sandbox's
simulated CPU pool and test builders. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from quantfleet.api.checkpoint import CheckpointQuant
from quantfleet.hardware.kernels import KernelChoice
from quantfleet.hardware.support import Support

# ------------------------------------------------------------------------------------------------ label keys

NFD_CPUID: Final = "feature.node.kubernetes.io/cpu-cpuid."
NFD_VENDOR: Final = "feature.node.kubernetes.io/cpu-model.vendor_id"
ARCH_LABEL: Final = "kubernetes.io/arch"
INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
# Nodes that run the control plane never serve models, whatever their CPU.
CONTROL_PLANE_LABELS: Final = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")

CpuIsa = Literal["amx", "avx512", "avx2", "unknown"]
CPU_ISAS: Final[tuple[CpuIsa, ...]] = get_args(CpuIsa)
_RANK: Final[dict[CpuIsa, int]] = {"unknown": 0, "avx2": 1, "avx512": 2, "amx": 3}

# What each level needs, as NFD cpuid flags. AVX-512 is what torch.cpu._is_avx512_supported() checks (F + BW + VL +
# DQ: every AVX-512 server CPU since Skylake-SP has them); AMX is what vLLM's CPU attention and FP8-block kernels
# check (torch.cpu._is_amx_tile_supported()), on top of AVX-512.
AVX2_FLAGS: Final = frozenset({"AVX2"})
AVX512_FLAGS: Final = frozenset({"AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ"})
AMX_FLAGS: Final = frozenset({"AMXTILE", "AMXBF16"})
# The flag whose label selects a pool of that level when the nodes have no instance-type label.
ISA_SELECTOR_FLAG: Final[dict[CpuIsa, str]] = {"amx": "AMXTILE", "avx512": "AVX512F", "avx2": "AVX2"}

# Realistic NFD flag sets per level (a Sapphire Rapids / Ice Lake / Zen 2 class CPU), for builders.
_AVX2_FLAGS: Final = ("AVX", "AVX2", "FMA3", "AESNI", "ADX")
_AVX512_FLAGS: Final = (*_AVX2_FLAGS, "AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL", "AVX512VNNI")
_NFD_FLAGS: Final[dict[CpuIsa, tuple[str, ...]]] = {
    "avx2": _AVX2_FLAGS,
    "avx512": _AVX512_FLAGS,
    "amx": (*_AVX512_FLAGS, "AVX512BF16", "AVX512FP16", "AMXTILE", "AMXBF16", "AMXINT8"),
    "unknown": (),
}

# vLLM 0.33.0 CPU attention (v1/attention/backends/cpu_attn.py:78-79, get_supported_head_sizes); any other head size
# does not load (a tiny model with head_dim 16 was tried: docs/vllm-cpu.md).
CPU_HEAD_SIZES: Final[tuple[int, ...]] = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# The architecture the pinned CPU image is built for (versions.toml vllm.cpu_image, tag suffix -x86_64).
CPU_IMAGE_ARCH: Final = "amd64"

# Sources (vLLM 0.33.0 wheel, relative to vllm/), cited by the kernel rules below.
SRC_CPU_FP8: Final = (
    "model_executor/kernels/linear/__init__.py:477-483 (CPU FP8 kernels), kernels/linear/scaled_mm/cpu.py:348-462"
)
SRC_CPU_FP8_BLOCK: Final = (
    "model_executor/kernels/linear/__init__.py:511-514, kernels/linear/scaled_mm/cpu.py:233-246 (requires AMX tile)"
)
SRC_CPU_W8A16: Final = "model_executor/kernels/linear/__init__.py:530-532 (no CPU W8A16 FP8 kernel)"
SRC_CPU_WNA16: Final = (
    "model_executor/kernels/linear/__init__.py:560-564, kernels/linear/mixed_precision/cpu.py:21 (CPUWNA16LinearKernel"
    " calls _C.cpu_gemm_wna16, built only into the AVX-512 extension)"
)
SRC_CPU_FP4: Final = "model_executor/kernels/linear/__init__.py (no CPU entry in the NVFP4 / MXFP4 kernel lists)"
SRC_CPU_FP8_KV: Final = "v1/attention/backends/cpu_attn.py:539-551, 69-75"
SRC_CPU_ONLINE_FP8: Final = (
    "measured: vllm-cpu 0.32.0 registers _C::static_scaled_fp8_quant as a stub (docs/vllm-cpu.md)"
)


@dataclass(frozen=True)
class CpuFacts:
    """What quantfleet knows about the CPUs of one node (or the weakest node of a pool), and how it knows it.

    ``flags`` are NFD cpuid flag names; ``labelled`` is False when the node carries no NFD cpuid labels at all (then
    ``isa`` is "unknown" and only what needs no vector extension is planned)."""

    arch: str
    isa: CpuIsa
    flags: frozenset[str]
    vendor: str | None
    labelled: bool

    @property
    def avx512(self) -> bool:
        return _RANK[self.isa] >= _RANK["avx512"]

    @property
    def amx(self) -> bool:
        return self.isa == "amx"

    @property
    def fp8_kv_cache(self) -> bool:
        """vLLM's CPU attention takes an FP8 KV cache only on x86 with AVX-512 or AMX (cpu_attn.py:551)."""
        return self.avx512

    @property
    def name(self) -> str:
        """Display name, used in pool names and reasons: cpu-amx, cpu-avx512, cpu-avx2, cpu-unknown."""
        return f"cpu-{self.isa}"

    def describe(self) -> str:
        words = {
            "amx": "AMX + AVX-512",
            "avx512": "AVX-512, no AMX",
            "avx2": "AVX2 only",
            "unknown": "no NFD cpu-cpuid labels",
        }[self.isa]
        vendor = f"{self.vendor} " if self.vendor else ""
        return f"{vendor}{self.arch} CPU, {words}"

    def missing(self, isa: CpuIsa) -> str:
        """Why this CPU is below `isa`, in words that name the labels (for refusals)."""
        need = {"amx": AMX_FLAGS | AVX512_FLAGS, "avx512": AVX512_FLAGS, "avx2": AVX2_FLAGS, "unknown": frozenset()}
        absent = sorted(need[isa] - self.flags)
        if not self.labelled:
            return f"the node carries no {NFD_CPUID}* labels (is Node Feature Discovery deployed?)"
        return "the node's NFD labels lack " + ", ".join(f"{NFD_CPUID}{f}" for f in absent)


def isa_of(flags: Iterable[str]) -> CpuIsa:
    have = frozenset(flags)
    if have >= AVX512_FLAGS | AMX_FLAGS:
        return "amx"
    if have >= AVX512_FLAGS:
        return "avx512"
    if have >= AVX2_FLAGS:
        return "avx2"
    return "unknown"


def cpu_facts_from_labels(labels: Mapping[str, str]) -> CpuFacts:
    """The CPU facts NFD's labels give (never raises: missing labels mean an "unknown" ISA)."""
    flags = frozenset(
        k.removeprefix(NFD_CPUID) for k, v in labels.items() if k.startswith(NFD_CPUID) and str(v).lower() == "true"
    )
    return CpuFacts(
        arch=labels.get(ARCH_LABEL, "amd64"),
        isa=isa_of(flags),
        flags=flags,
        vendor=labels.get(NFD_VENDOR),
        labelled=any(k.startswith(NFD_CPUID) for k in labels),
    )


def weakest(facts: Iterable[CpuFacts]) -> CpuFacts:
    """The facts every node of a group can honour: the lowest ISA level, the common flags. Raises ValueError when the
    group is empty or mixes architectures (a pod image is built for one)."""
    items = list(facts)
    if not items:
        raise ValueError("no CPU nodes")
    arches = sorted({f.arch for f in items})
    if len(arches) > 1:
        raise ValueError(f"the nodes mix CPU architectures ({', '.join(arches)}); a pool must have one")
    low = min(items, key=lambda f: _RANK[f.isa])
    common = frozenset.intersection(*(f.flags for f in items))
    vendors = {f.vendor for f in items}
    return CpuFacts(
        arch=arches[0],
        isa=low.isa,
        flags=common,
        vendor=vendors.pop() if len(vendors) == 1 else None,
        labelled=all(f.labelled for f in items),
    )


_SUFFIX: Final = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def memory_quantity_bytes(value: Any) -> int:
    """A Kubernetes memory quantity (64Gi, 65536Mi, 68719476736, 64G) in bytes; 0 when unreadable."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|k)?", str(value if value is not None else "").strip())
    return int(float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1)) if m else 0


def cpu_quantity_millis(value: Any) -> int:
    """A Kubernetes CPU quantity (16, 15500m, 1.5) in millicores; 0 when unreadable."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m)?", str(value if value is not None else "").strip())
    if not m:
        return 0
    return int(float(m.group(1))) if m.group(2) else int(float(m.group(1)) * 1000)


def nfd_labels_for(isa: CpuIsa, vendor: str = "Intel", arch: str = "amd64") -> dict[str, str]:
    """The labels NFD (and the kubelet's arch label) put on a node with a CPU of level `isa`; "unknown" gives only
    the arch label, as on a cluster without NFD."""
    labels = {ARCH_LABEL: arch}
    if isa == "unknown":
        return labels
    labels |= {f"{NFD_CPUID}{flag}": "true" for flag in _NFD_FLAGS[isa]}
    labels[NFD_VENDOR] = vendor
    return labels


# ------------------------------------------------------------------------------------------------ kernels on CPU

_N, _F, _X = Support.NATIVE, Support.FALLBACK, Support.NO


def cpu_checkpoint_kernel(cpu: CpuFacts, quant: CheckpointQuant) -> KernelChoice:
    """The kernel vLLM 0.33.0's CPU backend serves `quant` with on `cpu`, or why it refuses it.

    Only llm-compressor (compressed-tensors) checkpoints are planned on CPU pools: it is the format the CPU build
    was measured with (docs/vllm-cpu.md); the other methods reach CPU code paths nobody here has run."""
    scheme, method = quant.scheme, quant.method
    if scheme == "fp8-w8a16":
        return KernelChoice(_X, None, "", "vLLM has no CPU kernel for FP8 W8A16 checkpoints", SRC_CPU_W8A16)
    if scheme not in ("fp8-w8a8", "fp8-block", "int4-w4a16"):
        return KernelChoice(
            _X, None, "", f"vLLM has no CPU kernel for {scheme} checkpoints (FP4 formats are GPU-only)", SRC_CPU_FP4
        )
    if method != "compressed-tensors":
        return KernelChoice(
            _X,
            None,
            "",
            f"quantfleet plans only compressed-tensors (llm-compressor) checkpoints on CPU pools; {method} checkpoints"
            " reach vLLM CPU code paths that were never measured (docs/vllm-cpu.md)",
            SRC_CPU_FP8,
        )
    if scheme == "fp8-w8a8":
        per_tensor = quant.weights.strategy == "tensor"
        static_tensor_acts = quant.activations is not None and quant.activations.strategy == "tensor"
        # vLLM 0.33.0's AMX kernels: per-channel weights (any activations), or per-tensor weights with per-tensor
        # activations; per-tensor weights with per-token activations fall through to torch's FP8 kernels.
        amx_kernel = (
            "CPUFp8ChannelWiseScaledMMLinearKernel"
            if quant.weights.strategy == "channel"
            else ("CPUFp8PerTensorScaledMMLinearKernel" if per_tensor and static_tensor_acts else None)
        )
        if cpu.amx and amx_kernel is not None:
            kernel = amx_kernel
            return KernelChoice(
                _F,
                kernel,
                "fp8 weights, bf16 math via AMX BRGEMM (W8A16)",
                "no FP8 math on this CPU (vLLM's W8A8 CPU kernel needs AMX-FP8): the AMX kernel dequantizes the FP8"
                " weights, a memory win, not a math win",
                SRC_CPU_FP8,
            )
        kernel = "PerTensorTorchFP8ScaledMMLinearKernel" if per_tensor else "ChannelWiseTorchFP8ScaledMMLinearKernel"
        why = "no AMX" if not cpu.amx else "no AMX kernel for per-tensor weights with per-token activations"
        return KernelChoice(
            _F,
            kernel,
            "fp8 weights, emulated through torch._scaled_mm (slow)",
            f"{why}: vLLM falls back to torch's FP8 scaled_mm on CPU, which loads and answers but is slow (measured"
            " ~0.3 s per token on a 0.85 M-parameter model, 50x BF16: docs/vllm-cpu.md); a memory win only",
            SRC_CPU_FP8,
        )
    if scheme == "fp8-block":
        if cpu.amx:
            return KernelChoice(
                _F,
                "CPUFp8BlockScaledMMKernel",
                "fp8 block-scaled weights, bf16 math via AMX BRGEMM (W8A16)",
                "FP8-block weights are dequantized in vLLM's AMX block kernel: a memory win, not a math win",
                SRC_CPU_FP8_BLOCK,
            )
        return KernelChoice(
            _X,
            None,
            "",
            f"vLLM's CPU FP8-block kernels need AMX tiles ({cpu.missing('amx')})",
            SRC_CPU_FP8_BLOCK,
        )
    if scheme == "int4-w4a16":
        if cpu.avx512:
            return KernelChoice(
                _N,
                "CPUWNA16LinearKernel",
                "int4 weights, bf16 math (W4A16 via cpu_gemm_wna16)",
                "INT4 weight-only through vLLM's CPU W4A16 kernel (its native path: weight-only by declaration)",
                SRC_CPU_WNA16,
            )
        return KernelChoice(
            _X,
            None,
            "",
            "vLLM's CPU W4A16 kernel (_C.cpu_gemm_wna16) exists only in the AVX-512 build: on this CPU /health answers"
            f" but the first request fails (measured: docs/vllm-cpu.md); {cpu.missing('avx512')}",
            SRC_CPU_WNA16,
        )
    return KernelChoice(
        _X, None, "", f"vLLM has no CPU kernel for {scheme} checkpoints (FP4 formats are GPU-only)", SRC_CPU_FP4
    )

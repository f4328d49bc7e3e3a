"""Which GPU pool runs a calibration Job, how many GPUs it asks for, and why.

Calibration tools are CUDA programs, so only NVIDIA pools qualify. A scheme prefers pools that
run its format natively (NVFP4 -> Blackwell; FP8 -> Ada/Hopper/Blackwell); when none exists the
QuantizedModel waits with the reason, or falls back to the best other pool if the spec allows.
Among equally suited pools, Blackwell pools come last unless the scheme needs them (an FP8 job
does not take a Blackwell node when a Hopper one will do), then more memory per GPU first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantfleet.api.recipe import Scheme
from quantfleet.api.schemes import scheme_format
from quantfleet.hardware.pools import ClusterGpus, CpuPool, GpuPool
from quantfleet.planning.tools import scheme_rank

_FAMILY_RANK = {"turing": 0, "ampere": 1, "ada-lovelace": 2, "hopper": 3, "blackwell": 4}
CALIBRATION_HEADROOM = 1.25  # BF16 weights + activations/Hessians during calibration


@dataclass(frozen=True)
class Placement:
    pool: GpuPool | None
    gpu_count: int
    native: bool
    reason: str


def gpus_needed(bf16_weight_bytes: int | None, gpu_memory_mib: int) -> int:
    """Smallest power of two of GPUs whose memory holds the BF16 model with headroom (1 if size unknown).

    The caller compares the result with the pool's GPUs per node.
    """
    if not bf16_weight_bytes:
        return 1
    need = math.ceil(bf16_weight_bytes * CALIBRATION_HEADROOM / (gpu_memory_mib * 2**20))
    count = 1
    while count < need:
        count *= 2
    return count


def choose_calibration_pool(
    cluster: ClusterGpus, scheme: Scheme, bf16_weight_bytes: int | None, allow_fallback: bool, override_gpus: int | None
) -> Placement:
    fmt = scheme_format(scheme)
    if fmt is None:  # GGUF: llama.cpp's programs, CPU build in the calibration image; no GPU format to match
        return Placement(None, 0, False, f"{scheme} is calibrated by llama.cpp on CPU: no GPU pool is chosen for it")
    field = fmt.format
    candidates = [p for p in cluster.pools if p.facts.vendor == "nvidia" and p.usable]
    if not candidates:
        return Placement(None, 0, False, "no usable NVIDIA GPU pool in the cluster (calibration tools need CUDA)")
    native = [p for p in candidates if scheme_rank(scheme, p.facts.support) == 0]
    # Blackwell is only "needed" when no other family runs the scheme natively (FP4 math).
    blackwell_needed = all(p.facts.family == "blackwell" for p in native)

    def fits(pool: GpuPool) -> tuple[bool, int]:
        count = override_gpus or gpus_needed(bf16_weight_bytes, pool.facts.memory_mib)
        return count <= pool.gpus_per_node, count

    def order(pool: GpuPool) -> tuple[int, int, str]:
        over = int(pool.facts.family == "blackwell" and not blackwell_needed)
        return (over, -pool.facts.memory_mib, pool.name)

    for pool in sorted(native, key=order):
        ok, count = fits(pool)
        if ok:
            why = (
                f"pool {pool.name} ({pool.facts.family}) runs {scheme} natively ({field}); {count} GPU(s) of"
                f" {pool.facts.memory_mib // 1024} GiB hold the BF16 model"
                + ("" if bf16_weight_bytes else " (model size unknown: set source.modelConfigRef to size it)")
            )
            return Placement(pool, count, True, why)
    wanted = "Blackwell" if field == "nvfp4" else "Ada/Hopper/Blackwell" if field.startswith("fp8") else "suitable"
    if native:
        missing = f"the {wanted} pools ({', '.join(p.name for p in native)}) lack GPUs per node for this model"
    else:
        missing = f"no pool runs {scheme} natively ({wanted} GPUs wanted)"
    if not allow_fallback:
        return Placement(None, 0, False, f"{missing}; set spec.placement.allowFallback to calibrate elsewhere")
    others = sorted(candidates, key=lambda p: (-_FAMILY_RANK.get(p.facts.family, 0), -p.facts.memory_mib, p.name))
    for pool in others:
        ok, count = fits(pool)
        if ok:
            return Placement(
                pool,
                count,
                False,
                f"{missing}; falling back to pool {pool.name} ({pool.facts.family}, allowFallback): calibration runs"
                f" in emulation there, the checkpoint is the same but serving it natively still needs {wanted} GPUs",
            )
    return Placement(None, 0, False, f"{missing}; no pool has enough GPUs per node for the model either")


# llama.cpp's importance matrix runs the F16 model: its weights plus a context and buffers
GGUF_CALIBRATION_HEADROOM = 1.25


@dataclass(frozen=True)
class CpuPlacement:
    pool: CpuPool | None
    memory_bytes: int  # what the Job requests (0 when no pool)
    reason: str


def choose_gguf_pool(cluster: ClusterGpus, bf16_weight_bytes: int | None) -> CpuPlacement:
    """The CPU pool a GGUF calibration Job runs on: llama.cpp's converter, importance matrix and quantizer are CPU
    programs, so a GPU node is never taken for them. The pool with the most memory per node that holds the F16 model
    with headroom."""
    usable = sorted((p for p in cluster.cpu_pools if p.usable), key=lambda p: (-p.memory_bytes, p.name))
    if not usable:
        return CpuPlacement(
            None,
            0,
            "no usable CPU pool (GPU-less nodes) in the cluster: llama.cpp's GGUF converter and quantizer run on"
            " CPUs; add CPU nodes or set spec.placement.nodeSelector",
        )
    need = math.ceil(bf16_weight_bytes * GGUF_CALIBRATION_HEADROOM) if bf16_weight_bytes else 0
    pool = usable[0]
    gib = 2**30
    if need > pool.memory_bytes:
        return CpuPlacement(
            None,
            0,
            f"no CPU pool holds the F16 model for llama.cpp's importance matrix: {need / gib:.1f} GiB needed, the"
            f" largest ({pool.name}) has {pool.memory_bytes / gib:.1f} GiB allocatable per node",
        )
    size = f"{need / gib:.1f} GiB for the F16 model" if need else "model size unknown: set source.modelConfigRef"
    return CpuPlacement(
        pool,
        need,
        f"pool {pool.name} (CPU, {pool.memory_bytes / gib:.1f} GiB per node): llama.cpp's converter, importance"
        f" matrix and quantizer run on CPUs ({size})",
    )

"""The SGLang launch command for one pool: the same decision as a vLLM pool, spelled the way SGLang 0.5.23 reads it.

Pure. Takes the dataclasses the vLLM renderer already uses (``ServiceInput``, ``PoolRollout`` from
``quantfleet.render.vllm``) and builds the container ``command`` and ``args`` only from the names declared in
``quantfleet.api.sglang_flags`` (checked against the pinned SGLang source by tests/unit/test_sglang_contract.py).
The Deployment around it (probes on ``/health``, scrape on ``/metrics``, port, volumes, GPU resources) is the same
shape as vLLM's; this module renders only what differs.

How vLLM-style decision values map (facts and sources: docs/sglang.md):

| decision (vLLM spelling)           | SGLang flag                                                              |
|------------------------------------|--------------------------------------------------------------------------|
| model path / hf repo (positional)  | ``--model-path`` (+ ``--revision`` for ``hf://org/name@rev``)              |
| ``--max-model-len``                | ``--context-length``                                                     |
| ``--tensor-parallel-size``         | ``--tp-size``                                                            |
| ``--kv-cache-dtype`` auto/bfloat16/fp8_e4m3/fp8_e5m2 | ``--kv-cache-dtype``, same spelling                    |
| ``--quantization fp8`` (BF16 base) | ``--quantization fp8`` (Fp8Config, online); never for a checkpoint       |
| ``--gpu-memory-utilization``       | ``--mem-fraction-static``, see :func:`mem_fraction_static_for`           |
| ``--download-dir``                 | ``--download-dir`` (fetched models only)                                 |
| (vLLM always serves /metrics)      | ``--enable-metrics``                                                     |

The two memory knobs do not mean the same thing. vLLM's ``--gpu-memory-utilization`` caps everything vLLM allocates
(weights, activations measured by a profile run, KV cache, CUDA graphs). SGLang's ``--mem-fraction-static`` is
"(model weights + KV cache pool) / GPU memory" (``sglang/srt/arg_groups/memory_hook.py``): activations and CUDA-graph
buffers come on top. Left unset, SGLang computes it at start-up as (GPU memory - reserve) / GPU memory, the reserve
covering activations, graphs and at least 10 GiB on GPUs over 60 GiB. Passing vLLM's 0.92 as the static fraction
would leave 8 % of the GPU for that reserve (6.4 GB on an 80 GB H100): an out-of-memory at start-up or under load.
"""

from __future__ import annotations

from typing import Final

from quantfleet.api import sglang_flags as sf
from quantfleet.api import vllm_flags as vf
from quantfleet.hardware.sglang import SglangUnsupported, kv_cache_dtype_for_sglang
from quantfleet.render.vllm import PORT, PoolRollout, ServiceInput

__all__ = [
    "DOWNLOAD_DIR",
    "SglangUnsupported",
    "kv_cache_dtype_for_sglang",
    "mem_fraction_static_for",
    "quantization_for_sglang",
    "sglang_args",
    "sglang_command",
]

# Where fetched weights land (the pod's cache volume, as for vLLM).
DOWNLOAD_DIR: Final = "/cache/models"


def sglang_command() -> list[str]:
    """The container command: ``python3 -m sglang.launch_server`` (the image has no serving entrypoint of its own)."""
    return list(sf.SGLANG_COMMAND)


def mem_fraction_static_for(gpu_memory_utilization: float) -> float | None:
    """SGLang's ``--mem-fraction-static`` for a vLLM-style ``gpu_memory_utilization``, or None to leave it to SGLang.

    - at or above vLLM's default (0.92: "use the GPU"): None. SGLang sizes the static pool itself from the GPU's
      memory, keeping its activation / CUDA-graph reserve; passing the vLLM value would starve that reserve;
    - below it (the spec lowered the share, e.g. to share a GPU): the same number, so weights + KV cache stay within
      that share. SGLang's activations and graphs still come on top, so the pod uses somewhat more than the fraction,
      where vLLM would stay within it.
    """
    if not 0 < gpu_memory_utilization <= 1:
        raise SglangUnsupported(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if gpu_memory_utilization >= vf.DEFAULT_GPU_MEMORY_UTILIZATION:
        return None
    return gpu_memory_utilization


def quantization_for_sglang(value: str) -> str:
    """SGLang's ``--quantization`` for the decision's on-the-fly method; only ``fp8`` is in the contract."""
    if value in sf.EMITTED_QUANTIZATION_VALUES:
        return value
    raise SglangUnsupported(
        f"--quantization {value!r} is not rendered for SGLang (only {sorted(sf.EMITTED_QUANTIZATION_VALUES)})"
    )


def sglang_args(svc: ServiceInput, roll: PoolRollout) -> list[str]:
    """SGLang launch arguments for one pool: only declared flags. ``svc.extra_args`` are spec.vllm.extraArgs, vLLM
    flags, and are not passed (SGLang's parser would stop at the first one it lacks).

    Raises :class:`SglangUnsupported` for what SGLang cannot be given: a CPU pool (``roll.cpu`` set), a KV cache
    dtype or ``--quantization`` value outside the contract.
    """
    if roll.cpu is not None:
        raise SglangUnsupported(f"pool {roll.pool!r} is a CPU pool: SGLang serves GPU pools only")
    args = [sf.FLAG_MODEL_PATH, roll.model.vllm_model]
    if roll.model.revision:
        args += [sf.FLAG_REVISION, roll.model.revision]
    args += [
        sf.FLAG_SERVED_MODEL_NAME,
        svc.served_model_name,
        sf.FLAG_HOST,
        "0.0.0.0",
        sf.FLAG_PORT,
        str(PORT),
        sf.FLAG_TP_SIZE,
        str(roll.tensor_parallel_size),
        sf.FLAG_CONTEXT_LENGTH,
        str(svc.max_model_len),
    ]
    fraction = mem_fraction_static_for(svc.gpu_memory_utilization)
    if fraction is not None:
        args += [sf.FLAG_MEM_FRACTION_STATIC, f"{fraction:g}"]
    args += [sf.FLAG_KV_CACHE_DTYPE, kv_cache_dtype_for_sglang(roll.kv_cache_dtype)]
    if roll.quantization and not roll.quantized_checkpoint:
        args += [sf.FLAG_QUANTIZATION, quantization_for_sglang(roll.quantization)]
    if roll.model.claim is None:
        args += [sf.FLAG_DOWNLOAD_DIR, DOWNLOAD_DIR]
    args.append(sf.FLAG_ENABLE_METRICS)
    return args

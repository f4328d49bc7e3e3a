"""The llama.cpp decision: (model, GGUF checkpoint, GPU or CPU pool, request) -> layers offloaded, slots, capacity, why.

Why it exists: llama.cpp's server is the leaf of the serving decision tree - a GGUF checkpoint on nodes vLLM does
not serve well (no GPU, a consumer GPU, a GPU too small for the model). Its memory model differs from vLLM's, so it
gets its own pure planner (docs/runtimes.md):

- weights: parameters x the GGUF type's average bits per weight (`quantfleet.api.gguf`);
- KV cache: llama-server allocates its whole context up front, `--ctx-size` tokens split evenly across `--parallel`
  slots, 16-bit K and V (its default cache type), every attention layer as if full;
- compute buffers: one micro-batch of 512 tokens (llama.cpp's default `--ubatch-size`) through the widest MLP plus
  the logits of every slot, and a fixed runtime (CUDA context on a GPU; the process and its buffers on a CPU).

On a GPU pool every layer is offloaded (`--n-gpu-layers` = layers + 1, the output layer too) when the weights, the
KV cache and the buffers fit in `gpu_memory_utilization` of the GPU; otherwise the layers that fit are offloaded and
the rest run on the node's CPUs (slower, stated as a warning), and the pool is refused when not one layer fits. One
GPU per replica: llama.cpp's layer split across GPUs is not planned. On a CPU pool everything must fit in the pod's
memory (the spec's resources, else at most the share of the smallest node vLLM's CPU pods take); unless the spec sizes
it, the pod asks for what llama-server allocates x 1.2, not the whole share.
"""

from __future__ import annotations

import math
from typing import Literal

from quantfleet.api.gguf import SCHEME_GGUF_TYPE, weight_bytes
from quantfleet.api.recipe import GgufScheme
from quantfleet.hardware import GpuFacts
from quantfleet.planning.capacity import (
    GIB,
    MIB,
    CapacityEstimate,
    activation_bytes,
    count_parameters,
    kv_bytes_per_token,
)
from quantfleet.planning.cpu import CpuNodeSize, pod_size
from quantfleet.planning.decision import CpuSizing, Decision, PlanError, PlanRequest, gpu_name
from quantfleet.planning.model import ModelArch

UBATCH = 512  # llama.cpp's default --ubatch-size
KV_DTYPE = "f16"  # llama-server's default --cache-type-k / --cache-type-v
GPU_RUNTIME_BYTES = 1 * GIB
CPU_RUNTIME_BYTES = GIB // 2
CPU_HEADROOM = 1.2  # a CPU pod's memory over what llama-server allocates (page cache of the mapped weights, slack)


def gguf_weight_bytes(arch: ModelArch, scheme: GgufScheme) -> int:
    return weight_bytes(count_parameters(arch).total, SCHEME_GGUF_TYPE[scheme])


def _gib(n: float) -> float:
    return round(n / GIB, 2)


def decide_llamacpp(
    arch: ModelArch,
    scheme: GgufScheme,
    request: PlanRequest,
    *,
    gpu: GpuFacts | None = None,
    cpu: tuple[str, CpuNodeSize] | None = None,
) -> Decision:
    """How llama-server serves the GGUF checkpoint on one GPU (`gpu`) or one CPU pool (`cpu`: its name and size)."""
    if (gpu is None) == (cpu is None):
        raise ValueError("decide_llamacpp needs exactly one of gpu or cpu")
    if request.precision != "auto":
        raise PlanError(
            f"precision {request.precision} requested but the model is a {SCHEME_GGUF_TYPE[scheme]} GGUF checkpoint:"
            " served in its own format, precision must be auto",
            precision=request.precision,
        )
    if request.kv_cache_dtype not in ("auto", "float16", "bfloat16"):
        raise PlanError(
            f"kvCacheDtype {request.kv_cache_dtype}: llama.cpp's KV cache is planned as 16-bit (f16) only",
            kind="unsupported",
        )
    max_len = request.max_model_len or arch.max_position_embeddings
    if max_len > arch.max_position_embeddings:
        raise PlanError(
            f"maxModelLen {max_len} exceeds the model's max_position_embeddings {arch.max_position_embeddings}",
            kind="invalid-request",
        )
    slots = request.concurrency
    ctx_total = max_len * slots
    weights = gguf_weight_bytes(arch, scheme)
    per_token = kv_bytes_per_token(arch, "float16")
    kv = per_token * ctx_total
    act = activation_bytes(arch, 1, UBATCH, slots)
    label = SCHEME_GGUF_TYPE[scheme]
    size = f"{label} weights {_gib(weights)} GiB, KV cache {_gib(kv)} GiB (f16, {slots} slot(s) x {max_len} tokens)"
    warnings: list[str] = []
    device: Literal["gpu", "cpu"]
    if cpu is not None:
        name, node = cpu
        memory, cpus, memory_words = pod_size(node, request.gpu_memory_utilization)
        need = weights + kv + act + CPU_RUNTIME_BYTES
        if need > memory:
            raise PlanError(
                f"{label} GGUF does not fit on CPU pool {name}: {size} + buffers {_gib(act + CPU_RUNTIME_BYTES)} GiB"
                f" = {_gib(need)} GiB > {memory_words}",
                kind="does-not-fit",
            )
        if node.memory_limit_bytes is None:
            # llama.cpp maps the weights and allocates the whole context at start: it needs no more than that
            # (plus headroom), so the pod does not take the node's memory the way vLLM's CPU backend does
            sized = min(memory, math.ceil(need * CPU_HEADROOM / MIB) * MIB)
            memory_words = f"pod memory {_gib(sized)} GiB (what it needs x {CPU_HEADROOM:g}; {memory_words})"
            memory = sized
        budget, device = memory, "cpu"
        where = f"CPU pool {name}: {memory_words}, {cpus} CPUs as threads"
        sizing: CpuSizing | None = CpuSizing(
            kv_cache_space_gib=math.ceil(kv / GIB),
            memory_bytes=memory,
            cpus=cpus,
            node_memory_bytes=node.memory_bytes,
            runtime_bytes=CPU_RUNTIME_BYTES,
            activation_bytes=act,
        )
        compute = f"{label} weights, llama.cpp CPU kernels"
        gpu_layers = 0
    else:
        assert gpu is not None
        sizing = None
        device = "gpu"
        budget = math.floor(gpu.memory_mib * MIB * request.gpu_memory_utilization)
        fixed = act + GPU_RUNTIME_BYTES
        need = weights + kv + fixed
        where = f"{gpu_name(gpu)}: {_gib(budget)} GiB ({request.gpu_memory_utilization:g} of {gpu.memory_gib:.0f} GiB)"
        if need <= budget:
            gpu_layers = arch.num_layers + 1
            compute = f"{label} weights, llama.cpp CUDA/HIP kernels, every layer on the GPU"
        else:
            # the output layer (lm_head or tied embeddings) is the first to stay on the CPU
            per_layer = (weights + kv) / (arch.num_layers + 1)
            layers = math.floor((budget - fixed) / per_layer) if budget > fixed else 0
            if layers < 1:
                raise PlanError(
                    f"{label} GGUF does not fit on {where}: not one layer fits ({size}, buffers {_gib(fixed)} GiB)",
                    kind="does-not-fit",
                )
            gpu_layers = min(layers, arch.num_layers)
            compute = f"{label} weights, {gpu_layers} of {arch.num_layers} layers on the GPU, the rest on the CPU"
            warnings.append(
                f"only {gpu_layers} of {arch.num_layers} layers fit on the GPU ({_gib(need)} GiB needed): the rest run"
                " on the node's CPUs and need about"
                f" {_gib((arch.num_layers + 1 - gpu_layers) * per_layer)} GiB of its memory; expect much lower"
                " throughput"
            )
    reason = f"{where}: llama.cpp serves the {label} GGUF checkpoint; {size}, buffers {_gib(act)} GiB; " + (
        f"{gpu_layers} layer(s) offloaded to the GPU"
        if device == "gpu"
        else f"needs {_gib(weights + kv + act + CPU_RUNTIME_BYTES)} GiB"
    )
    est = CapacityEstimate(
        weight_format=scheme,
        kv_cache_dtype=KV_DTYPE,
        tensor_parallel_size=1,
        params_total=count_parameters(arch).total,
        params_active=count_parameters(arch).active,
        weight_bytes=weights,
        weights_gib=_gib(weights),
        weights_gib_per_gpu=_gib(weights),
        bf16_roles=(),
        gpu_memory_gib=_gib(budget / request.gpu_memory_utilization) if device == "gpu" else _gib(budget),
        gpu_memory_utilization=request.gpu_memory_utilization,
        budget_gib_per_gpu=_gib(budget),
        activation_gib=_gib(act),
        cuda_graph_gib=0.0,
        runtime_gib=_gib(GPU_RUNTIME_BYTES if device == "gpu" else CPU_RUNTIME_BYTES),
        non_kv_gib_per_gpu=_gib(weights + act),
        kv_cache_gib_per_gpu=_gib(kv),
        kv_cache_bytes_per_gpu=kv,
        kv_cache_gib=_gib(kv),
        kv_bytes_per_token=per_token,
        kv_bytes_per_token_per_gpu=per_token,
        sliding_window=arch.sliding_window,
        sliding_cap_bytes=0,
        context_len=max_len,
        seq_kv_bytes=per_token * max_len,
        seq_kv_bytes_per_gpu=per_token * max_len,
        kv_cache_tokens=ctx_total,
        max_concurrency=float(slots),
        max_model_len=max_len,
        fits=True,
        reason=reason,
    )
    return Decision(
        precision=scheme,
        kv_cache_dtype=KV_DTYPE,
        tensor_parallel_size=1,
        capacity=est,
        quantization_flag=None,
        checkpoint=None,
        native=not warnings,
        reason=reason,
        warnings=tuple(warnings),
        checkpoint_format=f"{label}/gguf",
        compute=compute,
        kernel=None,
        device=device,
        cpu=sizing,
        gpu_layers=gpu_layers,
    )

"""The llama-server command line for a GGUF checkpoint: pure functions of the same inputs as the vLLM renderer.

A pool that serves a GGUF checkpoint (schemes gguf-*, made by the calibration Job's llama-cpp tool) runs llama.cpp's
own OpenAI-compatible server instead of vLLM. Only the container's command and args differ; the pod around it (port
name, probes on /health, scrape of /metrics) keeps the shape of render.vllm, so the Service, autoscaler and
monitoring objects do not change. Every flag comes from quantfleet.api.llamacpp_flags (the contract test checks them
against the pinned llama.cpp source).
"""

from __future__ import annotations

from quantfleet.api import llamacpp_flags as lf
from quantfleet.api.gguf import GGUF_FILE
from quantfleet.render.vllm import PORT, ModelLocation, PoolRollout, ServiceInput

HEALTH_PATH = lf.HEALTH_PATH
METRICS_PATH = lf.METRICS_PATH


def llamacpp_command() -> list[str]:
    """The container command: the server program of the ggml-org/llama.cpp server images."""
    return list(lf.LLAMA_SERVER_COMMAND)


def gguf_path(model: ModelLocation) -> str:
    """The .gguf file of a checkpoint directory as the pod sees it (a mounted PVC: <mount>/<path>/model.gguf)."""
    where = model.vllm_model
    return where if where.endswith(".gguf") else f"{where}/{GGUF_FILE}"


def llamacpp_args(
    svc: ServiceInput,
    roll: PoolRollout,
    *,
    gguf_path: str,
    parallel: int,
    n_gpu_layers: int,
    threads: int | None,
    no_repack: bool = False,
) -> list[str]:
    """llama-server arguments: every request gets svc.max_model_len tokens of context in one of `parallel` slots.

    `n_gpu_layers`: 0 on a CPU pool, lf.ALL_LAYERS to offload every layer. `threads`: the pod's pinned CPUs on a CPU
    pool; None on GPU pools (llama.cpp's default). `roll` is taken for symmetry with render.vllm.vllm_args (the pool
    decides the three numbers above); spec.vllm.extraArgs are vLLM flags and are not passed. `no_repack`: set it
    for CPU pools whose nodes have AMX-INT8 (NFD label feature.node.kubernetes.io/cpu-cpuid.AMXINT8): ggml's AMX
    matmul crashes on quantized GGUFs at the pinned release (lf.FLAG_NO_REPACK says more).
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    args = [
        lf.FLAG_MODEL,
        gguf_path,
        lf.FLAG_ALIAS,
        svc.served_model_name,
        lf.FLAG_HOST,
        "0.0.0.0",
        lf.FLAG_PORT,
        str(PORT),
        lf.FLAG_CTX_SIZE,
        str(svc.max_model_len * parallel),  # split over the slots: max_model_len each
        lf.FLAG_PARALLEL,
        str(parallel),
        lf.FLAG_N_GPU_LAYERS,
        str(n_gpu_layers),
    ]
    if threads is not None:
        args += [lf.FLAG_THREADS, str(threads)]
    if no_repack:
        args.append(lf.FLAG_NO_REPACK)
    return [*args, lf.FLAG_METRICS, lf.FLAG_NO_WEBUI]

"""Everything quantfleet can say to llama.cpp's server (llama-server), declared once.

The renderer (quantfleet.render.llamacpp) builds the llama-server command line only from the names in this module,
and tests/unit/test_llamacpp_contract.py checks every one of them against common/arg.cpp of the pinned llama.cpp
(versions.toml [llama-cpp]: the llama.cpp that llama-cpp-python's sdist vendors). `problems_in_args` checks a
rendered argument list against this module, so a flag that is emitted but not declared is caught too.

How the container is started (llama.cpp's .devops/cpu.Dockerfile and cuda.Dockerfile, target `server`): the
ghcr.io/ggml-org/llama.cpp:server[-cuda]-b<build> images run ENTRYPOINT ["/app/llama-server"] with
LLAMA_ARG_HOST=0.0.0.0; everything else comes from the arguments. The model is one GGUF file (--model), made by the
calibration Job (tool llama-cpp, quantfleet.calibrate.gguf) as <checkpoint>/model.gguf.

Context and slots: llama-server splits --ctx-size evenly over its --parallel slots (n_ctx_slot = n_ctx / n_parallel,
tools/server/server-context.cpp, when the KV cache is not unified; an explicit --parallel leaves it per slot), so
the operator passes ctx-size = max_model_len x parallel and every request gets max_model_len tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from quantfleet.api import command_line

# The server program (the image's ENTRYPOINT); the renderer sets it as `command` explicitly.
LLAMA_SERVER_COMMAND: Final[tuple[str]] = ("/app/llama-server",)

FLAG_MODEL: Final = "--model"  # path of the .gguf file
FLAG_ALIAS: Final = "--alias"  # the served model name (the `model` field of the OpenAI API)
FLAG_HOST: Final = "--host"
FLAG_PORT: Final = "--port"
FLAG_CTX_SIZE: Final = "--ctx-size"  # total KV context, split over the slots
FLAG_PARALLEL: Final = "--parallel"  # server slots: requests decoded together
FLAG_N_GPU_LAYERS: Final = "--n-gpu-layers"  # layers offloaded to the GPU (0 on CPU; a large number: all)
FLAG_THREADS: Final = "--threads"  # CPU threads for generation (CPU pools: the pod's pinned CPUs)
FLAG_METRICS: Final = "--metrics"  # enables /metrics (Prometheus text); off by default
FLAG_NO_WEBUI: Final = "--no-webui"  # API only: the built-in chat page is not served
# Keeps the weights out of the CPU backend's extra buffer types (repacked layouts, and AMX). On CPUs with AMX-INT8
# (Sapphire Rapids and later) ggml's AMX matmul segfaults on quantized GGUFs at this release (ggml_backend_amx_mul_mat;
# upstream llama.cpp issue 20824, closed stale without a fix; reproduced here on Q8_0 and Q4_K_M, docs/llama-cpp.md).
FLAG_NO_REPACK: Final = "--no-repack"

# Flags that take no value.
SWITCHES: Final[frozenset[str]] = frozenset({FLAG_METRICS, FLAG_NO_WEBUI, FLAG_NO_REPACK})

# Every option the operator can put on a llama-server command line. The contract test checks each against arg.cpp.
EMITTED_FLAGS: Final[frozenset[str]] = frozenset(
    {
        FLAG_MODEL,
        FLAG_ALIAS,
        FLAG_HOST,
        FLAG_PORT,
        FLAG_CTX_SIZE,
        FLAG_PARALLEL,
        FLAG_N_GPU_LAYERS,
        FLAG_THREADS,
        FLAG_METRICS,
        FLAG_NO_WEBUI,
        FLAG_NO_REPACK,
    }
)

# llama-server's default --port (common/common.h); the operator passes --port explicitly, this documents the default.
DEFAULT_PORT: Final = 8080
# --n-gpu-layers value meaning "every layer" (more than any model has; llama.cpp clamps it).
ALL_LAYERS: Final = 999

# HTTP endpoints (tools/server/server.cpp). /health answers 503 while the model loads and 200 once it serves; it is
# public (no API key), so probes can use it.
HEALTH_PATH: Final = "/health"
HEALTH_LOADING_STATUS: Final = 503
METRICS_PATH: Final = "/metrics"
MODELS_PATH: Final = "/v1/models"
COMPLETIONS_PATH: Final = "/v1/completions"
CHAT_COMPLETIONS_PATH: Final = "/v1/chat/completions"
ENDPOINT_PATHS: Final[frozenset[str]] = frozenset(
    {HEALTH_PATH, METRICS_PATH, MODELS_PATH, COMPLETIONS_PATH, CHAT_COMPLETIONS_PATH}
)

# Prometheus metrics on /metrics (with --metrics), prefix "llamacpp:" (tools/server/server-task.cpp to_metrics()).
METRIC_REQUESTS_PROCESSING: Final = "llamacpp:requests_processing"
METRIC_REQUESTS_DEFERRED: Final = "llamacpp:requests_deferred"
METRIC_PROMPT_TOKENS_TOTAL: Final = "llamacpp:prompt_tokens_total"
METRIC_TOKENS_PREDICTED_TOTAL: Final = "llamacpp:tokens_predicted_total"
METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {METRIC_REQUESTS_PROCESSING, METRIC_REQUESTS_DEFERRED, METRIC_PROMPT_TOKENS_TOTAL, METRIC_TOKENS_PREDICTED_TOTAL}
)


def problems_in_args(args: Sequence[str]) -> list[str]:
    """What is wrong with a rendered llama-server argument list (empty when it is within the contract).

    Every option is declared in EMITTED_FLAGS and given once; switches have no value, the others one value; no
    positional arguments (llama-server takes none). ``args`` excludes the command.
    """
    return command_line.problems_in_args(
        args,
        emitted_flags=EMITTED_FLAGS,
        declared_in="quantfleet.api.llamacpp_flags.EMITTED_FLAGS",
        switches=SWITCHES,
        required_flag=FLAG_MODEL,
        inline_values=False,
    )

"""Everything quantfleet can say to SGLang, declared once.

The SGLang renderer (``quantfleet.render.sglang``) builds the launch command only from the names in this module, and
``tests/unit/test_sglang_contract.py`` checks every one of them against the source of the pinned SGLang release (read
from its wheel, see ``quantfleet_dev.sglang_source``). :func:`problems_in_args` closes the loop on the rendered side, as
``quantfleet.api.vllm_flags`` does for vLLM.

How the container is started (read from the SGLang 0.5.23 source, see docs/sglang.md):

- ``python3 -m sglang.launch_server`` parses ``sys.argv[1:]`` with ``prepare_server_args`` (``sglang/srt/
  server_args.py``) and runs the HTTP server. 0.5.23 warns that it "is still supported, but 'sglang serve' is the
  recommended entrypoint"; ``sglang serve`` adds a backend dispatch (diffusion detection on the model path) in front of
  the same parser, so the operator keeps the module, which goes straight to the LLM server. The contract test fails if
  the module's message turns into a deprecation;
- options are ``msgspec`` fields in ``sglang/srt/arg_groups/fields/*.py`` turned into ``--kebab-case`` flags (or
  ``Arg(cli_name=...)``, plus ``aliases``); the model is ``--model-path`` (no positional);
- quantized checkpoints are detected from ``config.json`` ``quantization_config`` (or ``compression_config``, or
  ModelOpt's ``hf_quant_config.json``) by ``ModelConfig._verify_quantization`` (``sglang/srt/configs/
  model_config.py``); a ``--quantization`` that differs from the checkpoint's method and is not in its compatibility
  table stops the server ("Quantization method specified in the model config ... does not match"), so, as for vLLM,
  ``--quantization`` is only passed for on-the-fly FP8 of a BF16 checkpoint;
- ``/metrics`` exists only with ``--enable-metrics`` (``add_prometheus_middleware`` mounts it), so the flag is always
  rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, get_args

from quantfleet.api import command_line

# The container command: the interpreter and module (the image has no fixed entrypoint for serving).
SGLANG_COMMAND: Final[tuple[str, str, str]] = ("python3", "-m", "sglang.launch_server")
LAUNCH_MODULE: Final = "sglang.launch_server"

FLAG_MODEL_PATH: Final = "--model-path"
FLAG_SERVED_MODEL_NAME: Final = "--served-model-name"
FLAG_HOST: Final = "--host"
FLAG_PORT: Final = "--port"
# Canonical spelling of the field tp_size (`--tensor-parallel-size` is an alias).
FLAG_TP_SIZE: Final = "--tp-size"
# vLLM's --max-model-len.
FLAG_CONTEXT_LENGTH: Final = "--context-length"
# (weights + KV cache pool) / GPU memory; NOT vLLM's --gpu-memory-utilization (see quantfleet.render.sglang).
FLAG_MEM_FRACTION_STATIC: Final = "--mem-fraction-static"
FLAG_KV_CACHE_DTYPE: Final = "--kv-cache-dtype"
FLAG_QUANTIZATION: Final = "--quantization"
# Pins a Hugging Face model (hf://org/name@revision) to a branch, tag or commit.
FLAG_REVISION: Final = "--revision"
# Where a fetched (HF) checkpoint lands inside the pod.
FLAG_DOWNLOAD_DIR: Final = "--download-dir"
# A store_true flag: without it SGLang serves no /metrics.
FLAG_ENABLE_METRICS: Final = "--enable-metrics"

# Every option the operator can put on an SGLang command line. The contract test checks each against SGLang's parser.
EMITTED_FLAGS: Final[frozenset[str]] = frozenset(
    {
        FLAG_MODEL_PATH,
        FLAG_SERVED_MODEL_NAME,
        FLAG_HOST,
        FLAG_PORT,
        FLAG_TP_SIZE,
        FLAG_CONTEXT_LENGTH,
        FLAG_MEM_FRACTION_STATIC,
        FLAG_KV_CACHE_DTYPE,
        FLAG_QUANTIZATION,
        FLAG_REVISION,
        FLAG_DOWNLOAD_DIR,
        FLAG_ENABLE_METRICS,
    }
)
# The emitted flags that take no value (argparse store_true); the contract test checks they are booleans upstream.
BOOLEAN_FLAGS: Final[frozenset[str]] = frozenset({FLAG_ENABLE_METRICS})

# `--quantization` values the operator emits: only on-the-fly FP8 of a BF16 checkpoint (Fp8Config, "MOE + linear
# online quantization" in QUANTIZATION_CHOICES).
QUANTIZATION_FP8_ON_THE_FLY: Final = "fp8"
EMITTED_QUANTIZATION_VALUES: Final[frozenset[str]] = frozenset({QUANTIZATION_FP8_ON_THE_FLY})

# The methods SGLang resolves the checkpoints quantfleet serves to (ModelConfig.quantization after
# override_quantization_method; never passed as flags). quantfleet.hardware.sglang maps vLLM's names
# (CheckpointQuant.vllm_method) onto these: compressed-tensors as is; ModelOpt `modelopt` -> `modelopt_fp8`
# (ModelOptFp8Config.get_name; the checkpoint's `modelopt` is kept when no override applies) and NVFP4 ->
# `modelopt_fp4`; `fp8`; `mxfp4` (gpt-oss too); GPTQ -> `gptq_marlin` and AWQ -> `awq_marlin` on CUDA (plain `awq` on
# ROCm); AMD `quark`.
QUANT_METHOD_COMPRESSED_TENSORS: Final = "compressed-tensors"
QUANT_METHOD_MODELOPT: Final = "modelopt"
QUANT_METHOD_MODELOPT_FP8: Final = "modelopt_fp8"
QUANT_METHOD_MODELOPT_FP4: Final = "modelopt_fp4"
QUANT_METHOD_FP8: Final = "fp8"
QUANT_METHOD_MXFP4: Final = "mxfp4"
QUANT_METHOD_GPTQ_MARLIN: Final = "gptq_marlin"
QUANT_METHOD_AWQ_MARLIN: Final = "awq_marlin"
QUANT_METHOD_AWQ: Final = "awq"
QUANT_METHOD_QUARK: Final = "quark"
DETECTED_QUANTIZATION_METHODS: Final[frozenset[str]] = frozenset(
    {
        QUANT_METHOD_COMPRESSED_TENSORS,
        QUANT_METHOD_MODELOPT,
        QUANT_METHOD_MODELOPT_FP8,
        QUANT_METHOD_MODELOPT_FP4,
        QUANT_METHOD_FP8,
        QUANT_METHOD_MXFP4,
        QUANT_METHOD_GPTQ_MARLIN,
        QUANT_METHOD_AWQ_MARLIN,
        QUANT_METHOD_AWQ,
        QUANT_METHOD_QUARK,
    }
)
# Of those, the ones SGLang 0.5.23 lets through on ROCm (`rocm_supported_quantization` in
# ModelConfig._verify_quantization); the contract test checks this set against the source.
ROCM_QUANTIZATION_METHODS: Final[frozenset[str]] = frozenset(
    {QUANT_METHOD_COMPRESSED_TENSORS, QUANT_METHOD_FP8, QUANT_METHOD_MXFP4, QUANT_METHOD_AWQ, QUANT_METHOD_QUARK}
)

# `--kv-cache-dtype` values the operator emits: the same four spellings as vLLM's (SGLang also accepts "bf16",
# "mxfp8", "nvfp4" and "fp4_mx_block16", which the operator never picks).
KvCacheDtype = Literal["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
KV_CACHE_DTYPES: Final[tuple[KvCacheDtype, ...]] = get_args(KvCacheDtype)

# SGLang's own defaults the renderer relies on (or overrides): --port 30000 (the operator passes its port
# explicitly); --mem-fraction-static None, i.e. sized at start-up from the GPU's memory minus an activation and
# CUDA-graph reserve (arg_groups/memory_hook.py), which is what the renderer leaves in place at the default.
DEFAULT_PORT: Final = 30000
DEFAULT_MEM_FRACTION_STATIC: Final = None

# HTTP endpoints the probes and scrape annotations use (sglang/srt/entrypoints/http_server.py).
HEALTH_PATH: Final = "/health"
# What /health answers while the server starts, shuts down or fails its health generation: readiness depends on it.
HEALTH_NOT_READY_STATUS: Final = 503
METRICS_PATH: Final = "/metrics"
MODELS_PATH: Final = "/v1/models"
ENDPOINT_PATHS: Final[frozenset[str]] = frozenset({HEALTH_PATH, METRICS_PATH, MODELS_PATH})

# Prometheus metrics (sglang/srt/observability/metrics_collector.py) that correspond to the vLLM ones the operator
# reads: running and queued requests, and the KV cache (token pool) usage.
METRIC_NUM_RUNNING_REQS: Final = "sglang:num_running_reqs"
METRIC_NUM_QUEUE_REQS: Final = "sglang:num_queue_reqs"
METRIC_TOKEN_USAGE: Final = "sglang:token_usage"
METRIC_NAMES: Final[frozenset[str]] = frozenset({METRIC_NUM_RUNNING_REQS, METRIC_NUM_QUEUE_REQS, METRIC_TOKEN_USAGE})

# Allowed values for the flags whose values are a closed set; the others take numbers, names or paths.
_VALUE_SETS: Final[dict[str, frozenset[str]]] = {
    FLAG_QUANTIZATION: EMITTED_QUANTIZATION_VALUES,
    FLAG_KV_CACHE_DTYPE: frozenset(KV_CACHE_DTYPES),
}


def problems_in_args(args: Sequence[str]) -> list[str]:
    """Return what is wrong with a rendered SGLang argument list (empty when it is within the contract).

    Checks: ``--model-path`` is given; every option is in :data:`EMITTED_FLAGS` and appears once; value flags have a
    value and boolean flags none; closed-set values are declared ones; no positional arguments (SGLang's launch parser
    takes none). ``args`` excludes the command (:data:`SGLANG_COMMAND`). ``--flag value`` and ``--flag=value`` are
    both understood.
    """
    return command_line.problems_in_args(
        args,
        emitted_flags=EMITTED_FLAGS,
        declared_in="quantfleet.api.sglang_flags.EMITTED_FLAGS",
        switches=BOOLEAN_FLAGS,
        value_sets=_VALUE_SETS,
        required_flag=FLAG_MODEL_PATH,
    )

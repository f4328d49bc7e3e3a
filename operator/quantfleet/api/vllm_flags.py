"""Everything quantfleet can say to vLLM, declared once.

The Deployment renderer builds the vLLM command line only from the names in this module, and
``tests/unit/test_vllm_contract.py`` checks every one of them against the source of the pinned vLLM release (read from
its wheel, see ``quantfleet_dev.vllm_source``). Anything added here is covered by that test automatically; anything the
renderer emits that is not declared here is caught by :func:`problems_in_args`, which the render invariants call on
every rendered pod. Together they make "a vLLM upgrade that drops a flag we use" a test failure instead of a
CrashLoopBackOff in a customer cluster.

How the container is started (read from the vLLM 0.33.0 source, see docs/vllm-contract.md):

- the ``vllm/vllm-openai`` image's entrypoint is ``vllm serve``; the model is its first **positional** argument
  (``model_tag``). ``--model`` still parses but ``vllm serve`` warns that it "will be removed in a future version",
  and ``--served-model-name`` without a positional model is rejected, so the operator never emits ``--model``;
- quantized checkpoints (made by the calibration Job, or published pre-quantized ones) are auto-detected from
  ``config.json`` ``quantization_config`` (or ModelOpt's ``hf_quant_config.json``), so ``--quantization`` is only passed
  for on-the-fly FP8 of a BF16 checkpoint: on a checkpoint that names its method the flag is a no-op, silently
  replaced, or a start-up error (docs/checkpoint-formats.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, get_args

from quantfleet.api import command_line

# The console script and subcommand the image runs (its ENTRYPOINT); the renderer may set it as `command` explicitly.
VLLM_COMMAND: Final[tuple[str, str]] = ("vllm", "serve")
# argparse dest of the positional model argument of `vllm serve`; the model path/URI goes first in `args`.
MODEL_POSITIONAL_DEST: Final = "model_tag"

FLAG_SERVED_MODEL_NAME: Final = "--served-model-name"
FLAG_QUANTIZATION: Final = "--quantization"
FLAG_KV_CACHE_DTYPE: Final = "--kv-cache-dtype"
FLAG_GPU_MEMORY_UTILIZATION: Final = "--gpu-memory-utilization"
FLAG_MAX_MODEL_LEN: Final = "--max-model-len"
FLAG_TENSOR_PARALLEL_SIZE: Final = "--tensor-parallel-size"
FLAG_HOST: Final = "--host"
FLAG_PORT: Final = "--port"
# Where a fetched (S3/HF) checkpoint lands inside the pod; a mounted PVC checkpoint is passed as the positional path.
FLAG_DOWNLOAD_DIR: Final = "--download-dir"
# Pins a Hugging Face model (hf://org/name@revision) to a branch, tag or commit.
FLAG_REVISION: Final = "--revision"

# Every option the operator can put on a vLLM command line. The contract test checks each against vLLM's parser.
EMITTED_FLAGS: Final[frozenset[str]] = frozenset(
    {
        FLAG_SERVED_MODEL_NAME,
        FLAG_QUANTIZATION,
        FLAG_KV_CACHE_DTYPE,
        FLAG_GPU_MEMORY_UTILIZATION,
        FLAG_MAX_MODEL_LEN,
        FLAG_TENSOR_PARALLEL_SIZE,
        FLAG_HOST,
        FLAG_PORT,
        FLAG_DOWNLOAD_DIR,
        FLAG_REVISION,
    }
)

# `--quantization` values the operator emits: only on-the-fly FP8 of a BF16 checkpoint.
QUANTIZATION_FP8_ON_THE_FLY: Final = "fp8"
EMITTED_QUANTIZATION_VALUES: Final[frozenset[str]] = frozenset({QUANTIZATION_FP8_ON_THE_FLY})

# The methods vLLM resolves the checkpoints quantfleet serves to (ModelConfig.quantization; never passed as flags):
# llm-compressor writes compressed-tensors (FP8, W4A16, NVFP4, MXFP4 schemes); ModelOpt writes `modelopt`, which vLLM
# resolves to `modelopt` (FP8) or `modelopt_fp4` (NVFP4); published checkpoints add `fp8` (Fp8Config), GPTQ and AWQ
# (resolved to `auto_gptq` / `auto_awq`), `mxfp4` (`gpt_oss_mxfp4` for gpt-oss) and AMD `quark`. Every
# CheckpointQuant.vllm_method is one of these (tests/unit/test_api_checkpoint.py).
QUANT_METHOD_COMPRESSED_TENSORS: Final = "compressed-tensors"
QUANT_METHOD_MODELOPT_FP8: Final = "modelopt"
QUANT_METHOD_MODELOPT_NVFP4: Final = "modelopt_fp4"
QUANT_METHOD_MXFP4: Final = "mxfp4"
QUANT_METHOD_GPT_OSS_MXFP4: Final = "gpt_oss_mxfp4"
QUANT_METHOD_FP8: Final = "fp8"
QUANT_METHOD_GPTQ: Final = "auto_gptq"
QUANT_METHOD_AWQ: Final = "auto_awq"
QUANT_METHOD_QUARK: Final = "quark"
DETECTED_QUANTIZATION_METHODS: Final[frozenset[str]] = frozenset(
    {
        QUANT_METHOD_COMPRESSED_TENSORS,
        QUANT_METHOD_MODELOPT_FP8,
        QUANT_METHOD_MODELOPT_NVFP4,
        QUANT_METHOD_MXFP4,
        QUANT_METHOD_GPT_OSS_MXFP4,
        QUANT_METHOD_FP8,
        QUANT_METHOD_GPTQ,
        QUANT_METHOD_AWQ,
        QUANT_METHOD_QUARK,
    }
)

# `--kv-cache-dtype` values the operator emits. `auto` follows the model dtype; an explicit `bfloat16` must match it.
# `fp8_e4m3` is the preferred FP8 KV cache (scales from the checkpoint, else 1.0); `fp8` is left out on purpose: it is
# an alias whose meaning is platform-dependent, and the decision names the format it chose.
KvCacheDtype = Literal["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
KV_CACHE_DTYPES: Final[tuple[KvCacheDtype, ...]] = get_args(KvCacheDtype)

# vLLM's own default for `--gpu-memory-utilization` (CacheConfig.gpu_memory_utilization in 0.33.0). Capacity
# estimates use it when the spec does not set one; the contract test fails when vLLM changes it.
DEFAULT_GPU_MEMORY_UTILIZATION: Final = 0.92
# vLLM's default `--port` (FrontendArgs.port); the operator passes --port explicitly, this documents the default.
DEFAULT_PORT: Final = 8000

# HTTP endpoints the probes and scrape annotations use.
HEALTH_PATH: Final = "/health"
# What /health answers when the engine is dead: liveness depends on it.
HEALTH_ENGINE_DEAD_STATUS: Final = 503
METRICS_PATH: Final = "/metrics"
MODELS_PATH: Final = "/v1/models"
ENDPOINT_PATHS: Final[frozenset[str]] = frozenset({HEALTH_PATH, METRICS_PATH, MODELS_PATH})

# Prometheus metrics the operator (capacity status, autoscaling hints, dashboards) reads from /metrics.
METRIC_KV_CACHE_USAGE: Final = "vllm:kv_cache_usage_perc"
METRIC_NUM_REQUESTS_RUNNING: Final = "vllm:num_requests_running"
METRIC_NUM_REQUESTS_WAITING: Final = "vllm:num_requests_waiting"
METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {METRIC_KV_CACHE_USAGE, METRIC_NUM_REQUESTS_RUNNING, METRIC_NUM_REQUESTS_WAITING}
)

# Allowed values for the flags whose values are a closed set; the others take numbers, names or paths.
_VALUE_SETS: Final[dict[str, frozenset[str]]] = {
    FLAG_QUANTIZATION: EMITTED_QUANTIZATION_VALUES,
    FLAG_KV_CACHE_DTYPE: frozenset(KV_CACHE_DTYPES),
}


def problems_in_args(args: Sequence[str]) -> list[str]:
    """Return what is wrong with a rendered ``vllm serve`` argument list (empty when it is within the contract).

    Why: the contract test proves the *declared* flags are accepted by vLLM; this closes the loop by proving the
    *rendered* ones are declared. Checks: the model is the first, positional argument; every option is in
    :data:`EMITTED_FLAGS` and appears once; every option has a value; closed-set values are declared ones.
    ``args`` excludes the ``vllm serve`` command itself. Both ``--flag value`` and ``--flag=value`` are understood.
    """
    return command_line.problems_in_args(
        args,
        emitted_flags=EMITTED_FLAGS,
        declared_in="quantfleet.api.vllm_flags.EMITTED_FLAGS",
        value_sets=_VALUE_SETS,
        positional_model_of=" ".join(VLLM_COMMAND),
    )

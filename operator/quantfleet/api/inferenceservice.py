"""InferenceService (quantfleet.io/v1alpha1): "serve this model on these GPU (or CPU) pools with vLLM".

Precision and KV-cache dtype default to `auto`: the operator decides per pool from the GPU labels (or, on a CPU pool,
from the Node Feature Discovery CPU labels) and pins the decision in status until the spec changes or the re-plan
annotation is set. The model is any checkpoint: a BF16 base model (quantized on the fly where the GPU has FP8 math), a
QuantizedModel's checkpoint, or a published pre-quantized checkpoint, which is served in its own format
(docs/checkpoint-formats.md).

CPU pools (GPU-less nodes, vLLM's CPU backend) are used only when a pool's nodeSelector selects them explicitly, or
when `cpuPools` opts in for automatic mode: automatic mode never puts a service on CPUs unless asked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantfleet.api.common import (
    MODEL_URI_PATTERN,
    Condition,
    ConfigMapKeyRef,
    KubeModel,
    PodMetadata,
    Resources,
    SecretKeyRef,
    Toleration,
)
from quantfleet.api.vllm_flags import EMITTED_FLAGS, KvCacheDtype

Precision = Literal["auto", "bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4"]
KVCacheDtype = KvCacheDtype
# Automatic mode and CPU pools: Never (default) | Allowed (ranked after every GPU pool) | Only (CPU pools only).
CpuPools = Literal["Never", "Allowed", "Only"]
# What autoscaling follows: vLLM's own load signals (docs/autoscaling.md names the series and the adapter rules).
ScaleMetric = Literal["WaitingRequests", "KVCacheUsage"]
# Auto: a KEDA ScaledObject when KEDA's CRDs are installed, else an autoscaling/v2 HorizontalPodAutoscaler.
AutoscalerKind = Literal["Auto", "HPA", "KEDA"]
# What serves a pool: vLLM (default), SGLang (GPU pools), or llama.cpp's server (GGUF checkpoints; CPU pools and small
# GPUs). docs/runtimes.md says what each serves and why.
Runtime = Literal["vllm", "sglang", "llama-cpp"]
RUNTIMES: tuple[Runtime, ...] = ("vllm", "sglang", "llama-cpp")
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


# vLLM flags derived from the decision; users may not set them through extraArgs (plus the legacy --model).
OPERATOR_OWNED_FLAGS = tuple(sorted(EMITTED_FLAGS | {"--model"}))


class QuantizedModelRef(KubeModel):
    """A QuantizedModel in the same namespace; the service waits until it is Ready."""

    name: str = Field(min_length=1, max_length=253, description="Name of the QuantizedModel.")


class ModelRef(KubeModel):
    """The model to serve: exactly one of quantizedModelRef or uri."""

    quantized_model_ref: QuantizedModelRef | None = Field(
        default=None, description="Serve the checkpoint of a QuantizedModel (its format is auto-detected by vLLM)."
    )
    uri: str | None = Field(
        default=None,
        pattern=MODEL_URI_PATTERN,
        description="Any checkpoint: hf://<org>/<name>[@<revision>], pvc://<claim>/<path> or s3://<bucket>/<prefix>."
        " A BF16 base model gets FP8 on the fly where the GPU supports it. A pre-quantized checkpoint (its"
        " config.json names a quantization method: compressed-tensors, fp8, modelopt, gptq, awq, mxfp4, quark) is"
        " served in its own format, natively or through a weight-only fallback kernel, on the pools whose GPUs vLLM"
        " runs it on; it is never re-quantized and --quantization is never passed.",
    )
    config_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="ConfigMap with the model's config.json, used for capacity planning and to read the checkpoint's"
        " quantization_config. For ModelOpt checkpoints that keep it in a separate file, the ConfigMap may also carry"
        " hf_quant_config.json under that key (read only when config.json has no quantization_config, as vLLM does)."
        " Required with uri; with quantizedModelRef the QuantizedModel's own reference is used when unset.",
    )
    served_model_name: str | None = Field(
        default=None, max_length=253, description="Name clients use in API calls; default: the service name."
    )
    credentials_secret: SecretKeyRef | None = Field(
        default=None, description="Secret with HF_TOKEN or AWS credentials, exposed to vLLM as environment."
    )

    cel = (("has(self.quantizedModelRef) != has(self.uri)", "spec.model: set exactly one of quantizedModelRef or uri"),)


class PoolSpec(KubeModel):
    """An explicit pool: the nodes matching nodeSelector, all with one GPU product, or all GPU-less (a CPU pool)."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="Pool name (DNS label), used in names."
    )
    node_selector: dict[str, str] = Field(
        min_length=1,
        description="Node labels that define the pool. Nodes without GPU labels make a CPU pool, served by vLLM's"
        " CPU backend (selecting them is the opt-in; cpuPools applies to automatic mode only).",
    )
    replicas: int | None = Field(
        default=None, ge=0, le=1000, description="Replicas in this pool; default spec.replicas."
    )
    tolerations: list[Toleration] | None = Field(default=None, description="Tolerations for this pool's pods.")
    runtime: Runtime | None = Field(default=None, description="What serves this pool; default spec.runtime.")
    autoscaling: PoolAutoscaling | None = Field(
        default=None, description="Overrides of spec.autoscaling's bounds for this pool (needs spec.autoscaling)."
    )


class PoolAutoscaling(KubeModel):
    """Per-pool bounds that override spec.autoscaling's."""

    min_replicas: int | None = Field(default=None, ge=1, le=1000, description="Fewest replicas in this pool.")
    max_replicas: int | None = Field(
        default=None, ge=1, le=1000, description="Most replicas in this pool (bounded by the pool's GPUs too)."
    )

    cel = (
        (
            "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            "autoscaling: minReplicas must not exceed maxReplicas",
        ),
    )


class AutoscalingSpec(KubeModel):
    """Scale each pool on vLLM's own metrics. The operator then never writes the Deployments' replicas: the
    autoscaler owns them (a HorizontalPodAutoscaler through a Prometheus adapter, or a KEDA ScaledObject)."""

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas per pool.")
    max_replicas: int = Field(
        ge=1,
        le=1000,
        description="Most replicas per pool. Bounded further by what the pool's GPUs hold at the planned tensor"
        " parallelism (stated in status.decisions[].scaling).",
    )
    metric: ScaleMetric = Field(
        default="WaitingRequests",
        description="WaitingRequests: vllm:num_requests_waiting per replica (queued requests: the replicas are"
        " saturated). KVCacheUsage: vllm:kv_cache_usage_perc per replica (0-1).",
    )
    target: float | None = Field(
        default=None,
        gt=0,
        le=10000,
        description="Per-replica target of the metric; default 5 waiting requests, or 0.8 KV-cache usage.",
    )
    autoscaler: AutoscalerKind = Field(
        default="Auto",
        description="Auto: a KEDA ScaledObject when KEDA's CRDs are installed, else a HorizontalPodAutoscaler."
        " HPA or KEDA force one (KEDA without its CRDs is reported, not applied).",
    )
    prometheus_address: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description=f"Prometheus that KEDA queries; default {DEFAULT_PROMETHEUS}.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long load must stay low before replicas are removed (a vLLM replica is slow to start).",
    )

    cel = (("self.minReplicas <= self.maxReplicas", "spec.autoscaling: minReplicas must not exceed maxReplicas"),)


class RolloutSpec(KubeModel):
    """How changes reach running pools."""

    progress_deadline_seconds: int | None = Field(
        default=None,
        ge=30,
        le=86400,
        description="A pool's rollout that makes no progress for this long is reported Degraded (RolloutStuck) with"
        " the pod's reason. Default: the startup probe's budget (sized to the weights) plus 120 s.",
    )


class VLLMSpec(KubeModel):
    """vLLM container settings."""

    image: str | None = Field(
        default=None, description="vLLM image for GPU pools; default: the pinned vllm/vllm-openai tag."
    )
    cpu_image: str | None = Field(
        default=None, description="vLLM image for CPU pools; default: the pinned vllm/vllm-openai-cpu tag."
    )
    extra_args: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Extra vLLM arguments, for the pools vLLM serves (not passed to SGLang or llama.cpp). Flags"
        " derived from the decision (--quantization, --kv-cache-dtype, --max-model-len, --tensor-parallel-size,"
        " --gpu-memory-utilization, --served-model-name, --model) are refused.",
    )

    cel = (
        (
            "!has(self.extraArgs) || self.extraArgs.all(a, "
            + " && ".join(f"!a.startsWith('{f}')" for f in OPERATOR_OWNED_FLAGS)
            + ")",
            "spec.vllm.extraArgs must not set flags the operator derives from its decision: "
            + ", ".join(OPERATOR_OWNED_FLAGS),
        ),
    )


class RuntimeImages(KubeModel):
    """Images of a runtime other than vLLM."""

    image: str | None = Field(default=None, description="Image for GPU pools; default: the pinned upstream tag.")
    cpu_image: str | None = Field(
        default=None, description="Image for CPU pools (llama.cpp only); default: the pinned upstream tag."
    )


class InferenceServiceSpec(KubeModel):
    """Desired serving fleet."""

    model: ModelRef = Field(description="What to serve.")
    precision: Precision = Field(
        default="auto",
        description="Weight precision; auto picks per pool from the GPU (see README). With a pre-quantized"
        " checkpoint in uri it is a constraint: it must match the checkpoint's format (a mismatch is CannotHonour),"
        " it never re-quantizes the checkpoint. fp8-block, w4a16, nvfp4 and mxfp4 need a checkpoint in that format:"
        " a pre-quantized uri or a quantizedModelRef.",
    )
    kv_cache_dtype: KVCacheDtype = Field(
        default="auto", description="KV-cache dtype; auto picks fp8_e4m3 only when the BF16 cache would not fit."
    )
    max_model_len: int = Field(default=8192, ge=16, le=10485760, description="Maximum context length per request.")
    expected_concurrency: int = Field(
        default=1, ge=1, le=100000, description="Concurrent requests at maxModelLen the KV cache should hold."
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Replicas per selected pool (ignored with spec.autoscaling)."
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Scale pools on vLLM's metrics instead of a fixed replica count."
    )
    rollout: RolloutSpec | None = Field(default=None, description="How changes roll out.")
    pools: list[PoolSpec] | None = Field(
        default=None,
        max_length=16,
        description="Explicit pools. Unset: automatic, every GPU pool (nodes grouped by GPU product) that can"
        " serve the model (and CPU pools when cpuPools allows them).",
    )
    max_pools: int = Field(default=1, ge=1, le=16, description="In automatic mode, how many pools to spread over.")
    cpu_pools: CpuPools = Field(
        default="Never",
        description="Automatic mode and CPU pools (GPU-less nodes grouped by instance type or NFD CPU level, served"
        " by vLLM's CPU backend). Never (default): GPU pools only. Allowed: CPU pools too, ranked after every GPU"
        " pool, so they serve only when no GPU pool can or maxPools leaves room. Only: CPU pools only. Explicit"
        " pools ignore it.",
    )
    runtime: Runtime | None = Field(
        default=None,
        description="What serves the pools (each pool may override it): vllm; sglang (GPU pools; the same precision"
        " decision, refused where SGLang cannot load the format); llama-cpp (llama.cpp's server: needs a GGUF"
        " checkpoint, a QuantizedModel with a gguf-* scheme; serves CPU pools and GPUs too small for vLLM, offloading"
        " the layers that fit). Default: llama-cpp for a GGUF model, else vllm.",
    )
    vllm: VLLMSpec | None = Field(default=None, description="vLLM container settings.")
    sglang: RuntimeImages | None = Field(default=None, description="SGLang image (runtime sglang).")
    llama_cpp: RuntimeImages | None = Field(default=None, description="llama.cpp server images (runtime llama-cpp).")
    resources: Resources | None = Field(
        default=None,
        description="CPU/memory for each vLLM pod. On a CPU pool they size the pod (requests = limits) and its KV"
        " cache; unset there, the operator sizes the pod from the smallest node's allocatable memory and CPUs.",
    )
    gpu_memory_utilization: float = Field(
        default=0.92,
        ge=0.1,
        le=0.99,
        description="Fraction of GPU memory vLLM may use (vLLM 0.33 default 0.92). On a CPU pool, the share of the"
        " node's allocatable memory the pod takes (the meaning vLLM gives the flag on CPU).",
    )
    pod_metadata: PodMetadata | None = Field(default=None, description="Labels/annotations for vLLM pods.")

    cel = (
        (
            "!has(self.pools) || self.pools.all(p, self.pools.exists_one(q, q.name == p.name))",
            "spec.pools: pool names must be unique",
        ),
        (
            "!has(self.model.uri) || has(self.model.configRef)",
            "spec.model.configRef is required with spec.model.uri (the operator needs config.json to plan capacity)",
        ),
        (
            "!has(self.pools) || has(self.autoscaling) || self.pools.all(p, !has(p.autoscaling))",
            "spec.pools[].autoscaling needs spec.autoscaling",
        ),
    )


class PoolDecision(KubeModel):
    """The pinned decision for one pool."""

    pool: str = Field(description="Pool name.")
    gpu: str = Field(description="GPU product, or the CPU level of a CPU pool (cpu-amx, cpu-avx512, cpu-avx2).")
    device: Literal["gpu", "cpu"] | None = Field(
        default=None, description="What serves the pool: gpu, or cpu (vLLM's CPU backend). Unset: gpu."
    )
    runtime: str | None = Field(
        default=None, description="The serving runtime: vllm, sglang or llama-cpp. Unset: vllm."
    )
    gpu_layers: int | None = Field(
        default=None, description="llama-cpp on a GPU pool: layers offloaded to the GPU (the rest run on the CPU)."
    )
    node_selector: dict[str, str] = Field(description="Selector used for this pool's pods.")
    gpu_resource: str | None = Field(
        default=None, description="Extended resource requested: nvidia.com/gpu or amd.com/gpu (none on CPU pools)."
    )
    cpu_kv_cache_space_gib: int | None = Field(
        default=None, description="CPU pools: VLLM_CPU_KVCACHE_SPACE, the KV cache vLLM allocates (GiB)."
    )
    cpu: str | None = Field(default=None, description="CPU pools: CPUs each vLLM pod requests (= limit).")
    memory: str | None = Field(default=None, description="CPU pools: memory each vLLM pod requests (= limit).")
    model_uri: str = Field(description="Weights this pool serves: the QuantizedModel checkpoint or the base model.")
    precision: str = Field(description="Chosen weight precision.")
    checkpoint_format: str | None = Field(
        default=None,
        description="What the weights are: bf16 for a base model, else <scheme>/<method> of the checkpoint (e.g."
        " fp8-w8a8/compressed-tensors, mxfp4-experts/mxfp4).",
    )
    compute: str | None = Field(
        default=None,
        description="What the pool computes in, e.g. 'fp8 W8A8 via CUTLASS' or 'mxfp4 weights, bf16 math via Marlin'.",
    )
    kv_cache_dtype: str = Field(description="Chosen KV-cache dtype.")
    tensor_parallel_size: int = Field(description="GPUs per replica (1 on CPU pools).")
    quantization: str | None = Field(
        default=None, description="--quantization flag, only for on-the-fly FP8 of a base model (never a checkpoint)."
    )
    native: bool = Field(
        description="Whether the GPU computes in this precision natively (false: a weight-only fallback kernel)."
    )
    reason: str = Field(description="Why.")
    deployment: str = Field(description="Deployment name.")
    replicas: int = Field(description="Desired replicas.")
    ready_replicas: int | None = Field(
        default=None, description="Available replicas of the current pod template (old pods do not count)."
    )
    autoscaler: str | None = Field(
        default=None, description="What owns the replica count: HorizontalPodAutoscaler/<name> or ScaledObject/<name>."
    )
    min_replicas: int | None = Field(default=None, description="Autoscaling: fewest replicas.")
    max_replicas: int | None = Field(default=None, description="Autoscaling: most replicas (after the GPU bound).")
    scaling: str | None = Field(default=None, description="Autoscaling: the bounds and why (the pool's GPU bound).")
    rollout: str | None = Field(
        default=None, description="This pool's rollout: Complete, RollingOut (n/m), Waiting (for another pool), Stuck."
    )
    kv_cache_tokens: int | None = Field(default=None, description="Estimated KV-cache capacity in tokens per replica.")
    max_concurrency: str | None = Field(default=None, description="Estimated concurrent requests at maxModelLen.")
    weights_gib: str | None = Field(default=None, description="Estimated weight memory per GPU (GiB).")
    kv_cache_gib: str | None = Field(default=None, description="Estimated KV-cache memory per GPU (GiB).")


class InferenceServiceStatus(KubeModel):
    """Observed state, rebuilt from the world on every reconcile; decisions pinned per spec generation."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    plan_generation: int | None = Field(default=None, description="Generation whose decisions are pinned.")
    plan_hash: str | None = Field(default=None, description="Hash of the inputs the pinned plan was made from.")
    conditions: list[Condition] | None = Field(default=None, description="Ready, Progressing, Degraded, ModelReady.")
    decisions: list[PoolDecision] | None = Field(default=None, description="Per-pool decisions.")
    precision: str | None = Field(default=None, description="Precisions in use (comma-separated, for kubectl get).")
    runtime: str | None = Field(default=None, description="Runtimes in use (comma-separated, for kubectl get).")
    checkpoint_format: str | None = Field(
        default=None, description="Checkpoint formats served (comma-separated, for kubectl get)."
    )
    compute: str | None = Field(default=None, description="What each pool computes in (<pool>: <compute>; ...).")
    kv_cache_dtype: str | None = Field(default=None, description="KV-cache dtypes in use.")
    pools: str | None = Field(default=None, description="Pools in use.")
    replicas: int | None = Field(default=None, description="Desired replicas across pools.")
    ready_replicas: int | None = Field(default=None, description="Ready replicas across pools.")
    endpoint: str | None = Field(default=None, description="In-cluster OpenAI-compatible endpoint.")

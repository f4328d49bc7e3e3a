"""QuantizedModel (quantfleet.io/v1alpha1): "calibrate this base model into this scheme and store it".

The spec is parsed once at the boundary (`QuantizedModelSpec.model_validate`) into this typed
model; the CRD's OpenAPI schema and CEL rules are generated from the same classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantfleet.api.common import (
    STORAGE_URI_PATTERN,
    Condition,
    ConfigMapKeyRef,
    KubeModel,
    PodMetadata,
    Resources,
    SecretKeyRef,
    Toleration,
)
from quantfleet.api.recipe import GGUF_SCHEMES, Scheme
from quantfleet.api.schemes import MODELOPT, QUARK

_MODELOPT_SCHEMES = tuple(sorted({scheme for scheme, _ in MODELOPT}))
_QUARK_SCHEMES = tuple(sorted({scheme for scheme, _ in QUARK}))

SOURCE_URI_PATTERN = STORAGE_URI_PATTERN


class HuggingFaceSource(KubeModel):
    """A model on the Hugging Face Hub, pinned to a revision so the checkpoint is reproducible."""

    repo: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*$",
        description="Repository id, <org>/<name>, e.g. meta-llama/Llama-3.1-8B-Instruct.",
    )
    revision: str = Field(
        default="main",
        min_length=1,
        max_length=128,
        description="Branch, tag or commit; a commit sha makes the recipe hash stable across upstream pushes.",
    )


class ModelSource(KubeModel):
    """Where the BF16 base checkpoint comes from: exactly one of huggingFace or uri."""

    hugging_face: HuggingFaceSource | None = Field(default=None, description="Hugging Face Hub repository.")
    uri: str | None = Field(
        default=None,
        pattern=SOURCE_URI_PATTERN,
        description="pvc://<claim>/<path> (a PersistentVolumeClaim in this namespace) or s3://<bucket>/<prefix>.",
    )
    credentials_secret: SecretKeyRef | None = Field(
        default=None,
        description="Secret with HF_TOKEN (Hugging Face) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (S3).",
    )
    model_config_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="ConfigMap holding the model's config.json; lets the operator size the GPU count before"
        " downloading weights. Without it one GPU is assumed.",
    )

    cel = (("has(self.huggingFace) != has(self.uri)", "spec.source: set exactly one of huggingFace or uri"),)


class CalibrationSpec(KubeModel):
    """Calibration data and sampling."""

    dataset: str = Field(
        default="builtin:python-stdlib",
        min_length=1,
        description="Hugging Face dataset name, a path to a .txt/.jsonl file on the source volume, or"
        " builtin:python-stdlib (offline text from Python's standard library).",
    )
    samples: int = Field(default=512, ge=1, le=65536, description="Number of calibration samples.")
    sequence_length: int = Field(default=2048, ge=16, le=131072, description="Tokens per calibration sample.")
    seed: int = Field(default=0, ge=0, description="Seed for sample selection.")


class MoESpec(KubeModel):
    """Mixture-of-experts handling (see docs: experts that see no calibration token get garbage scales)."""

    extra_ignore: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Module patterns kept in BF16 in addition to the family's router patterns (re:<regex> or names).",
    )
    calibrate_all_experts: bool = Field(
        default=True, description="Route every calibration token through every expert while calibrating."
    )
    min_tokens_per_expert: int = Field(
        default=0, ge=0, description="Fail the calibration when any expert saw fewer calibration tokens than this."
    )


class PlacementSpec(KubeModel):
    """Where the calibration Job runs. Unset: the operator picks a GPU pool that suits the scheme."""

    node_selector: dict[str, str] | None = Field(
        default=None, description="Node labels the calibration pod must match; replaces automatic pool choice."
    )
    tolerations: list[Toleration] | None = Field(default=None, description="Tolerations for the calibration pod.")
    gpu_count: int | None = Field(
        default=None, ge=1, le=8, description="GPUs for the calibration pod; default derived from the model size."
    )
    allow_fallback: bool = Field(
        default=False,
        description="When no pool runs the scheme natively (e.g. NVFP4 without Blackwell), calibrate on the best"
        " other pool instead of waiting, and say so in status.",
    )


class StorageSpec(KubeModel):
    """Where the checkpoint is published and what happens to it when the QuantizedModel is deleted."""

    destination: str | None = Field(
        default=None,
        pattern=SOURCE_URI_PATTERN,
        description="pvc://<claim>/<path> or s3://<bucket>/<prefix>. Default: a PVC the operator creates,"
        " named after the QuantizedModel.",
    )
    size: str = Field(
        default="100Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$",
        description="Size of the PVC the operator creates.",
    )
    storage_class_name: str | None = Field(default=None, description="StorageClass for the created PVC.")
    retention: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain keeps the checkpoint after the QuantizedModel is deleted; Delete removes it.",
    )
    credentials_secret: SecretKeyRef | None = Field(
        default=None, description="Secret with AWS credentials for an s3:// destination."
    )


class QualityGateSpec(KubeModel):
    """A checkpoint is only Ready when it passes this gate."""

    max_perplexity_delta: float = Field(
        gt=0,
        le=10,
        description="Largest allowed relative perplexity increase over the base model (0.05 = +5%). Non-finite"
        " perplexity always fails.",
    )


class QuantizedModelSpec(KubeModel):
    """Desired quantized checkpoint."""

    source: ModelSource = Field(description="The BF16 base model.")
    scheme: Scheme = Field(
        description="fp8-dynamic, fp8-block, fp8-static (W8A8 FP8), w4a16 (INT4 weight-only), nvfp4 (W4A4),"
        " nvfp4a16 (FP4 weight-only) or mxfp4 (served by vLLM or SGLang); gguf-q8_0, gguf-q4_k_m or gguf-q5_k_m"
        " (a GGUF file made by llama.cpp on a CPU pool, served by llama.cpp's server on CPU pools and any GPU)."
    )
    algorithm: Literal["gptq", "awq"] | None = Field(
        default=None, description="Required for w4a16: gptq or awq. Not allowed for other schemes."
    )
    kv_cache_scales: bool = Field(
        default=False,
        description="Calibrate FP8 KV-cache scales into the checkpoint (vLLM no longer computes them at runtime).",
    )
    tool: Literal["auto", "llm-compressor", "modelopt", "quark", "llama-cpp"] = Field(
        default="auto",
        description="Quantization tool; auto picks per scheme, architecture and placement (AMD Quark for AMD"
        " GPU pools; llama.cpp for the gguf-* schemes, which only it makes).",
    )
    calibration: CalibrationSpec | None = Field(default=None, description="Calibration data.")
    moe: MoESpec | None = Field(default=None, description="Mixture-of-experts options.")
    placement: PlacementSpec | None = Field(default=None, description="Placement override.")
    resources: Resources | None = Field(default=None, description="CPU/memory for the calibration pod.")
    storage: StorageSpec | None = Field(default=None, description="Checkpoint destination and retention.")
    quality_gate: QualityGateSpec | None = Field(default=None, description="Perplexity gate.")
    image: str | None = Field(default=None, description="Calibration image override (default: the pinned image).")
    active_deadline_seconds: int = Field(
        default=21600, ge=60, le=604800, description="Calibration Job deadline in seconds."
    )
    pod_metadata: PodMetadata | None = Field(default=None, description="Labels/annotations for the calibration pod.")

    cel = (
        ("self.scheme != 'w4a16' || has(self.algorithm)", "spec.algorithm (gptq or awq) is required for scheme w4a16"),
        ("self.scheme == 'w4a16' || !has(self.algorithm)", "spec.algorithm is only valid with scheme w4a16"),
        (
            "!(self.tool == 'modelopt' && self.scheme == 'w4a16' && has(self.algorithm) && self.algorithm == 'gptq')",
            "tool modelopt cannot produce w4a16 with gptq; use llm-compressor or algorithm awq",
        ),
        (
            f"self.tool != 'modelopt' || self.scheme in {list(_MODELOPT_SCHEMES)}",
            f"tool modelopt supports {', '.join(_MODELOPT_SCHEMES)}; use llm-compressor or auto for the others",
        ),
        (
            f"self.tool != 'llama-cpp' || self.scheme in {list(GGUF_SCHEMES)}",
            f"tool llama-cpp makes the GGUF schemes only: {', '.join(GGUF_SCHEMES)}",
        ),
        (
            f"!(self.scheme in {list(GGUF_SCHEMES)}) || self.tool in ['auto', 'llama-cpp']",
            "the gguf-* schemes are made by llama.cpp: tool auto or llama-cpp",
        ),
        (
            f"self.tool != 'quark' || self.scheme in {list(_QUARK_SCHEMES)}",
            f"tool quark supports {', '.join(_QUARK_SCHEMES)}; use llm-compressor or auto for the others",
        ),
    )


class ExpertCoverageStatus(KubeModel):
    """Calibration tokens per expert."""

    num_experts: int = Field(description="Experts per MoE layer.")
    routed_min: int = Field(description="Fewest tokens any expert got from the router alone.")
    calibrated_min: int = Field(description="Fewest tokens any expert was calibrated on.")
    all_experts: bool = Field(description="Whether all-expert calibration was on.")


class QualityStatus(KubeModel):
    """Perplexity before and after quantization on held-out calibration text."""

    perplexity_base: str = Field(description="Perplexity of the base model.")
    perplexity_quantized: str = Field(description="Perplexity of the quantized model.")
    delta: str = Field(description="Relative increase (quantized/base - 1).")
    gate: str | None = Field(default=None, description="Passed, Failed, or unset when no gate is configured.")


class CheckpointStatus(KubeModel):
    """The produced checkpoint, from the validated result manifest."""

    uri: str = Field(description="Where the checkpoint is stored.")
    format: str = Field(description="compressed-tensors or modelopt.")
    bytes: int = Field(description="Size in bytes.")
    size: str = Field(description="Human-readable size.")
    sha256: str = Field(description="Checksum over the checkpoint files.")
    tool: str = Field(description="Tool that produced it.")
    tool_version: str = Field(description="Tool version.")
    recipe_hash: str = Field(description="Hash of everything that affects the weights.")
    simulated: bool | None = Field(default=None, description="True when produced by the sandbox simulation.")
    reused_from: str | None = Field(default=None, description="QuantizedModel whose checkpoint was reused.")


class QuantizedModelStatus(KubeModel):
    """Observed state, rebuilt from the world on every reconcile."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: list[Condition] | None = Field(default=None, description="Ready, Calibrating, Failed, QualityGate.")
    phase: str | None = Field(default=None, description="Summary for humans: Pending, Calibrating, Ready, Failed.")
    recipe_hash: str | None = Field(default=None, description="Hash of the desired recipe.")
    job_name: str | None = Field(default=None, description="Calibration Job for the current recipe.")
    tool: str | None = Field(default=None, description="Chosen tool.")
    tool_reason: str | None = Field(default=None, description="Why this tool and recipe.")
    pool: str | None = Field(default=None, description="GPU pool chosen for calibration.")
    placement_reason: str | None = Field(default=None, description="Why this pool.")
    kv_cache_dtype: str | None = Field(default=None, description="fp8_e4m3 when KV scales are calibrated.")
    checkpoint: CheckpointStatus | None = Field(default=None, description="The produced checkpoint.")
    expert_coverage: ExpertCoverageStatus | None = Field(default=None, description="Per-expert coverage summary.")
    quality: QualityStatus | None = Field(default=None, description="Quality metrics.")

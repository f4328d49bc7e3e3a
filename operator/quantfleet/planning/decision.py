"""The precision decision: (model, GPU, request, available checkpoints) -> precision, KV dtype, TP, capacity, reason.

Why it exists: "which precision on which GPU" is a judgement practitioners make by hand (FP8 where the GPU has FP8
math, 16-bit or weight-only formats where it has not, 4-bit where a calibrated checkpoint exists: the GPU x format
facts and their vLLM sources are in docs/gpu-formats.md). It is made once, here, as a pure function with its reason,
so the InferenceService controller, `quantfleet plan` and the tests all agree.

A published, pre-quantized checkpoint (`model.uri` whose config.json names a quantization method) is not a base
model: it is served in its own format or not at all. Per GPU, `quantfleet.hardware.kernels` says which vLLM 0.33
kernel runs it natively, which weight-only fallback kernel serves it, or why vLLM refuses it (docs/
checkpoint-formats.md); the weights are sized from the checkpoint's real layout; `--quantization` is never passed (the
checkpoint names its method, vLLM detects it); an explicit `precision` is a constraint checked against the checkpoint
(a mismatch is a PlanError), never a transformation. A checkpoint that carries calibrated FP8 KV-cache scales gets an
FP8 KV cache where FP8 is native (`auto`).

Precision, `auto` (first candidate that fits wins):
  1. a 4-bit checkpoint the GPU computes natively, when one is Ready: NVFP4 (then MXFP4) on Blackwell,
     MXFP4 on AMD gfx950 (MI350X/MI355X) - someone calibrated it on purpose, and the math is native;
  2. GPUs with native FP8 W8A8 (Ada, Hopper, Blackwell, MI300X/MI325X/MI35xX): an FP8 checkpoint if
     one is Ready (starts faster), else on-the-fly `--quantization fp8` from the BF16 weights;
  3. GPUs without FP8 math (T4, A10G, A100): BF16; if it does not fit, FP8 weight-only (W8A16 Marlin,
     a fallback: a memory win with 16-bit math); then a W4A16 checkpoint (weight-only INT4);
  4. memory-bound last resort: any other Ready checkpoint the GPU runs natively, then one it runs
     only through a fallback kernel (with a warning saying so).
  4-bit formats and FP8-block are never produced on the fly: they need a Ready checkpoint. (vLLM 0.33 has an
  online `--quantization fp8_per_block`, but the operator's vLLM contract - render/vllm_flags.py - emits only
  `--quantization fp8`; widen both together.)
Explicit precision: honoured when the GPU runs it natively; honoured WITH a warning when only a
fallback exists (e.g. `fp8` on A10G = weight-only W8A16); `PlanError` when the GPU cannot run it,
when it needs a checkpoint that is not Ready, or when it does not fit. Never a silent substitution.

KV cache dtype, `auto`: the 16-bit model dtype, unless `concurrency` sequences of `context_len`
tokens (or one `max_model_len` sequence) do not fit in a 16-bit KV cache; then `fp8_e4m3` - but only
on GPUs with native FP8 (cc >= 8.9, AMD gfx942/gfx950). On Ampere/Turing an FP8 KV cache is storage
only and depends on the attention backend (FlashAttention-2, vLLM's default there, has no FP8 KV), so
`auto` never picks it; an explicit fp8 request there is honoured with a warning. (vLLM 0.33 source:
FlashAttention's FP8 KV needs FA3 on sm90 or FA4 on sm100 and never takes e5m2; elsewhere, Ada included,
vLLM serves an FP8 KV cache through FlashInfer or Triton attention.) FP8 KV scales come from the
checkpoint or default to 1.0 (vLLM 0.33 removed `--calculate-kv-scales`): warned about.

Tensor parallelism: the smallest TP in {1, 2, 4, 8} (<= GPUs per node, dividing the heads) that fits
the weights plus one `max_model_len` sequence. Growing TP to meet `concurrency` is a replica-sizing
question left to the caller: when one replica cannot hold the expected concurrency the decision says
so in a warning with the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from quantfleet.api.checkpoint import CheckpointQuant, UnsupportedCheckpoint, from_calibration
from quantfleet.api.manifest import CheckpointFormat
from quantfleet.api.recipe import SCHEMES, GgufScheme
from quantfleet.hardware import Format, GpuFacts, Support, gpu_facts_from_labels, short_name
from quantfleet.hardware.kernels import KernelChoice, checkpoint_kernel
from quantfleet.planning.capacity import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    GIB,
    CapacityEstimate,
    WeightFormat,
    batch_defaults,
    checkpoint_weight_format,
    estimate_capacity,
    fit_tensor_parallel,
    tensor_parallel_constraint,
)
from quantfleet.planning.model import ModelArch

Precision = Literal["bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4"]
RequestedPrecision = Literal["auto", "bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4"]
RequestedKvDtype = Literal["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
PlanErrorKind = Literal["invalid-request", "unsupported", "needs-checkpoint", "does-not-fit"]
SupportLevel = Literal["native", "fallback", "no"]

PRECISIONS: tuple[Precision, ...] = get_args(Precision)
REQUESTED_PRECISIONS: tuple[RequestedPrecision, ...] = get_args(RequestedPrecision)
REQUESTED_KV_DTYPES: tuple[RequestedKvDtype, ...] = get_args(RequestedKvDtype)

CheckpointOrigin = Literal["calibrated", "published"]
_PRECISION_OF: dict[str, Precision] = {p: p for p in PRECISIONS}
# Serving precisions that name a calibration scheme loosely (`quantfleet plan --checkpoint fp8=...`).
_SCHEME_ALIASES: dict[str, str] = {"fp8": "fp8-dynamic"}
_FORMAT: dict[Precision, Format] = {
    "bf16": "int4_w4a16",  # unused: bf16 is never "no"
    "fp8": "fp8_w8a8",
    "fp8-block": "fp8_block",
    "w4a16": "int4_w4a16",
    "nvfp4": "nvfp4",
    "mxfp4": "mxfp4",
}
NEEDS_CHECKPOINT: frozenset[Precision] = frozenset({"fp8-block", "w4a16", "nvfp4", "mxfp4"})


class PlanError(ValueError):
    """The request cannot be planned; `reason` says why with the numbers, `kind` says which way it failed.

    For `does-not-fit`, `capacity` is the closest attempt (largest TP tried) so callers can show it.
    """

    def __init__(
        self,
        reason: str,
        *,
        kind: PlanErrorKind = "invalid-request",
        capacity: CapacityEstimate | None = None,
        precision: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.capacity = capacity
        self.precision = precision


@dataclass(frozen=True)
class Checkpoint:
    """A quantized checkpoint the service may serve: a Ready QuantizedModel's (`calibrated`) or the model URI itself
    when its config.json names a quantization method (`published`). Both are described by one `CheckpointQuant`."""

    quant: CheckpointQuant
    uri: str
    origin: CheckpointOrigin = "calibrated"
    scheme: str = ""  # the QuantizedModel scheme, for calibrated checkpoints

    @classmethod
    def calibrated(
        cls,
        scheme: str,
        checkpoint_format: str = "compressed-tensors",
        uri: str = "",
        *,
        kv_cache_scales: bool = False,
        ignore: tuple[str, ...] = ("lm_head",),
        algorithm: str | None = None,
    ) -> Checkpoint:
        """The checkpoint a QuantizedModel's calibration Job wrote (scheme, tool format, recipe ignore patterns)."""
        name = _SCHEME_ALIASES.get(scheme, scheme)
        scheme_t = next((s for s in SCHEMES if s == name), None)
        if scheme_t is None:
            raise PlanError(f"checkpoint {uri!r}: unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
        fmt = next((f for f in get_args(CheckpointFormat) if f == checkpoint_format), None)
        if fmt is None:
            raise PlanError(f"checkpoint {uri!r}: unknown format {checkpoint_format!r}")
        try:
            quant = from_calibration(scheme_t, fmt, kv_cache_scales=kv_cache_scales, ignore=ignore, algorithm=algorithm)
        except UnsupportedCheckpoint as exc:
            raise PlanError(f"checkpoint {uri or scheme!r}: {exc}", kind="unsupported") from exc
        return cls(quant=quant, uri=uri, origin="calibrated", scheme=scheme_t)

    @classmethod
    def published(cls, quant: CheckpointQuant, uri: str) -> Checkpoint:
        """A pre-quantized checkpoint served as it is (its config.json names its method)."""
        return cls(quant=quant, uri=uri, origin="published", scheme="")

    @property
    def precision(self) -> Precision:
        return _PRECISION_OF[self.quant.precision]

    @property
    def weight_format(self) -> WeightFormat:
        return checkpoint_weight_format(self.quant)

    @property
    def kv_cache_scales(self) -> bool:
        """Carries calibrated FP8 KV-cache scales."""
        kv = self.quant.kv_cache
        return kv is not None and kv.calibrated and kv.dtype == "fp8_e4m3"

    @property
    def name(self) -> str:
        """How reasons name it: the calibration scheme, or the published checkpoint's method and scheme."""
        return self.scheme if self.origin == "calibrated" else self.quant.label


@dataclass(frozen=True)
class PlanRequest:
    """What the InferenceService asks for. `gpu_count` None: the node's GPUs; `context_len` None: max_model_len."""

    precision: RequestedPrecision = "auto"
    kv_cache_dtype: RequestedKvDtype = "auto"
    max_model_len: int | None = None
    context_len: int | None = None
    concurrency: int = 1
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    gpu_count: int | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    base_model: bool = True  # the BF16 weights are available (needed for bf16 and on-the-fly fp8)

    def __post_init__(self) -> None:
        if self.precision not in REQUESTED_PRECISIONS:
            raise PlanError(f"unknown precision {self.precision!r}; expected one of {', '.join(REQUESTED_PRECISIONS)}")
        if self.kv_cache_dtype not in REQUESTED_KV_DTYPES:
            raise PlanError(
                f"unknown KV cache dtype {self.kv_cache_dtype!r}; expected one of {', '.join(REQUESTED_KV_DTYPES)}"
            )
        for name in ("max_model_len", "context_len", "gpu_count"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise PlanError(f"{name} must be at least 1, got {value}")
        if self.concurrency < 1:
            raise PlanError(f"concurrency must be at least 1, got {self.concurrency}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise PlanError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclass(frozen=True)
class CpuSizing:
    """What a CPU pool's vLLM pod gets (planning.cpu): the KV cache space vLLM's CPU backend allocates
    (VLLM_CPU_KVCACHE_SPACE, whole GiB) and the pod's CPU/memory, requests equal to limits."""

    kv_cache_space_gib: int
    memory_bytes: int
    cpus: str  # a Kubernetes CPU quantity: whole cores when the operator sizes it, the spec's value otherwise
    node_memory_bytes: int
    runtime_bytes: int
    activation_bytes: int

    @property
    def memory(self) -> str:
        """The pod memory as a Kubernetes quantity (whole MiB)."""
        return f"{self.memory_bytes // 2**20}Mi"


@dataclass(frozen=True)
class Decision:
    """How to serve the model on this GPU (or CPU pool: `device` "cpu", `cpu` set), and why.

    `checkpoint_format` is what the weights ARE (bf16 for a base model, else the checkpoint's method and scheme);
    `compute` is what the pool computes in (e.g. "mxfp4 weights, bf16 math via Marlin"); `kernel` names the vLLM
    kernel for a checkpoint."""

    precision: Precision | GgufScheme  # GGUF: llama.cpp serves a GGUF checkpoint (planning.llamacpp)
    kv_cache_dtype: str
    tensor_parallel_size: int
    capacity: CapacityEstimate
    quantization_flag: str | None
    checkpoint: Checkpoint | None
    native: bool
    reason: str
    warnings: tuple[str, ...] = ()
    checkpoint_format: str = "bf16"
    compute: str = ""
    kernel: str | None = None
    device: Literal["gpu", "cpu"] = "gpu"
    cpu: CpuSizing | None = None
    gpu_layers: int | None = None  # llama.cpp: layers offloaded to the GPU (0 on a CPU pool)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the `quantfleet plan --output json` keys; status writers can reuse it)."""
        c = self.capacity
        return {
            "precision": self.precision,
            "kv_cache_dtype": self.kv_cache_dtype,
            "weights_gib": c.weights_gib,
            "kv_cache_gib": c.kv_cache_gib,
            "kv_bytes_per_token": c.kv_bytes_per_token,
            "kv_cache_tokens": c.kv_cache_tokens,
            "max_concurrency": c.max_concurrency,
            "tensor_parallel_size": self.tensor_parallel_size,
            "fits": c.fits,
            "reason": self.reason,
            "quantization_flag": self.quantization_flag,
            "checkpoint": (self.checkpoint.uri or None) if self.checkpoint else None,
            "checkpoint_format": self.checkpoint_format,
            "compute": self.compute,
            "kernel": self.kernel,
            "native": self.native,
            "warnings": list(self.warnings),
            "vllm_args": list(self.vllm_args),
            "device": self.device,
            **({"cpu": self.cpu_dict()} if self.cpu else {}),
        }

    def cpu_dict(self) -> dict[str, Any]:
        """The CPU pod sizing as JSON (empty for GPU decisions)."""
        if self.cpu is None:
            return {}
        return {
            "kv_cache_space_gib": self.cpu.kv_cache_space_gib,
            "memory": self.cpu.memory,
            "cpus": self.cpu.cpus,
            "node_memory_gib": round(self.cpu.node_memory_bytes / GIB, 2),
        }

    @property
    def vllm_args(self) -> tuple[str, ...]:
        """The vLLM flags this decision implies (model path and everything else is the renderer's job)."""
        args = [f"--tensor-parallel-size={self.tensor_parallel_size}", f"--kv-cache-dtype={self.kv_cache_dtype}"]
        if self.quantization_flag:
            args.append(f"--quantization={self.quantization_flag}")
        args.append(f"--max-model-len={self.capacity.max_model_len}")
        return tuple(args)


@dataclass(frozen=True)
class PlanRow:
    """One precision in the `quantfleet plan` comparison table."""

    precision: Precision
    support: SupportLevel
    needs_checkpoint: bool
    checkpoint: Checkpoint | None
    fits: bool
    decision: Decision | None
    capacity: CapacityEstimate | None
    reason: str
    warnings: tuple[str, ...] = field(default=())


# --- support levels ----------------------------------------------------------------------------


def support_level(gpu: GpuFacts, precision: Precision) -> tuple[SupportLevel, str]:
    """How this GPU runs a serving precision, and what that means in words."""
    if precision == "bf16":
        if gpu.compute_capability is not None and gpu.compute_capability < (8, 0):
            return "native", "16-bit (no BF16 on this GPU: vLLM computes in FP16)"
        return "native", "BF16 weights and math"
    if precision == "fp8":
        if gpu.fp8_w8a8 == Support.NATIVE:
            return "native", "FP8 W8A8 (FP8 tensor-core math)"
        if gpu.fp8_w8a8 != Support.NO or gpu.fp8_weight_only != Support.NO:
            return "fallback", "FP8 weight-only W8A16 via Marlin (no FP8 math on this GPU: memory win only)"
        return "no", "no FP8 path on this GPU"
    level, words = {
        "fp8-block": (gpu.fp8_block, "FP8 with 128x128 block scales"),
        "w4a16": (gpu.int4_w4a16, "INT4 weight-only W4A16 (Marlin; 16-bit math)"),
        "nvfp4": (gpu.nvfp4, "NVFP4"),
        "mxfp4": (gpu.mxfp4, "MXFP4"),
    }[precision]
    if level == Support.NATIVE:
        suffix = " W4A4 (FP4 tensor-core math)" if precision in ("nvfp4", "mxfp4") else " (native kernel)"
        return "native", words + suffix
    if level == Support.FALLBACK:
        return "fallback", words + " through a fallback kernel (weight-only Marlin / Triton: memory win only)"
    return "no", f"{words} cannot run on this GPU"


def checkpoint_support(gpu: GpuFacts, ckpt: Checkpoint) -> tuple[SupportLevel, KernelChoice]:
    """How this GPU runs a checkpoint (the vLLM 0.33 kernel table in quantfleet.hardware.kernels)."""
    kernel = checkpoint_kernel(gpu, ckpt.quant)
    level: SupportLevel = (
        "native" if kernel.level is Support.NATIVE else ("fallback" if kernel.level is Support.FALLBACK else "no")
    )
    return level, kernel


def fp8_kv_native(gpu: GpuFacts) -> bool:
    """FP8 KV cache as a first-class option: GPUs with native FP8 (cc >= 8.9, AMD gfx942/gfx950)."""
    return gpu.fp8_w8a8 == Support.NATIVE


# --- the decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    precision: Precision
    weight_format: WeightFormat
    checkpoint: Checkpoint | None
    level: SupportLevel
    why: str
    kernel: KernelChoice | None = None


def decide(arch: ModelArch, gpu: GpuFacts, request: PlanRequest) -> Decision:
    """Precision, KV dtype, TP and capacity for serving `arch` on `gpu`; PlanError with a reason otherwise."""
    check_lengths(arch, request)
    published = [c for c in request.checkpoints if c.origin == "published"]
    if published:
        return _decide_published(arch, gpu, request, published[0])
    if request.precision == "auto":
        return _decide_auto(arch, gpu, request)
    return _decide_explicit(arch, gpu, request, request.precision)


def _decide_published(arch: ModelArch, gpu: GpuFacts, request: PlanRequest, ckpt: Checkpoint) -> Decision:
    """A pre-quantized checkpoint: its own format on this GPU, or a PlanError saying why not."""
    name = gpu_name(gpu)
    wanted = request.precision
    if wanted != "auto" and wanted != ckpt.precision:
        raise PlanError(
            f"precision {wanted} requested but the checkpoint {ckpt.uri} is {ckpt.quant.label} ({ckpt.precision}): "
            f"precision is checked against a pre-quantized checkpoint, it never re-quantizes one; set precision "
            f"{ckpt.precision} or auto, or serve a checkpoint in {wanted}",
            kind="invalid-request",
            precision=wanted,
        )
    level, kernel = checkpoint_support(gpu, ckpt)
    if level == "no":
        raise PlanError(
            f"{name} cannot serve the {ckpt.quant.label} checkpoint: {kernel.reason} [vLLM 0.33.0 {kernel.source}]",
            kind="unsupported",
            precision=ckpt.precision,
        )
    how = "runs natively" if level == "native" else "runs only through a fallback kernel"
    cand = _Candidate(
        ckpt.precision,
        ckpt.weight_format,
        ckpt,
        level,
        f"the checkpoint's own format ({ckpt.quant.label}) {how}: {kernel.reason}",
        kernel,
    )
    decision, failure, est = _evaluate(arch, gpu, request, cand)
    if decision is None:
        raise PlanError(
            f"the {ckpt.quant.label} checkpoint does not fit on {name}: {failure}",
            kind="does-not-fit",
            capacity=est,
            precision=ckpt.precision,
        )
    return decision


def check_lengths(arch: ModelArch, request: PlanRequest) -> None:
    limit = arch.max_position_embeddings
    if request.max_model_len is not None and request.max_model_len > limit:
        raise PlanError(
            f"max_model_len {request.max_model_len} exceeds the model's max_position_embeddings {limit} "
            "(vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set)"
        )
    max_len = request.max_model_len or limit
    if request.context_len is not None and request.context_len > max_len:
        raise PlanError(f"context length {request.context_len} exceeds max_model_len {max_len}")


def decide_for_node(arch: ModelArch, labels: Mapping[str, str], request: PlanRequest) -> Decision:
    """`decide` from a node's labels: raises LabelError for unusable labels, PlanError for a node without GPUs."""
    gpu = gpu_facts_from_labels(labels)
    if gpu is None:
        raise PlanError(
            "the node has no NVIDIA (nvidia.com/gpu.*) or AMD (amd.com/gpu.*) GPU labels", kind="unsupported"
        )
    return decide(arch, gpu, request)


def _decide_explicit(arch: ModelArch, gpu: GpuFacts, request: PlanRequest, precision: Precision) -> Decision:
    level, words = support_level(gpu, precision)
    name = gpu_name(gpu)
    candidates, refusals = _explicit_candidates(gpu, request, precision, level, words)
    if not candidates:
        if level == "no":
            raise PlanError(
                f"{precision} requested but {name} cannot run it: {words} ({gpu.support_reason(_FORMAT[precision])})",
                kind="unsupported",
                precision=precision,
            )
        if refusals:
            raise PlanError(
                f"{precision} requested but {name} cannot run the Ready {precision} checkpoint: {refusals[0]}",
                kind="unsupported",
                precision=precision,
            )
        if precision in NEEDS_CHECKPOINT:
            raise PlanError(
                f"{precision} requested but no Ready {precision} checkpoint is available: 4-bit and FP8-block "
                "weights need a calibrated checkpoint (create a QuantizedModel) or a pre-quantized one in that format "
                "as model.uri; vLLM cannot make them on the fly",
                kind="needs-checkpoint",
                precision=precision,
            )
        raise PlanError(f"{precision} requested but the BF16 base model is not available", kind="needs-checkpoint")
    failures: list[str] = []
    closest: CapacityEstimate | None = None
    for cand in candidates:
        decision, failure, est = _evaluate(arch, gpu, request, cand)
        if decision is not None:
            return decision
        failures.append(failure)
        closest = est or closest
    raise PlanError(
        f"{precision} on {name} does not fit: " + "; ".join(failures),
        kind="does-not-fit",
        capacity=closest,
        precision=precision,
    )


def _explicit_candidates(
    gpu: GpuFacts, request: PlanRequest, precision: Precision, level: SupportLevel, words: str
) -> tuple[list[_Candidate], list[str]]:
    """(candidates, why the GPU refuses the Ready checkpoints of this precision)."""
    out: list[_Candidate] = []
    refusals: list[str] = []
    for ckpt in request.checkpoints:
        if ckpt.precision != precision:
            continue
        ck_level, kernel = checkpoint_support(gpu, ckpt)
        if ck_level == "no":
            refusals.append(kernel.reason)
            continue
        how = "runs natively" if ck_level == "native" else "runs only through a fallback kernel"
        why = f"requested {precision}: the {ckpt.quant.label} checkpoint {how} ({kernel.reason})"
        out.append(_Candidate(precision, ckpt.weight_format, ckpt, ck_level, why, kernel))
    out.sort(key=lambda c: c.weight_format == "nvfp4a16")  # INT4 W4A16 before FP4 weight-only
    if request.base_model and precision in ("bf16", "fp8") and level != "no":
        fmt: WeightFormat = "bf16" if precision == "bf16" else "fp8"
        out.append(_Candidate(precision, fmt, None, level, f"requested {precision}: {words}"))
    return out, refusals


def _decide_auto(arch: ModelArch, gpu: GpuFacts, request: PlanRequest) -> Decision:
    candidates = _auto_candidates(gpu, request)
    if not candidates:
        refused = [
            f"{c.name}: {kernel.reason}"
            for c in request.checkpoints
            for level, kernel in [checkpoint_support(gpu, c)]
            if level == "no"
        ]
        raise PlanError(
            f"nothing to serve on {gpu_name(gpu)}: no BF16 base model and no Ready checkpoint this GPU can run"
            + (f" ({'; '.join(refused)})" if refused else ""),
            kind="unsupported" if refused else "needs-checkpoint",
        )
    failures: list[str] = []
    closest: CapacityEstimate | None = None
    for cand in candidates:
        decision, failure, est = _evaluate(arch, gpu, request, cand)
        if decision is not None:
            if failures:
                decision = replace(decision, reason=decision.reason + " Rejected first: " + "; ".join(failures) + ".")
            return decision
        failures.append(f"{cand.precision}{' checkpoint' if cand.checkpoint else ''}: {failure}")
        closest = est or closest
    if not any(c.precision in ("w4a16", "nvfp4", "mxfp4") for c in candidates):
        failures.append(_four_bit_hint(arch, gpu, request))
    raise PlanError(
        f"{arch.model_type} does not fit on {gpu_name(gpu)} at any precision/TP: " + "; ".join(failures),
        kind="does-not-fit",
        capacity=closest,
        precision=candidates[-1].precision,
    )


def _four_bit_hint(arch: ModelArch, gpu: GpuFacts, request: PlanRequest) -> str:
    """What-if for the auto failure message: would the GPU's best 4-bit format fit once calibrated?"""
    scheme: Precision = "w4a16"
    if gpu.vendor == "nvidia" and gpu.nvfp4 == Support.NATIVE:
        scheme = "nvfp4"
    elif gpu.vendor == "amd" and gpu.mxfp4 == Support.NATIVE:
        scheme = "mxfp4"
    level = support_level(gpu, scheme)[0]
    if level == "no":
        return "no 4-bit format runs on this GPU"
    ckpt = Checkpoint.calibrated(scheme, default_checkpoint_format(scheme), "")
    decision, _, _ = _evaluate(arch, gpu, request, _Candidate(scheme, ckpt.weight_format, ckpt, level, "what-if"))
    if decision is None:
        return f"a {scheme} checkpoint would not fit either"
    return (
        f"a {scheme} checkpoint would fit at TP={decision.tensor_parallel_size} ({decision.capacity.weights_gib} GiB "
        f"of weights): create a QuantizedModel with scheme {scheme}"
    )


def _auto_candidates(gpu: GpuFacts, request: PlanRequest) -> list[_Candidate]:
    ckpts = request.checkpoints
    fp8_level, fp8_words = support_level(gpu, "fp8")
    out: list[_Candidate] = []

    def ckpt_cands(precision: Precision, why: str, *, levels: tuple[SupportLevel, ...] = ("native",)) -> None:
        for ck in sorted(ckpts, key=lambda c: c.weight_format == "nvfp4a16"):
            level, kernel = checkpoint_support(gpu, ck)
            if ck.precision == precision and level in levels and not any(c.checkpoint == ck for c in out):
                out.append(_Candidate(precision, ck.weight_format, ck, level, why, kernel))

    # 1. the GPU's own 4-bit format, calibrated on purpose
    if gpu.vendor == "nvidia" and gpu.nvfp4 == Support.NATIVE:
        ckpt_cands("nvfp4", "a Ready NVFP4 checkpoint and native FP4 tensor cores (Blackwell)")
        if gpu.mxfp4 == Support.NATIVE:  # e.g. gpt-oss ships MXFP4: Blackwell runs it natively too
            ckpt_cands("mxfp4", "a Ready MXFP4 checkpoint and native FP4 tensor cores (Blackwell)")
    if gpu.vendor == "amd" and gpu.mxfp4 == Support.NATIVE:
        ckpt_cands("mxfp4", "a Ready MXFP4 checkpoint and native MXFP4 math (gfx950)")
    # 2. native FP8
    if fp8_level == "native":
        ckpt_cands("fp8", f"{fp8_words}; a Ready FP8 checkpoint starts faster than quantizing on the fly")
        ckpt_cands("fp8-block", f"{fp8_words}; a Ready FP8-block checkpoint")
        if request.base_model:
            out.append(
                _Candidate(
                    "fp8",
                    "fp8",
                    None,
                    "native",
                    f"{fp8_words}, quantized on the fly from BF16 (the default where FP8 math is native, "
                    "docs/gpu-formats.md)",
                )
            )
    # 3. no FP8 math: BF16, then weight-only
    else:
        if request.base_model:
            out.append(
                _Candidate("bf16", "bf16", None, "native", f"no FP8 math on this GPU: {support_level(gpu, 'bf16')[1]}")
            )
        if fp8_level == "fallback":
            why = "BF16 does not fit; FP8 weight-only W8A16 (Marlin) halves the weights, math stays 16-bit"
            ckpt_cands("fp8", why, levels=("fallback",))
            if request.base_model:
                out.append(_Candidate("fp8", "fp8", None, "fallback", why))
        ckpt_cands("w4a16", "larger formats do not fit; a Ready W4A16 checkpoint (weight-only INT4, 16-bit math)")
    # 4. memory-bound last resort: remaining checkpoints, native first, then fallback kernels
    last_resort: tuple[Precision, ...] = ("nvfp4", "mxfp4", "w4a16", "fp8-block")
    for p in last_resort:
        ckpt_cands(p, f"larger formats do not fit; a Ready {p} checkpoint")
    for p in PRECISIONS[1:]:
        ckpt_cands(
            p, f"larger formats do not fit; a Ready {p} checkpoint through a fallback kernel", levels=("fallback",)
        )
    # 5. anything else that loads (e.g. a weight-only FP8 checkpoint on a GPU without FP8 math)
    for p in PRECISIONS[1:]:
        ckpt_cands(p, f"larger formats do not fit; a Ready {p} checkpoint", levels=("native", "fallback"))
    return out


def _evaluate(
    arch: ModelArch, gpu: GpuFacts, request: PlanRequest, cand: _Candidate
) -> tuple[Decision | None, str, CapacityEstimate | None]:
    """Fit one candidate: smallest TP, then the KV dtype. Returns (decision, why-not, closest estimate)."""
    warnings: list[str] = []
    gpus = request.gpu_count or gpu.count
    if gpu.mig_profile and gpus > 1:
        warnings.append(
            f"MIG slice {gpu.mig_profile}: tensor parallelism across MIG instances is not supported, using TP=1"
        )
        gpus = 1
    max_len = request.max_model_len or arch.max_position_embeddings
    ctx = request.context_len or max_len
    sixteen = "float16" if gpu.compute_capability is not None and gpu.compute_capability < (8, 0) else "bfloat16"
    kv_choices, kv_word = _kv_choices(gpu, request, sixteen, warnings, cand.checkpoint)
    batched, seqs = batch_defaults(gpu.memory_mib, gpu.key or gpu.label_product or "")
    quant = cand.checkpoint.quant if cand.checkpoint else None

    def estimate(tp: int, kv: str) -> CapacityEstimate:
        return estimate_capacity(
            arch,
            weight_format=cand.weight_format,
            kv_cache_dtype=kv,
            gpu_memory_mib=gpu.memory_mib,
            tensor_parallel_size=tp,
            gpu_memory_utilization=request.gpu_memory_utilization,
            max_model_len=max_len,
            context_len=ctx,
            max_num_batched_tokens=batched,
            max_num_seqs=seqs,
            checkpoint=quant,
        )

    # Smallest TP that fits with the most compact KV dtype allowed.
    est, why = fit_tensor_parallel(
        arch,
        gpus_per_node=gpus,
        weight_format=cand.weight_format,
        kv_cache_dtype=kv_choices[-1],
        gpu_memory_mib=gpu.memory_mib,
        gpu_memory_utilization=request.gpu_memory_utilization,
        max_model_len=max_len,
        context_len=ctx,
        max_num_batched_tokens=batched,
        max_num_seqs=seqs,
        checkpoint=quant,
    )
    if est is None or not est.fits:
        return None, why, est
    tp = est.tensor_parallel_size
    kv, kv_reason, est = _pick_kv(arch, request, tp, kv_choices, kv_word, estimate, ctx, max_len)
    if est.max_concurrency < request.concurrency:
        need = request.concurrency * est.seq_kv_bytes_per_gpu
        warnings.append(
            f"expected concurrency {request.concurrency} at {ctx} tokens needs {need / GIB:.2f} GiB of {kv} KV "
            "per GPU; "
            f"one replica holds {est.kv_cache_gib_per_gpu} GiB ({est.max_concurrency}x): add replicas or GPUs"
        )
    if kv.startswith("fp8") and not (cand.checkpoint and cand.checkpoint.kv_cache_scales):
        warnings.append(
            "FP8 KV cache without calibrated KV scales: vLLM 0.33 uses scale 1.0 (--calculate-kv-scales was removed); "
            "calibrate them with a QuantizedModel (FP8 KV-cache scales) for best accuracy"
        )
    if cand.level == "fallback":
        words = cand.kernel.reason if cand.kernel else support_level(gpu, cand.precision)[1]
        warnings.append(f"{cand.precision} on {gpu_name(gpu)} is not native: {words}")
    if cand.weight_format == "nvfp4a16":
        warnings.append("NVFP4A16 checkpoint: FP4 weights with 16-bit math (weight-only), not W4A4")
    if gpu.shared:
        warnings.append("time-sliced GPU (-SHARED): other pods share this memory; the estimate assumes the whole GPU")
    if not gpu.known:
        warnings.append(f"GPU not in the table, facts derived: {gpu.derivation}")
    published = cand.checkpoint is not None and cand.checkpoint.origin == "published"
    if arch.quantization_method and not published:
        warnings.append(
            f"config.json already carries quantization_config ({arch.quantization_method}) but is planned as BF16 "
            "base weights"
        )
    if quant is not None:
        warnings.extend(f"checkpoint: {n}" for n in quant.notes)
    if cand.precision in ("fp8", "fp8-block") and gpu.fp8_flavour == "e4m3fnuz":
        warnings.append(f"{gpu_name(gpu)} computes FP8 as E4M3 FNUZ: OCP FP8 checkpoints are converted at load")
    if cand.precision in ("nvfp4", "mxfp4", "w4a16") and not published:
        warnings.append("4-bit weights: measure quality (perplexity / task accuracy) before rolling out")

    flag = "fp8" if cand.precision == "fp8" and cand.checkpoint is None else None
    source = (
        _source(cand) if cand.checkpoint else ("BF16 weights" if flag is None else "BF16 weights, --quantization fp8")
    )
    reason = (
        f"{gpu_name(gpu)} ({describe_gpu(gpu)}): {cand.precision} - {cand.why}; serving {source}. "
        f"Weights {est.weights_gib} GiB ({est.weights_gib_per_gpu} GiB/GPU) at TP={tp}"
        f"{_tp_note(arch, cand.weight_format, tp, quant)}. KV cache {kv}: {kv_reason}"
    )
    decision = Decision(
        precision=cand.precision,
        kv_cache_dtype=kv,
        tensor_parallel_size=tp,
        capacity=est,
        quantization_flag=flag,
        checkpoint=cand.checkpoint,
        native=cand.level == "native",
        reason=reason,
        warnings=tuple(warnings),
        checkpoint_format=quant.label if quant is not None else _dtype_name(arch.torch_dtype),
        compute=_compute(cand, sixteen),
        kernel=cand.kernel.kernel if cand.kernel else None,
    )
    return decision, "", est


def _dtype_name(torch_dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(torch_dtype, torch_dtype)


def _compute(cand: _Candidate, sixteen: str) -> str:
    """What the pool computes in, in words."""
    b16 = _dtype_name(sixteen)
    if cand.kernel is not None:
        return cand.kernel.compute
    if cand.precision == "fp8":
        if cand.level == "native":
            return "fp8 W8A8, quantized from bf16 at load (--quantization fp8)"
        return f"fp8 weights quantized at load, {b16} math via Marlin (W8A16)"
    return f"{b16} weights and math"


def _source(cand: _Candidate) -> str:
    ckpt = cand.checkpoint
    if ckpt is None:
        return "BF16 weights"
    if ckpt.origin == "published":
        return f"the pre-quantized checkpoint {ckpt.uri} ({ckpt.quant.describe()}), no --quantization flag"
    return f"the {ckpt.scheme} checkpoint {ckpt.uri}" if ckpt.uri else f"a {ckpt.scheme} checkpoint (to be calibrated)"


def _kv_choices(
    gpu: GpuFacts, request: PlanRequest, sixteen: str, warnings: list[str], ckpt: Checkpoint | None
) -> tuple[tuple[str, ...], str]:
    """KV dtypes the decision may use, preferred first, and the words for a single forced choice."""
    kv = ckpt.quant.kv_cache if ckpt else None
    if request.kv_cache_dtype == "auto" and kv is not None:
        if kv.dtype != "fp8_e4m3":
            warnings.append(
                f"the checkpoint declares a {kv.dtype} KV cache; quantfleet plans FP8 or 16-bit KV caches and passes "
                "--kv-cache-dtype explicitly, which overrides it"
            )
        elif fp8_kv_native(gpu):
            default = "; vLLM turns FP8 KV on by default for it" if kv.vllm_default else ""
            return ("fp8_e4m3",), (
                f"the checkpoint carries calibrated FP8 KV-cache scales ({kv.source}{default}): FP8 KV with those "
                "scales"
            )
        else:
            warnings.append(
                f"the checkpoint carries calibrated FP8 KV-cache scales, but FP8 KV is not native on {gpu_name(gpu)}: "
                "the KV cache stays 16-bit (the explicit --kv-cache-dtype overrides vLLM's default)"
            )
    if request.kv_cache_dtype == "auto":
        if fp8_kv_native(gpu):
            return (sixteen, "fp8_e4m3"), ""
        return (sixteen,), "16-bit (FP8 KV is not native on this GPU)"
    if request.kv_cache_dtype.startswith("fp8") and not fp8_kv_native(gpu):
        warnings.append(
            f"{request.kv_cache_dtype} KV cache on {gpu_name(gpu)} (no native FP8): storage only, and only with an "
            "attention backend that supports FP8 KV here (FlashInfer/Triton, not FlashAttention-2)"
        )
    if request.kv_cache_dtype == "fp8_e5m2":
        warnings.append("fp8_e5m2 KV cache: FlashAttention does not take it, vLLM uses FlashInfer/Triton attention")
    if request.kv_cache_dtype == "bfloat16" and sixteen == "float16":
        warnings.append("bfloat16 KV cache requested on a GPU without BF16: vLLM stores it as float16")
        return ("float16",), "requested"
    return (request.kv_cache_dtype,), "requested"


def _pick_kv(
    arch: ModelArch,
    request: PlanRequest,
    tp: int,
    choices: tuple[str, ...],
    word: str,
    est_for: Callable[[int, str], CapacityEstimate],
    ctx: int,
    max_len: int,
) -> tuple[str, str, CapacityEstimate]:
    """The KV dtype at this TP, with the numbers that decided it."""
    want = f"{request.concurrency} x {ctx} tokens"
    first = est_for(tp, choices[0])
    if len(choices) == 1:
        return choices[0], f"{word}; {_kv_numbers(first, want)}", first
    need = request.concurrency * first.seq_kv_bytes_per_gpu
    if first.fits and first.kv_cache_bytes_per_gpu >= need:
        return (
            choices[0],
            f"{want} need {need / GIB:.2f} GiB/GPU in {choices[0]}, which fits; {_kv_numbers(first, want)}",
            first,
        )
    fp8 = est_for(tp, choices[1])
    if not first.fits:
        why = (
            f"one {max_len}-token sequence does not fit in a {choices[0]} KV cache "
            f"({first.kv_cache_gib_per_gpu} GiB/GPU)"
        )
    else:
        why = (
            f"{want} need {need / GIB:.2f} GiB/GPU in {choices[0]} but only {first.kv_cache_gib_per_gpu} GiB/GPU is "
            f"free ({first.max_concurrency}x)"
        )
    return choices[1], f"{why}; FP8 halves it: {_kv_numbers(fp8, want)}", fp8


def _kv_numbers(est: CapacityEstimate, want: str) -> str:
    return (
        f"{est.kv_cache_gib_per_gpu} GiB/GPU holds {est.kv_cache_tokens} tokens, {est.max_concurrency}x concurrency at "
        f"{est.context_len} tokens ({est.kv_bytes_per_token} bytes/token)"
    )


def _tp_note(arch: ModelArch, fmt: WeightFormat, tp: int, quant: CheckpointQuant | None = None) -> str:
    if tp == 1:
        return ""
    note = " (smaller TP does not fit"
    if tensor_parallel_constraint(arch, fmt, tp // 2, quant):
        note += " or is invalid"
    return note + ")"


# --- the comparison table ----------------------------------------------------------------------


def plan_all(arch: ModelArch, gpu: GpuFacts, request: PlanRequest) -> list[PlanRow]:
    """One row per precision the GPU can run (native or fallback). Precisions that need a checkpoint nobody
    has calibrated are planned as if one existed, and say so."""
    published = [c for c in request.checkpoints if c.origin == "published"]
    if published:
        return [_published_row(arch, gpu, request, published[0])]
    rows: list[PlanRow] = []
    for precision in PRECISIONS:
        level = support_level(gpu, precision)[0]
        if level == "no":
            continue
        needs = precision in NEEDS_CHECKPOINT
        req = replace(request, precision=precision)
        hypothetical = needs and not any(c.precision == precision for c in request.checkpoints)
        if hypothetical:
            scheme = precision
            req = replace(
                req,
                checkpoints=(
                    *request.checkpoints,
                    Checkpoint.calibrated(scheme, default_checkpoint_format(precision), ""),
                ),
            )
        try:
            d = decide(arch, gpu, req)
        except PlanError as err:
            rows.append(PlanRow(precision, level, needs, None, False, None, err.capacity, err.reason))
            continue
        warnings = d.warnings
        ckpt = d.checkpoint
        if hypothetical:
            warnings = (f"needs a calibrated {precision} checkpoint (none Ready): create a QuantizedModel", *warnings)
            ckpt = None
        rows.append(PlanRow(precision, level, needs, ckpt, True, d, d.capacity, d.reason, warnings))
    return rows


def _published_row(arch: ModelArch, gpu: GpuFacts, request: PlanRequest, ckpt: Checkpoint) -> PlanRow:
    """A pre-quantized checkpoint has one row: its own format."""
    level, _ = checkpoint_support(gpu, ckpt)
    try:
        d = decide(arch, gpu, request)
    except PlanError as err:
        return PlanRow(ckpt.precision, level, False, ckpt, False, None, err.capacity, err.reason)
    return PlanRow(ckpt.precision, level, False, ckpt, True, d, d.capacity, d.reason, d.warnings)


def default_checkpoint_format(scheme: str) -> CheckpointFormat:
    """The format `choose_tool` would produce by default (ModelOpt for NVFP4 on MoE; close enough for planning)."""
    return "modelopt" if scheme == "nvfp4" else "compressed-tensors"


# --- words -------------------------------------------------------------------------------------


def gpu_name(gpu: GpuFacts) -> str:
    return short_name(gpu)


def describe_gpu(gpu: GpuFacts) -> str:
    arch = (
        f"cc {gpu.compute_capability[0]}.{gpu.compute_capability[1]}"
        if gpu.compute_capability is not None
        else (gpu.gfx_arch or "unknown arch")
    )
    return f"{gpu.family}, {arch}, {gpu.memory_mib / 1024:.0f} GiB x {gpu.count}"

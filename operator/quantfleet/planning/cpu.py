"""The precision decision for a CPU pool: (model, CPU facts, node size, request, checkpoints) -> a Decision.

Why it exists: vLLM's CPU backend is a different machine from a GPU in every way the decision cares about. It has
no FP8 or FP4 math (vLLM's W8A8 CPU kernel needs AMX-FP8, which no NFD label names), what it can run depends on the
instruction set (quantfleet.hardware.cpu, from Node Feature Discovery labels), and its memory is the node's RAM,
sized by one number: the KV cache space vLLM allocates (``VLLM_CPU_KVCACHE_SPACE``, whole GiB, read with ``int()``;
without it vLLM reads ``--gpu-memory-utilization`` as a share of the node's RAM). The rules, with what was measured
on a real vLLM CPU build (docs/vllm-cpu.md):

Precision, ``auto`` (first candidate that fits wins):
  1. BF16 from the base weights: the fastest path on CPU (oneDNN/AMX BF16 math);
  2. a Ready FP8 checkpoint (compressed-tensors): FP8 weights, 16-bit math (AMX BRGEMM W8A16 on AMX CPUs; without AMX
     torch's FP8 scaled_mm, measured ~50x slower than BF16): a memory win only, so only when BF16 does not fit;
  3. a Ready W4A16 checkpoint: vLLM's CPU INT4 kernel, AVX-512 only;
  4. a Ready FP8-block checkpoint: AMX only.
  Online ``--quantization fp8`` is never planned: the CPU build registers the FP8 quantization op as a stub and the
  server fails at start. FP4 formats have no CPU kernel. Explicit precisions are honoured or refused, never
  substituted.

KV cache: 16-bit is rendered as ``--kv-cache-dtype auto`` (the model's dtype; vLLM 0.32's CPU attention lists only
auto and the FP8 spellings). An FP8 KV cache (``fp8_e4m3``) needs AVX-512 or AMX and head_dim % 32 == 0
(cpu_attn.py:539-551): ``auto`` picks it for a checkpoint with calibrated KV scales, or when the expected concurrency
does not fit 16-bit; an explicit FP8 request on a CPU without AVX-512 is refused, naming the missing labels.

Memory (per pod, requests = limits, so the pod is Guaranteed and a static CPU manager can give it whole cores):
  pod memory  = spec.resources memory, else gpuMemoryUtilization x the smallest node's allocatable memory
                (the same meaning vLLM gives the flag on CPU: the share of the node's RAM)
  KV space    = floor((pod memory - weights - runtime - activations) / GiB)        -> VLLM_CPU_KVCACHE_SPACE
  runtime     = 3 GiB: API server, engine core and worker processes without the KV cache (measured 2.7 GiB RSS for
                a tiny model, docs/vllm-cpu.md)
  activations = the GPU planner's profile estimate at vLLM's CPU batch defaults (2048 batched tokens, 128 sequences:
                engine/arg_utils.py:3029-3037)
  pod CPUs    = spec.resources cpu, else the smallest node's allocatable whole cores minus one (left to daemonsets)
It fits when the KV space is at least 1 GiB and holds one ``max_model_len`` sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantfleet.hardware.cpu import CPU_HEAD_SIZES, CPU_IMAGE_ARCH, SRC_CPU_ONLINE_FP8, CpuFacts, cpu_checkpoint_kernel
from quantfleet.hardware.kernels import KernelChoice
from quantfleet.hardware.support import Support
from quantfleet.planning.capacity import (
    GIB,
    KV_DTYPE_BYTES,
    MIB,
    CapacityEstimate,
    WeightFormat,
    activation_bytes,
    checkpoint_weight_bytes,
    count_parameters,
    kv_bytes_per_token,
    kv_bytes_per_token_per_layer,
    kv_layers,
    sequence_kv_bytes,
    weight_bytes,
)
from quantfleet.planning.decision import (
    NEEDS_CHECKPOINT,
    Checkpoint,
    CpuSizing,
    Decision,
    PlanError,
    PlanRequest,
    PlanRow,
    Precision,
    SupportLevel,
    check_lengths,
)
from quantfleet.planning.model import ModelArch

CPU_RUNTIME_BYTES = 3 * GIB
CPU_BATCH_DEFAULTS = (2048, 128)  # (max_num_batched_tokens, max_num_seqs), vLLM 0.33.0 arg_utils.py:3029-3037
CPU_AUTO_ORDER: tuple[Precision, ...] = ("bf16", "fp8", "w4a16", "fp8-block")
KV_16BIT = "auto"  # what a 16-bit KV cache is rendered as on CPU


@dataclass(frozen=True)
class CpuNodeSize:
    """What the smallest node of a CPU pool can give one pod, and what the spec asks for (None: the operator sizes)."""

    memory_bytes: int
    cpus: int
    memory_limit_bytes: int | None = None
    cpu_limit: str | None = None


@dataclass(frozen=True)
class _Cand:
    precision: Precision
    weight_format: WeightFormat
    checkpoint: Checkpoint | None
    kernel: KernelChoice | None
    why: str

    @property
    def level(self) -> SupportLevel:
        if self.kernel is None:
            return "native"
        return "native" if self.kernel.level is Support.NATIVE else "fallback"


def cpu_name(cpu: CpuFacts) -> str:
    return f"{cpu.name} ({cpu.describe()})"


def decide_cpu(arch: ModelArch, cpu: CpuFacts, node: CpuNodeSize, request: PlanRequest) -> Decision:
    """Precision, KV dtype and pod sizing for serving `arch` on a CPU pool; PlanError with a reason otherwise."""
    _check_model(arch, cpu, request)
    published = [c for c in request.checkpoints if c.origin == "published"]
    if published:
        ckpt = published[0]
        if request.precision not in ("auto", ckpt.precision):
            raise PlanError(
                f"precision {request.precision} requested but the checkpoint {ckpt.uri} is {ckpt.quant.label}"
                f" ({ckpt.precision}): precision is checked against a pre-quantized checkpoint, it never re-quantizes"
                " one",
                precision=request.precision,
            )
        kernel = cpu_checkpoint_kernel(cpu, ckpt.quant)
        if kernel.level is Support.NO:
            raise PlanError(
                f"{cpu_name(cpu)} cannot serve the {ckpt.quant.label} checkpoint: {kernel.reason} [vLLM 0.33.0"
                f" {kernel.source}]",
                kind="unsupported",
                precision=ckpt.precision,
            )
        how = "runs natively" if kernel.level is Support.NATIVE else "runs only through a weight-only kernel"
        cands = [
            _Cand(
                ckpt.precision,
                ckpt.weight_format,
                ckpt,
                kernel,
                f"the checkpoint's own format ({ckpt.quant.label}) {how}: {kernel.reason}",
            )
        ]
    elif request.precision == "auto":
        cands = _auto(cpu, request)
    else:
        cands = _explicit(cpu, request, request.precision)
    failures: list[str] = []
    closest: CapacityEstimate | None = None
    for cand in cands:
        decision, why, est = _evaluate(arch, cpu, node, request, cand)
        if decision is not None:
            if failures:
                decision = _with_rejected(decision, failures)
            return decision
        failures.append(f"{cand.precision}{' checkpoint' if cand.checkpoint else ''}: {why}")
        closest = est or closest
    raise PlanError(
        f"{arch.model_type} does not fit on {cpu_name(cpu)}: " + "; ".join(failures),
        kind="does-not-fit",
        capacity=closest,
        precision=cands[-1].precision if cands else None,
    )


def _with_rejected(d: Decision, failures: list[str]) -> Decision:
    from dataclasses import replace

    return replace(d, reason=d.reason + " Rejected first: " + "; ".join(failures) + ".")


def _check_model(arch: ModelArch, cpu: CpuFacts, request: PlanRequest) -> None:
    if cpu.arch != CPU_IMAGE_ARCH:
        raise PlanError(
            f"{cpu_name(cpu)}: the pinned vLLM CPU image is built for x86_64 ({CPU_IMAGE_ARCH}); {cpu.arch} CPU pools"
            " are not planned",
            kind="unsupported",
        )
    if arch.mla is not None:
        raise PlanError(
            f"{arch.model_type} uses multi-head latent attention: quantfleet does not plan MLA models on CPU pools",
            kind="unsupported",
        )
    if arch.head_dim not in CPU_HEAD_SIZES:
        raise PlanError(
            f"head_dim {arch.head_dim}: vLLM's CPU attention supports head sizes {', '.join(map(str, CPU_HEAD_SIZES))}"
            " (v1/attention/backends/cpu_attn.py:78)",
            kind="unsupported",
        )
    check_lengths(arch, request)


def _ckpt_cands(cpu: CpuFacts, request: PlanRequest, precision: Precision, why: str) -> tuple[list[_Cand], list[str]]:
    out: list[_Cand] = []
    refused: list[str] = []
    for ck in request.checkpoints:
        if ck.precision != precision:
            continue
        kernel = cpu_checkpoint_kernel(cpu, ck.quant)
        if kernel.level is Support.NO:
            refused.append(f"{ck.name}: {kernel.reason}")
            continue
        out.append(_Cand(precision, ck.weight_format, ck, kernel, f"{why} ({kernel.reason})"))
    return out, refused


def _auto(cpu: CpuFacts, request: PlanRequest) -> list[_Cand]:
    cands: list[_Cand] = []
    refused: list[str] = []
    if request.base_model:
        cands.append(_Cand("bf16", "bf16", None, None, "BF16 weights and math, the fastest path on vLLM's CPU backend"))
    whys = {
        "fp8": "BF16 does not fit; a Ready FP8 checkpoint halves the weights",
        "w4a16": "larger formats do not fit; a Ready W4A16 checkpoint (INT4 weights, 16-bit math)",
        "fp8-block": "larger formats do not fit; a Ready FP8-block checkpoint",
    }
    for p in CPU_AUTO_ORDER[1:]:
        more, why_not = _ckpt_cands(cpu, request, p, whys[p])
        cands += more
        refused += why_not
    if not cands:
        raise PlanError(
            f"nothing to serve on {cpu_name(cpu)}: no BF16 base model and no Ready checkpoint this CPU can run"
            + (f" ({'; '.join(refused)})" if refused else ""),
            kind="unsupported" if refused else "needs-checkpoint",
        )
    return cands


def _explicit(cpu: CpuFacts, request: PlanRequest, precision: Precision) -> list[_Cand]:
    cands, refused = _ckpt_cands(cpu, request, precision, f"requested {precision}")
    if precision == "bf16" and request.base_model:
        cands.append(_Cand("bf16", "bf16", None, None, "requested bf16: BF16 weights and math"))
    if cands:
        return cands
    if refused:
        raise PlanError(
            f"{precision} requested but {cpu_name(cpu)} cannot run the Ready {precision} checkpoint: {refused[0]}",
            kind="unsupported",
            precision=precision,
        )
    if precision == "fp8":
        raise PlanError(
            f"fp8 requested on {cpu_name(cpu)} without a Ready FP8 checkpoint: vLLM's CPU backend cannot quantize to"
            f" FP8 on the fly (--quantization fp8 fails at start; {SRC_CPU_ONLINE_FP8}); serve an FP8 checkpoint"
            " (a QuantizedModel with scheme fp8-dynamic) or bf16",
            kind="unsupported",
            precision=precision,
        )
    if precision in NEEDS_CHECKPOINT:
        raise PlanError(
            f"{precision} requested but no Ready {precision} checkpoint is available: it needs a calibrated"
            " checkpoint (create a QuantizedModel) or a pre-quantized one in that format as model.uri",
            kind="needs-checkpoint",
            precision=precision,
        )
    raise PlanError(f"{precision} requested but the BF16 base model is not available", kind="needs-checkpoint")


# ------------------------------------------------------------------------------------------------ sizing


def _kv_choices(
    arch: ModelArch, cpu: CpuFacts, request: PlanRequest, cand: _Cand, warnings: list[str]
) -> tuple[tuple[str, ...], str]:
    """KV dtypes the decision may use (rendered values), preferred first, and the words for a single choice."""
    fp8_ok = cpu.fp8_kv_cache and arch.head_dim % 32 == 0
    why_not = (
        cpu.missing("avx512")
        if not cpu.fp8_kv_cache
        else f"head_dim {arch.head_dim} is not a multiple of 32 (cpu_attn.py:539)"
    )
    kv = cand.checkpoint.quant.kv_cache if cand.checkpoint else None
    wanted = request.kv_cache_dtype
    if wanted == "auto":
        if kv is not None and cand.checkpoint is not None and cand.checkpoint.kv_cache_scales:
            if fp8_ok:
                return ("fp8_e4m3",), f"the checkpoint carries calibrated FP8 KV-cache scales ({kv.source})"
            warnings.append(
                "the checkpoint carries calibrated FP8 KV-cache scales, but vLLM's CPU backend takes an FP8 KV cache"
                f" only with AVX-512 or AMX: {why_not}; the KV cache stays 16-bit"
            )
        if fp8_ok:
            return (KV_16BIT, "fp8_e4m3"), ""
        return (KV_16BIT,), f"16-bit, the model's dtype (no FP8 KV cache on this CPU: {why_not})"
    if wanted == "bfloat16":
        return (KV_16BIT,), "requested bfloat16, rendered as auto (the model's 16-bit dtype)"
    if not fp8_ok:
        raise PlanError(
            f"{wanted} KV cache requested but vLLM's CPU backend needs x86 with AVX-512 or AMX for an FP8 KV cache"
            f" ('FP8 KV cache on CPU requires x86 with AVX-512 or AMX.', cpu_attn.py:551): {why_not}",
            kind="unsupported",
        )
    if wanted == "fp8_e4m3" and not (cand.checkpoint and cand.checkpoint.kv_cache_scales):
        warnings.append(
            "FP8 KV cache without calibrated KV scales: vLLM uses scale 1.0; calibrate them with a QuantizedModel"
            " (FP8 KV-cache scales) for best accuracy"
        )
    return (wanted,), "requested"


def _bytes_kv(arch: ModelArch, kv: str) -> str:
    """The dtype the KV bytes are counted in: the model's 16-bit dtype for `auto`."""
    if kv != KV_16BIT:
        return kv
    return arch.torch_dtype if arch.torch_dtype in KV_DTYPE_BYTES else "bfloat16"


def pod_size(node: CpuNodeSize, fraction: float) -> tuple[int, str, str]:
    """(pod memory bytes, pod CPU quantity, words): the spec's values, else a share of the smallest node."""
    if node.memory_limit_bytes is not None:
        memory = node.memory_limit_bytes
        words = f"pod memory {_gib(memory)} GiB from spec.resources"
    else:
        memory = int(node.memory_bytes * fraction) // MIB * MIB
        words = f"pod memory {_gib(memory)} GiB ({fraction:g} x the node's allocatable {_gib(node.memory_bytes)} GiB)"
    cpus = node.cpu_limit if node.cpu_limit is not None else str(max(1, node.cpus - 1))
    return memory, cpus, words


def _evaluate(
    arch: ModelArch, cpu: CpuFacts, node: CpuNodeSize, request: PlanRequest, cand: _Cand
) -> tuple[Decision | None, str, CapacityEstimate | None]:
    warnings: list[str] = []
    kv_choices, kv_word = _kv_choices(arch, cpu, request, cand, warnings)
    max_len = request.max_model_len or arch.max_position_embeddings
    ctx = request.context_len or max_len
    memory, cpus, memory_words = pod_size(node, request.gpu_memory_utilization)
    t, s = CPU_BATCH_DEFAULTS
    act = activation_bytes(arch, 1, t, s)
    quant = cand.checkpoint.quant if cand.checkpoint else None
    wb = checkpoint_weight_bytes(arch, quant) if quant is not None else weight_bytes(arch, cand.weight_format)
    free = memory - wb.total - CPU_RUNTIME_BYTES - act
    space = max(0, free // GIB)

    def estimate(kv: str) -> CapacityEstimate:
        counted = _bytes_kv(arch, kv)
        kv_bytes = space * GIB
        seq = sequence_kv_bytes(arch, counted, ctx, 1, t)
        seq_max = sequence_kv_bytes(arch, counted, max_len, 1, t)
        full, sliding = kv_layers(arch)
        fits = space >= 1 and kv_bytes >= seq_max
        if space < 1:
            reason = (
                f"does not fit: {memory_words} - weights {_gib(wb.total)} GiB - runtime {_gib(CPU_RUNTIME_BYTES)} GiB"
                f" - activations {_gib(act)} GiB leaves {_gib(max(free, 0))} GiB, less than the 1 GiB minimum KV"
                " cache space"
            )
        elif not fits:
            reason = (
                f"does not fit: VLLM_CPU_KVCACHE_SPACE={space} GiB < {_gib(seq_max)} GiB for one"
                f" max_model_len={max_len} sequence"
            )
        else:
            reason = f"fits: VLLM_CPU_KVCACHE_SPACE={space} GiB ({counted})"
        return CapacityEstimate(
            weight_format=cand.weight_format,
            kv_cache_dtype=kv,
            tensor_parallel_size=1,
            params_total=count_parameters(arch).total,
            params_active=count_parameters(arch).active,
            weight_bytes=wb.total,
            weights_gib=_gib(wb.total),
            weights_gib_per_gpu=_gib(wb.total),
            bf16_roles=wb.bf16_roles,
            gpu_memory_gib=_gib(memory),
            gpu_memory_utilization=request.gpu_memory_utilization,
            budget_gib_per_gpu=_gib(memory),
            activation_gib=_gib(act),
            cuda_graph_gib=0.0,
            runtime_gib=_gib(CPU_RUNTIME_BYTES),
            non_kv_gib_per_gpu=_gib(wb.total + CPU_RUNTIME_BYTES + act),
            kv_cache_gib_per_gpu=float(space),
            kv_cache_bytes_per_gpu=kv_bytes,
            kv_cache_gib=float(space),
            kv_bytes_per_token=kv_bytes_per_token(arch, counted),
            kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_layer(arch, counted) * (full + sliding),
            sliding_window=arch.sliding_window,
            sliding_cap_bytes=seq_max - full * kv_bytes_per_token_per_layer(arch, counted) * max_len,
            context_len=ctx,
            seq_kv_bytes=seq,
            seq_kv_bytes_per_gpu=seq,
            kv_cache_tokens=kv_bytes * max_len // seq_max if seq_max else 0,
            max_concurrency=math.floor(kv_bytes / seq * 100) / 100 if seq else 0.0,
            max_model_len=max_len,
            fits=fits,
            reason=reason,
        )

    first = estimate(kv_choices[0])
    est, kv, kv_reason = first, kv_choices[0], kv_word
    want = f"{request.concurrency} x {ctx} tokens"
    if len(kv_choices) > 1:
        need = request.concurrency * first.seq_kv_bytes
        if first.fits and first.kv_cache_bytes_per_gpu >= need:
            kv_reason = f"{want} need {_gib(need)} GiB in 16-bit, which fits"
        else:
            second = estimate(kv_choices[1])
            if second.fits:
                why = (
                    f"{want} need {_gib(need)} GiB in 16-bit but only {space} GiB is free ({first.max_concurrency}x)"
                    if first.fits
                    else f"one {max_len}-token sequence does not fit a 16-bit KV cache of {space} GiB"
                )
                est, kv, kv_reason = second, kv_choices[1], f"{why}; FP8 halves it"
    if not est.fits:
        return None, est.reason, est
    if est.max_concurrency < request.concurrency:
        warnings.append(
            f"expected concurrency {request.concurrency} at {ctx} tokens needs"
            f" {_gib(request.concurrency * est.seq_kv_bytes)} GiB of KV cache; one replica holds {space} GiB"
            f" ({est.max_concurrency}x): add replicas or memory"
        )
    if cand.level == "fallback" and cand.kernel is not None:
        warnings.append(f"{cand.precision} on {cpu.name} is not native: {cand.kernel.reason}")
    if not cpu.labelled:
        warnings.append(f"{cpu.missing('avx2')}: only what needs no vector extension beyond the baseline is planned")
    if quant is not None:
        warnings.extend(f"checkpoint: {n}" for n in quant.notes)
    if cand.precision == "w4a16" and not (cand.checkpoint and cand.checkpoint.origin == "published"):
        warnings.append("4-bit weights: measure quality (perplexity / task accuracy) before rolling out")
    sizing = CpuSizing(
        kv_cache_space_gib=int(space),
        memory_bytes=memory,
        cpus=cpus,
        node_memory_bytes=node.memory_bytes,
        runtime_bytes=CPU_RUNTIME_BYTES,
        activation_bytes=act,
    )
    source = _source(cand)
    reason = (
        f"{cpu_name(cpu)}: {cand.precision} - {cand.why}; serving {source}. Weights {est.weights_gib} GiB; "
        f"{memory_words} - weights - runtime {_gib(CPU_RUNTIME_BYTES)} GiB - activations {_gib(act)} GiB ="
        f" VLLM_CPU_KVCACHE_SPACE={space} GiB, {est.kv_cache_tokens} tokens, {est.max_concurrency}x concurrency at"
        f" {ctx} tokens ({est.kv_bytes_per_token} bytes/token). KV cache {kv}: {kv_reason}"
    )
    decision = Decision(
        precision=cand.precision,
        kv_cache_dtype=kv,
        tensor_parallel_size=1,
        capacity=est,
        quantization_flag=None,
        checkpoint=cand.checkpoint,
        native=cand.level == "native",
        reason=reason,
        warnings=tuple(warnings),
        checkpoint_format=quant.label if quant is not None else _dtype_name(arch.torch_dtype),
        compute=cand.kernel.compute if cand.kernel is not None else f"{_dtype_name(arch.torch_dtype)} weights and math",
        kernel=cand.kernel.kernel if cand.kernel is not None else None,
        device="cpu",
        cpu=sizing,
    )
    return decision, "", est


def _dtype_name(torch_dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(torch_dtype, torch_dtype)


def _source(cand: _Cand) -> str:
    ck = cand.checkpoint
    if ck is None:
        return "BF16 weights"
    if ck.origin == "published":
        return f"the pre-quantized checkpoint {ck.uri} ({ck.quant.describe()})"
    return f"the {ck.scheme} checkpoint {ck.uri}" if ck.uri else f"a {ck.scheme} checkpoint (to be calibrated)"


def _gib(n: int | float) -> float:
    return round(n / GIB, 2)


# ------------------------------------------------------------------------------------------------ the comparison table


def plan_all_cpu(arch: ModelArch, cpu: CpuFacts, node: CpuNodeSize, request: PlanRequest) -> list[PlanRow]:
    """One row per precision for vLLM's CPU backend on `cpu` (the `quantfleet plan --cpu` table); one it cannot run
    has support "no" and the reason. Precisions that need a checkpoint nobody has calibrated are planned as if a
    compressed-tensors one existed, and say so."""
    from dataclasses import replace

    published = [c for c in request.checkpoints if c.origin == "published"]
    precisions: tuple[Precision, ...] = (published[0].precision,) if published else CPU_AUTO_ORDER
    rows: list[PlanRow] = []
    for precision in precisions:
        hypothetical = not published and precision != "bf16" and not _has(request.checkpoints, precision)
        req = replace(request, precision=precision)
        ckpts = request.checkpoints
        if hypothetical:
            scheme = "fp8-dynamic" if precision == "fp8" else precision
            ckpts = (*ckpts, Checkpoint.calibrated(scheme, "compressed-tensors", ""))
            req = replace(req, checkpoints=ckpts)
        level: SupportLevel = "native"
        ck = next((c for c in ckpts if c.precision == precision), None)
        if ck is not None:
            kernel = cpu_checkpoint_kernel(cpu, ck.quant)
            level = (
                "native" if kernel.level is Support.NATIVE else "fallback" if kernel.level is Support.FALLBACK else "no"
            )
        if precision == "bf16" and not request.base_model:
            continue
        if level == "no" and ck is not None:  # listed with the reason: what this CPU cannot run is worth knowing
            reason = cpu_checkpoint_kernel(cpu, ck.quant).reason
            rows.append(PlanRow(precision, "no", hypothetical, None, False, None, None, reason))
            continue
        try:
            d = decide_cpu(arch, cpu, node, req)
        except PlanError as err:
            rows.append(PlanRow(precision, level, hypothetical, None, False, None, err.capacity, err.reason))
            continue
        warnings = d.warnings
        if hypothetical:
            warnings = (f"needs a calibrated {precision} checkpoint (none Ready): create a QuantizedModel", *warnings)
        rows.append(
            PlanRow(
                precision,
                level,
                hypothetical,
                None if hypothetical else d.checkpoint,
                True,
                d,
                d.capacity,
                d.reason,
                warnings,
            )
        )
    return rows


def _has(ckpts: tuple[Checkpoint, ...], precision: str) -> bool:
    return any(c.precision == precision for c in ckpts)

"""`quantfleet plan`: what precision, KV dtype and TP a model gets on a GPU, and why — before anything is deployed.

Why it exists: the same pure decision the InferenceService controller makes (quantfleet.planning), run from a
terminal against a config.json and a GPU name (or a node's labels), so a human can see and argue with it.
This module is the I/O boundary: it reads files, prints, and maps errors to exit codes.

Exit codes: 0 the plan fits; 1 the plan was computed but does not fit (JSON still printed, `fits: false`);
2 bad input (unreadable file, invalid config, unknown GPU, a precision the GPU cannot run, ...), one line on
stderr, no traceback.

Precisions that need a calibrated checkpoint (fp8-block, w4a16, nvfp4, mxfp4) are planned as if one existed
when requested explicitly (the output says so); `auto` only uses checkpoints named with `--checkpoint`.

`--cpu amx|avx512|avx2` (or `--node-labels` with a GPU-less Node, labelled by Node Feature Discovery) plans a CPU
pool instead: vLLM's CPU backend, the precisions it runs on that instruction set, and the pod it gets on a node of
`--node-memory` / `--node-cpus` (VLLM_CPU_KVCACHE_SPACE, CPU and memory requests); `--memory` / `--cpus` size the pod
as spec.resources would.

A config.json that carries a `quantization_config` (or a directory with ModelOpt's hf_quant_config.json beside
config.json, or `--hf-quant-config`) is a pre-quantized checkpoint: it is planned in its own format only, with the
vLLM kernel that serves it on the GPU (native / fallback) or the reason vLLM refuses it (exit 2), and `--precision`
is checked against it. The output shows the checkpoint's format separately from what the GPU computes in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from quantfleet.api.checkpoint import HF_QUANT_CONFIG, CheckpointQuant, UnsupportedCheckpoint, parse_checkpoint_quant
from quantfleet.hardware import GpuFacts, LabelError, UnknownGpu, facts_for, gpu_facts_from_labels, lookup, short_name
from quantfleet.hardware.cpu import (
    CPU_ISAS,
    CpuFacts,
    cpu_facts_from_labels,
    cpu_quantity_millis,
    memory_quantity_bytes,
    nfd_labels_for,
)
from quantfleet.planning import (
    CapacityEstimate,
    Checkpoint,
    ConfigError,
    Decision,
    ModelArch,
    PlanError,
    PlanRequest,
    PlanRow,
    decide,
    parse_model_config,
    plan_all,
)
from quantfleet.planning.capacity import DEFAULT_GPU_MEMORY_UTILIZATION
from quantfleet.planning.cpu import CpuNodeSize, cpu_name, decide_cpu, plan_all_cpu
from quantfleet.planning.decision import (
    NEEDS_CHECKPOINT,
    REQUESTED_KV_DTYPES,
    REQUESTED_PRECISIONS,
    default_checkpoint_format,
    describe_gpu,
)

JSON_KEYS = (
    "precision",
    "kv_cache_dtype",
    "weights_gib",
    "kv_cache_gib",
    "kv_bytes_per_token",
    "kv_cache_tokens",
    "max_concurrency",
    "tensor_parallel_size",
    "fits",
    "reason",
)


class CliError(Exception):
    """Bad input: printed as one line, exit code 2."""


def register(subparsers: Any) -> None:
    """Add `plan` to the `quantfleet` command (see quantfleet.cli)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="precision, KV-cache dtype, tensor parallelism and capacity for a model on a GPU",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--model-config", required=True, metavar="PATH", help="HF config.json (or its directory)")
    p.add_argument(
        "--hf-quant-config",
        metavar="PATH",
        help="ModelOpt hf_quant_config.json (default: the one beside config.json, if any; read only when config.json"
        " has no quantization_config, as vLLM does)",
    )
    gpu = p.add_mutually_exclusive_group(required=True)
    gpu.add_argument("--gpu", metavar="PRODUCT", help="GFD product name (NVIDIA-H100-80GB-HBM3) or short name (h100)")
    gpu.add_argument(
        "--node-labels",
        metavar="FILE",
        help="a node's labels as JSON (a label map or a Node object); a GPU-less node plans a CPU pool",
    )
    gpu.add_argument(
        "--cpu",
        metavar="ISA",
        choices=[i for i in CPU_ISAS if i != "unknown"],
        help="plan a CPU pool (vLLM's CPU backend) of this instruction-set level: amx, avx512 or avx2",
    )
    p.add_argument("--node-memory", metavar="QUANTITY", help="CPU pools: the node's allocatable memory (default 64Gi)")
    p.add_argument("--node-cpus", metavar="N", help="CPU pools: the node's allocatable CPUs (default 16)")
    p.add_argument("--memory", metavar="QUANTITY", help="CPU pools: the pod's memory, as spec.resources would set it")
    p.add_argument("--cpus", metavar="N", help="CPU pools: the pod's CPUs, as spec.resources would set it")
    p.add_argument("--gpu-count", type=int, metavar="N", help="GPUs per node (default: the labels / a typical node)")
    p.add_argument("--precision", default="auto", choices=REQUESTED_PRECISIONS)
    p.add_argument("--kv-cache-dtype", default="auto", choices=REQUESTED_KV_DTYPES)
    p.add_argument("--gpu-memory-utilization", type=float, default=DEFAULT_GPU_MEMORY_UTILIZATION, metavar="F")
    p.add_argument("--max-model-len", type=int, metavar="N", help="default: the model's max_position_embeddings")
    p.add_argument(
        "--context", type=int, metavar="N", help="tokens per request for concurrency (default: max-model-len)"
    )
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="expected concurrent requests (default 1)")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="SCHEME[=URI]",
        help="a Ready checkpoint auto may use (fp8-dynamic, fp8-block, w4a16, nvfp4, nvfp4a16, mxfp4); repeatable",
    )
    p.add_argument("--output", default="table", choices=("table", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        arch, quant, where = _load_model(Path(args.model_config), args.hf_quant_config)
        cpu = _load_cpu(args)
        gpu = _load_gpu(args) if cpu is None else None
        request = _request(args, quant, where)
        if cpu is not None:
            return _plan_cpu(arch, *cpu, request, args.output)
        assert gpu is not None
        return _plan(arch, gpu, request, args.output)
    except BrokenPipeError:  # `quantfleet plan ... | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CliError, ConfigError, PlanError, UnknownGpu, LabelError, UnsupportedCheckpoint, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"quantfleet plan: error: {message}", file=sys.stderr)
        return 2


# --- inputs ------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CliError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{what} {str(path)!r} is not valid JSON: {err}") from err


def _load_model(path: Path, hf_quant: str | None) -> tuple[ModelArch, CheckpointQuant | None, str]:
    """(architecture, the checkpoint's quantization or None for a base model, the checkpoint's directory)."""
    if path.is_dir():
        path = path / "config.json"
    cfg = _read_json(path, "model config")
    if not isinstance(cfg, Mapping):
        raise CliError(f"model config {str(path)!r} must be a JSON object")
    quant_path = Path(hf_quant) if hf_quant else path.parent / HF_QUANT_CONFIG
    hq = _read_json(quant_path, HF_QUANT_CONFIG) if hf_quant or quant_path.is_file() else None
    if hq is not None and not isinstance(hq, Mapping):
        raise CliError(f"{HF_QUANT_CONFIG} {str(quant_path)!r} must be a JSON object")
    return parse_model_config(cfg), parse_checkpoint_quant(cfg, hq), str(path.parent)


def _load_gpu(args: argparse.Namespace) -> GpuFacts:
    count: int | None = args.gpu_count
    if count is not None and count < 1:
        raise CliError(f"--gpu-count must be at least 1, got {count}")
    if args.gpu is not None:
        return facts_for(args.gpu, count or lookup(args.gpu).gpus_per_node)
    doc = _read_json(Path(args.node_labels), "node labels")
    labels = doc.get("metadata", {}).get("labels") if isinstance(doc, Mapping) and "metadata" in doc else doc
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise CliError(f"node labels {args.node_labels!r} must be a JSON object of string labels (or a Node object)")
    facts = gpu_facts_from_labels(labels, count=count)
    if facts is None:
        raise CliError(f"node labels {args.node_labels!r} carry no nvidia.com/gpu.* or amd.com/gpu.* GPU labels")
    return facts


def _node_doc(path: str) -> tuple[Mapping[str, str], Mapping[str, Any]]:
    """(labels, allocatable) from --node-labels: a label map, or a Node object."""
    doc = _read_json(Path(path), "node labels")
    is_node = isinstance(doc, Mapping) and "metadata" in doc
    labels = doc.get("metadata", {}).get("labels") if is_node else doc
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise CliError(f"node labels {path!r} must be a JSON object of string labels (or a Node object)")
    allocatable = (doc.get("status") or {}).get("allocatable") or {} if is_node else {}
    return labels, allocatable


def _load_cpu(args: argparse.Namespace) -> tuple[CpuFacts, CpuNodeSize] | None:
    """A CPU pool to plan (--cpu, or --node-labels naming a GPU-less node); None to plan a GPU."""
    allocatable: Mapping[str, Any] = {}
    if args.cpu is not None:
        cpu = cpu_facts_from_labels(nfd_labels_for(args.cpu))
    elif args.node_labels is not None:
        labels, allocatable = _node_doc(args.node_labels)
        if gpu_facts_from_labels(labels) is not None:
            return None
        cpu = cpu_facts_from_labels(labels)
    else:
        return None
    memory = memory_quantity_bytes(args.node_memory or allocatable.get("memory") or "64Gi")
    cpus = cpu_quantity_millis(args.node_cpus or allocatable.get("cpu") or "16") // 1000
    if memory < 1 or cpus < 1:
        raise CliError("--node-memory / --node-cpus must be positive Kubernetes quantities (e.g. 64Gi, 16)")
    pod_memory = memory_quantity_bytes(args.memory) if args.memory else None
    if args.memory and not pod_memory:
        raise CliError(f"--memory {args.memory!r} is not a Kubernetes memory quantity")
    if args.cpus and cpu_quantity_millis(args.cpus) < 1:
        raise CliError(f"--cpus {args.cpus!r} is not a Kubernetes CPU quantity")
    return cpu, CpuNodeSize(memory, cpus, pod_memory, args.cpus)


def _plan_cpu(arch: ModelArch, cpu: CpuFacts, node: CpuNodeSize, request: PlanRequest, output: str) -> int:
    decision: Decision | None = None
    failure: PlanError | None = None
    try:
        decision = decide_cpu(arch, cpu, node, request)
    except PlanError as err:
        if err.kind != "does-not-fit":
            raise
        failure = err
    rows = plan_all_cpu(arch, cpu, node, request)
    if output == "json":
        if decision is not None:
            doc: dict[str, Any] = decision.as_dict()
        else:
            doc = {"precision": request.precision, "fits": False, "reason": failure.reason if failure else ""}
        doc["requested_precision"] = request.precision
        doc["cpu_pool"] = {
            "name": cpu.name,
            "description": cpu.describe(),
            "node_memory_gib": round(node.memory_bytes / 2**30, 2),
            "node_cpus": node.cpus,
        }
        doc["model"] = {"model_type": arch.model_type, "description": arch.describe()}
        print(json.dumps(doc, indent=2))
        return 0 if decision is not None else 1
    max_len = request.max_model_len or arch.max_position_embeddings
    lines = [
        f"model: {arch.describe()}",
        f"cpu:   {cpu_name(cpu)}; node allocatable {node.memory_bytes / 2**30:.1f} GiB, {node.cpus} CPUs; "
        f"pod memory share {request.gpu_memory_utilization}",
        f"request: max_model_len {max_len}, concurrency {request.concurrency}, kv cache dtype {request.kv_cache_dtype}",
        "",
    ]
    cols = ("precision", "support", "weights GiB", "KV dtype", "KV space GiB", "KV tokens", "concurrency", "fits")
    cells = [cols]
    for r in rows:
        cap = r.capacity
        mark = " <- chosen" if decision is not None and r.fits and r.precision == decision.precision else ""
        cells.append(
            (
                r.precision + ("*" if r.needs_checkpoint and r.checkpoint is None else ""),
                r.support,
                f"{cap.weights_gib:.1f}" if cap else "-",
                r.decision.kv_cache_dtype if r.decision else "-",
                f"{cap.kv_cache_gib:.0f}" if cap else "-",
                str(cap.kv_cache_tokens) if cap else "-",
                f"{cap.max_concurrency:g}x" if cap else "-",
                ("yes" if r.fits else "no") + mark,
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    for i, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(r.needs_checkpoint and r.checkpoint is None for r in rows):
        lines.append("* needs a calibrated checkpoint (QuantizedModel); planned as if one existed")
    lines += [f"{r.precision} cannot run on this CPU: {r.reason}" for r in rows if r.support == "no"]
    lines.append("")
    label = "chosen (auto)" if request.precision == "auto" else f"requested ({request.precision})"
    if decision is not None and decision.cpu is not None:
        lines.append(f"{label}: {decision.precision}, KV {decision.kv_cache_dtype}, vLLM CPU backend")
        lines.append(f"  checkpoint format: {decision.checkpoint_format}")
        lines.append(f"  compute: {decision.compute}" + (f" [{decision.kernel}]" if decision.kernel else ""))
        lines.append(
            f"  pod: cpu {decision.cpu.cpus}, memory {decision.cpu.memory} (requests = limits),"
            f" VLLM_CPU_KVCACHE_SPACE={decision.cpu.kv_cache_space_gib}"
        )
        lines.append(f"  reason: {decision.reason}")
        lines.append(
            f"  vllm: --max-model-len={decision.capacity.max_model_len} --kv-cache-dtype={decision.kv_cache_dtype}"
        )
        for w in decision.warnings:
            lines.append(f"  warning: {w}")
    elif failure is not None:
        lines.append(f"{label}: does not fit")
        lines.append(f"  reason: {failure.reason}")
    print("\n".join(lines))
    return 0 if decision is not None else 1


def _parse_checkpoint(text: str) -> Checkpoint:
    scheme, _, uri = text.partition("=")
    fmt = default_checkpoint_format(scheme)
    return Checkpoint.calibrated(scheme.strip(), fmt, uri.strip() or f"(given: {scheme.strip()})")


def _request(args: argparse.Namespace, quant: CheckpointQuant | None, where: str) -> PlanRequest:
    if quant is not None:
        if args.checkpoint:
            raise CliError(
                "--checkpoint names calibrated checkpoints of a BF16 base model; this config is already "
                f"a pre-quantized checkpoint ({quant.label})"
            )
        checkpoints: tuple[Checkpoint, ...] = (Checkpoint.published(quant, where),)
    else:
        checkpoints = tuple(_parse_checkpoint(c) for c in args.checkpoint)
    return PlanRequest(
        precision=args.precision,
        kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=args.max_model_len,
        context_len=args.context,
        concurrency=args.concurrency,
        gpu_memory_utilization=args.gpu_memory_utilization,
        gpu_count=args.gpu_count,
        checkpoints=checkpoints,
        base_model=quant is None,
    )


# --- planning ----------------------------------------------------------------------------------


def _with_hypothetical_checkpoint(request: PlanRequest) -> tuple[PlanRequest, str | None]:
    """An explicit precision that needs a checkpoint is planned as if one had been calibrated."""
    p = request.precision
    if p == "auto" or p not in NEEDS_CHECKPOINT or any(c.precision == p for c in request.checkpoints):
        return request, None
    if not request.base_model:  # a pre-quantized checkpoint: precision is a constraint, decide() checks it
        return request, None
    ckpt = Checkpoint.calibrated(p, default_checkpoint_format(p), "")
    note = f"assumes a calibrated {p} checkpoint (none given with --checkpoint): create a QuantizedModel first"
    return replace(request, checkpoints=(*request.checkpoints, ckpt)), note


def _plan(arch: ModelArch, gpu: GpuFacts, request: PlanRequest, output: str) -> int:
    planned, note = _with_hypothetical_checkpoint(request)
    decision: Decision | None = None
    failure: PlanError | None = None
    try:
        decision = decide(arch, gpu, planned)
    except PlanError as err:
        if err.kind != "does-not-fit":
            raise
        failure = err
    if output == "json":
        doc = _json_doc(arch, gpu, request, decision, failure, note)
        print(json.dumps(doc, indent=2))
    else:
        print(_table(arch, gpu, request, plan_all(arch, gpu, request), decision, failure, note))
    return 0 if decision is not None else 1


def _json_doc(
    arch: ModelArch,
    gpu: GpuFacts,
    request: PlanRequest,
    decision: Decision | None,
    failure: PlanError | None,
    note: str | None,
) -> dict[str, Any]:
    if decision is not None:
        doc: dict[str, Any] = decision.as_dict()
        cap: CapacityEstimate | None = decision.capacity
    else:
        cap = failure.capacity if failure else None
        doc = {
            "precision": (failure.precision if failure else None) or request.precision,
            "kv_cache_dtype": cap.kv_cache_dtype if cap else None,
            "weights_gib": cap.weights_gib if cap else None,
            "kv_cache_gib": cap.kv_cache_gib if cap else None,
            "kv_bytes_per_token": cap.kv_bytes_per_token if cap else None,
            "kv_cache_tokens": cap.kv_cache_tokens if cap else None,
            "max_concurrency": cap.max_concurrency if cap else None,
            "tensor_parallel_size": cap.tensor_parallel_size if cap else None,
            "fits": False,
            "reason": failure.reason if failure else "",
            "quantization_flag": None,
            "checkpoint": None,
            "checkpoint_format": None,
            "compute": None,
            "kernel": None,
            "native": None,
            "warnings": [],
            "vllm_args": [],
        }
    if note:
        doc["warnings"].insert(0, note)
    doc["requested_precision"] = request.precision
    doc["gpu"] = {
        "name": short_name(gpu),
        "description": describe_gpu(gpu),
        "memory_mib": gpu.memory_mib,
        "count": request.gpu_count or gpu.count,
        "known": gpu.known,
    }
    doc["model"] = {"model_type": arch.model_type, "description": arch.describe()}
    published = next((c for c in request.checkpoints if c.origin == "published"), None)
    doc["checkpoint_quantization"] = published.quant.describe() if published else None
    doc["capacity"] = cap.to_dict() if cap else None
    return doc


# --- table -------------------------------------------------------------------------------------

_COLUMNS = ("precision", "support", "TP", "weights GiB", "KV dtype", "KV GiB", "KV tokens", "concurrency", "fits")


def _row_cells(row: PlanRow, chosen: Decision | None) -> tuple[str, ...]:
    cap = row.capacity
    mark = " <- chosen" if chosen is not None and row.fits and row.precision == chosen.precision else ""
    tp = str(cap.tensor_parallel_size) if cap else "-"
    return (
        row.precision + ("*" if row.needs_checkpoint and row.checkpoint is None else ""),
        row.support,
        tp,
        f"{cap.weights_gib:.1f}" if cap else "-",
        row.decision.kv_cache_dtype if row.decision else (cap.kv_cache_dtype if cap else "-"),
        f"{cap.kv_cache_gib:.1f}" if cap else "-",
        str(cap.kv_cache_tokens) if cap else "-",
        f"{cap.max_concurrency:g}x" if cap else "-",
        ("yes" if row.fits else "no") + mark,
    )


def _table(
    arch: ModelArch,
    gpu: GpuFacts,
    request: PlanRequest,
    rows: list[PlanRow],
    decision: Decision | None,
    failure: PlanError | None,
    note: str | None,
) -> str:
    count = request.gpu_count or gpu.count
    max_len = request.max_model_len or arch.max_position_embeddings
    ctx = request.context_len or max_len
    lines = [
        f"model: {arch.describe()}",
        f"gpu:   {short_name(gpu)} ({describe_gpu(gpu)}), {count} per node; "
        f"gpu_memory_utilization {request.gpu_memory_utilization}",
        f"request: max_model_len {max_len}, concurrency {request.concurrency} x {ctx} tokens, "
        f"kv cache dtype {request.kv_cache_dtype}",
    ]
    published = next((c for c in request.checkpoints if c.origin == "published"), None)
    if published is not None:
        lines.append(f"checkpoint: {published.quant.describe()} (pre-quantized: served as it is, no --quantization)")
    lines.append("")
    cells = [_COLUMNS, *(_row_cells(r, decision) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    for i, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(r.needs_checkpoint and r.checkpoint is None for r in rows):
        lines.append("* needs a calibrated checkpoint (QuantizedModel); planned as if one existed")
    lines.append("")
    label = "chosen (auto)" if request.precision == "auto" else f"requested ({request.precision})"
    if decision is not None:
        lines.append(f"{label}: {decision.precision}, KV {decision.kv_cache_dtype}, TP={decision.tensor_parallel_size}")
        lines.append(f"  checkpoint format: {decision.checkpoint_format}")
        lines.append(f"  compute: {decision.compute}" + (f" [{decision.kernel}]" if decision.kernel else ""))
        lines.append(f"  reason: {decision.reason}")
        lines.append(f"  vllm: {' '.join(decision.vllm_args)}")
        for w in ([note] if note else []) + list(decision.warnings):
            lines.append(f"  warning: {w}")
    elif failure is not None:
        lines.append(f"{label}: does not fit")
        lines.append(f"  reason: {failure.reason}")
    return "\n".join(lines)

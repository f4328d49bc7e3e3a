"""GPU calibration bench: every scheme x tool through `quantfleet calibrate`, against the tools' own APIs.

Why: the calibration program wraps llm-compressor and ModelOpt with coverage hooks,
progress, perplexity gates, checksums and atomic publication. This bench shows on a
real GPU that every scheme works with both tools where they apply, what each costs
(seconds, peak GPU memory, checkpoint bytes), what it does to quality (perplexity vs
BF16), how many calibration tokens the least-served expert gets with the all-expert
mode off (router only) and on, and how much slower quantfleet is than calling the
tool's API directly on the same model and data (goal <= 1.10x).

Steps: train a small Qwen3-MoE LM for --train-seconds on Python's stdlib sources
(offline), save it as BF16; warm up every (tool, scheme) once on a tiny model so
JIT/extension builds (ModelOpt compiles CUDA extensions on first FP8/MX use) are not
billed to either side; then for each pair run the direct API (tool call + save) and
`quantfleet.calibrate.run.calibrate` on identical calibration data.

    python bench/gpu_calibration.py --out "$OUT"                       # on the GPU
    python bench/gpu_calibration.py --train-seconds 5 --device cpu --tiny --out /tmp/b   # smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.api.schemes import supported_pairs
from quantfleet.calibrate.cli import _setup_logging
from quantfleet.calibrate.data import CalibrationData, build_calibration_data
from quantfleet.calibrate.run import load_model
from quantfleet.calibrate.stdlib_text import stdlib_documents
from quantfleet.calibrate.tiny import TinyMoESpec, build_model, build_tiny_moe, train_tokenizer
from quantfleet.calibrate.tools import adapter_for
from quantfleet.calibrate.tools.llmc import build_modifiers, calibration_dataset
from quantfleet.calibrate.tools.modelopt import build_config

log = logging.getLogger("quantfleet.bench")

GPU_SPEC = TinyMoESpec(
    vocab_size=4096,
    hidden_size=512,
    num_layers=4,
    num_heads=8,
    num_kv_heads=4,
    head_dim=64,
    num_experts=16,
    top_k=2,
    moe_intermediate_size=512,
    tokenizer_chars=4_000_000,
)
TINY_SPEC = TinyMoESpec(vocab_size=512, tokenizer_chars=500_000)


@dataclass
class Row:
    scheme: str
    tool: str
    algorithm: str | None
    ok: bool
    error: str | None = None
    seconds_total: float | None = None
    seconds_tool: float | None = None  # quantize + save + checksum + publish
    seconds_direct: float | None = None  # tool API + save, no quantfleet around it (best of direct_runs)
    direct_runs: list[float] | None = None
    quantfleet_runs: list[float] | None = None
    seconds_tool_routing_only: float | None = None  # quantfleet with the all-expert mode off
    overhead_routing_only: float | None = None
    overhead: float | None = None
    peak_gpu_bytes: int | None = None
    peak_gpu_bytes_direct: int | None = None
    checkpoint_bytes: int | None = None
    ppl_base: float | None = None
    ppl_quantized: float | None = None
    ppl_delta: float | None = None
    routed_min: int | None = None  # all-expert mode off: what the least-served expert gets from the router
    calibrated_min: int | None = None  # as calibrated (all-expert mode on)
    timings: dict[str, float] | None = None


def train(
    model_dir: Path,
    spec: TinyMoESpec,
    device: torch.device,
    seconds: float,
    seq_len: int,
    batch: int,
    train_chars: int = 12_000_000,
) -> dict[str, Any]:
    """Train a small MoE LM on stdlib text for `seconds`; save it (BF16) with its tokenizer in model_dir."""
    tok = train_tokenizer(spec.vocab_size, spec.tokenizer_chars, spec.chat_template)
    model = build_model(spec, tok)
    model.config.output_router_logits = True  # load-balancing loss keeps experts alive
    model.config.router_aux_loss_coef = 0.01
    model.to(device).train()
    docs = list(stdlib_documents(max_chars=train_chars))
    ids: list[int] = []
    for enc in tok(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tok.eos_token_id)
    data = torch.tensor(ids, dtype=torch.long)
    log.info(
        "train tokens=%d params=%.1fM device=%s seconds=%.0f",
        len(ids),
        sum(p.numel() for p in model.parameters()) / 1e6,
        device,
        seconds,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    start = time.monotonic()
    step, loss_v = 0, float("nan")
    use_amp = device.type == "cuda"
    while time.monotonic() - start < seconds:
        frac = (time.monotonic() - start) / seconds
        for g in opt.param_groups:
            g["lr"] = 2e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        off = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([data[o : o + seq_len] for o in off.tolist()]).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % 50 == 0 or step == 1:
            loss_v = float(out.loss)
            log.info("train step=%d loss=%.3f elapsed=%.0fs", step, loss_v, time.monotonic() - start)
    loss_v = float(out.loss)
    model.config.output_router_logits = False
    model.eval()
    build_tiny_moe(model_dir, spec, model=model.to("cpu"), tokenizer=tok)
    return {"steps": step, "final_loss": loss_v, "tokens": len(ids), "seconds": seconds}


def direct(
    tool: str,
    scheme: str,
    algorithm: str | None,
    model_dir: Path,
    data: CalibrationData,
    out_dir: Path,
    seq_len: int,
    device: torch.device,
    touch_forward: bool = False,
) -> tuple[float, int]:
    """The tool's own API on the same model and data: (seconds for quantize + save, peak GPU bytes)."""
    recipe = _recipe(tool, scheme, algorithm, model_dir, out_dir, len(data.calib), seq_len, True)
    model, tok = load_model(model_dir, device)
    _reset_peak(device)
    t = time.monotonic()
    if tool == "llm-compressor":
        from llmcompressor import oneshot

        oneshot(
            model=model,
            tokenizer=tok,
            recipe=build_modifiers(recipe, model.config.model_type),
            dataset=calibration_dataset(data.calib),
            num_calibration_samples=len(data.calib),
            max_seq_length=seq_len,
            shuffle_calibration_samples=False,
            moe_calibrate_all_experts=True,
        )
        model.save_pretrained(out_dir, save_compressed=True)
        tok.save_pretrained(out_dir)
    else:
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint

        def loop(m: Any) -> None:
            with torch.no_grad():
                for b in data.calib:
                    m(input_ids=torch.tensor([b], device=device))

        mtq.quantize(model, build_config(recipe, model, True), loop)
        if touch_forward:  # warm-up: the quantized forward JIT-builds ModelOpt's CUDA extensions
            with torch.no_grad():
                model(input_ids=torch.tensor([data.calib[0]], device=device))
        export_hf_checkpoint(model, export_dir=out_dir)
        tok.save_pretrained(out_dir)
    _sync(device)
    seconds = time.monotonic() - t
    peak = _peak(device)
    del model
    _free(device)
    return seconds, peak


def _recipe(
    tool: str,
    scheme: str,
    algorithm: str | None,
    model_dir: Path,
    out_dir: Path,
    n: int,
    seq_len: int,
    all_experts: bool,
) -> CalibrationRecipe:
    return CalibrationRecipe(
        source_uri=str(model_dir),
        scheme=scheme,
        algorithm=algorithm,
        tool=tool,  # type: ignore[arg-type]
        tool_version=adapter_for(tool).version(),
        calibrate_all_experts=all_experts,  # type: ignore[arg-type]
        num_samples=n,
        max_seq_length=seq_len,
        output_uri=str(out_dir),
        min_tokens_per_expert=0,
    )


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: torch.device) -> int:
    return int(torch.cuda.max_memory_allocated()) if device.type == "cuda" else 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def via_quantfleet(
    tool: str,
    scheme: str,
    algorithm: str | None,
    model_dir: Path,
    data: CalibrationData,
    out_dir: Path,
    seq_len: int,
    device: torch.device,
    all_experts: bool = True,
) -> Row:
    from quantfleet.calibrate.run import calibrate

    recipe = _recipe(tool, scheme, algorithm, model_dir, out_dir, len(data.calib), seq_len, all_experts)
    _reset_peak(device)
    outcome = calibrate(recipe, data_override=data)
    _sync(device)
    m = outcome.manifest
    t = outcome.timings
    cov = m.expert_coverage
    q = m.quality
    assert q is not None
    row = Row(
        scheme=scheme,
        tool=tool,
        algorithm=algorithm,
        ok=True,
        seconds_total=t["total"],
        seconds_tool=t["quantize"] + t["save"] + t["checksum"] + t["publish"],
        peak_gpu_bytes=_peak(device),
        checkpoint_bytes=m.bytes,
        ppl_base=q.perplexity_base,
        ppl_quantized=q.perplexity_quantized,
        ppl_delta=q.delta,
        routed_min=cov.routed_min if cov else None,
        calibrated_min=cov.calibrated_min if cov else None,
        timings=t,
    )
    _free(device)
    return row


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def table(rows: list[Row]) -> str:
    head = (
        "| scheme | tool | s (total) | s (tool+save) | s (direct API) | overhead | peak GPU mem | checkpoint | "
        "ppl BF16 | ppl quant | Δppl | min tok/expert off | min tok/expert on | overhead, all-expert off |"
    )
    lines = [
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        tool = r.tool + (f" ({r.algorithm})" if r.algorithm else "")
        if not r.ok:
            lines.append(f"| {r.scheme} | {tool} | FAILED: {(r.error or '')[:160]} |" + " |" * 11)
            continue
        off = "n/a (data-free)" if r.routed_min is None else str(r.routed_min)
        on = "n/a (data-free)" if r.calibrated_min is None else str(r.calibrated_min)
        lines.append(
            f"| {r.scheme} | {tool} | {r.seconds_total:.1f} | {r.seconds_tool:.2f} | "
            f"{'-' if r.seconds_direct is None else f'{r.seconds_direct:.2f}'} | "
            f"{'-' if r.overhead is None else f'{r.overhead:.2f}x'} | {fmt_bytes(r.peak_gpu_bytes)} | "
            f"{fmt_bytes(r.checkpoint_bytes)} | {r.ppl_base:.3f} | {r.ppl_quantized:.3f} | "
            f"{100 * (r.ppl_delta or 0):+.2f}% | "
            f"{off} | {on} | {'-' if r.overhead_routing_only is None else f'{r.overhead_routing_only:.2f}x'} |"
        )
    return "\n".join(lines)


def header(env: dict[str, Any], train_info: dict[str, Any], meta: dict[str, Any]) -> str:
    spec = meta["spec"]
    return (
        f"GPU: {env['device']} · date: {env['date_utc']} · torch {env['torch']} (CUDA {env['cuda']}) · "
        f"llmcompressor {env['llmcompressor']} · compressed-tensors {env['compressed-tensors']} · "
        f"nvidia-modelopt {env['nvidia-modelopt']} · transformers {env['transformers']}\n"
        f"model: Qwen3-MoE {spec['num_layers']} layers, hidden {spec['hidden_size']}, "
        f"{spec['num_experts']} experts top-{spec['top_k']}, vocab {spec['vocab_size']}; trained "
        f"{train_info['steps']} steps / {train_info['seconds']:.0f}s on stdlib text (final loss "
        f"{train_info['final_loss']:.3f}); calibration {meta['samples']} x {meta['seq_len']} tokens, "
        f"held-out {meta['heldout']} x {meta['seq_len']}\n"
    )


def merge(out: Path) -> int:
    """Combine results-*.json (one per tool group / process) into table.md."""
    rows: list[Row] = []
    first: dict[str, Any] | None = None
    for f in sorted(out.glob("results-*.json"), key=lambda p: ("modelopt" in p.name, p.name)):
        doc = json.loads(f.read_text())
        first = first or doc
        rows.extend(Row(**r) for r in doc["rows"])
    if first is None:
        print("no results-*.json in", out)
        return 1
    text = header(first["env"], first["train"], first["meta"]) + "\n" + table(rows) + "\n"
    (out / "table.md").write_text(text)
    print(text)
    return 0 if all(r.ok for r in rows) else 1


def warmup(pairs: list[tuple[str, str, str | None]], work: Path, device: torch.device) -> None:
    """Run each pair once on a tiny model so JIT / CUDA-extension builds are billed to neither side."""
    from transformers import AutoTokenizer

    warm_dir = work / "warm"
    if not (warm_dir / "config.json").exists():
        build_tiny_moe(warm_dir, TinyMoESpec(vocab_size=512, tokenizer_chars=200_000))
    wtok = AutoTokenizer.from_pretrained(warm_dir)
    wdata = build_calibration_data(wtok, "builtin:python-stdlib", 4, 64, seed=0, heldout_blocks=1)
    for tool, scheme, alg in pairs:
        if alg == "awq":
            continue  # minutes long, nothing to JIT that the other pairs did not
        tw = time.monotonic()
        try:
            direct(tool, scheme, alg, warm_dir, wdata, work / f"warm-{tool}-{scheme}-{alg}", 64, device, True)
            log.info("warmup tool=%s scheme=%s ok seconds=%.1f", tool, scheme, time.monotonic() - tw)
        except Exception as exc:  # the measured run reports the failure
            log.warning("warmup tool=%s scheme=%s failed: %s", tool, scheme, exc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/quantfleet-bench"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--train-seconds", type=float, default=180)
    p.add_argument("--samples", type=int, default=128, help="calibration samples")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--tiny", action="store_true", help="the few-MB test model instead of the bench model (smoke test)")
    p.add_argument("--only", default="", help="comma list of tool:scheme[:alg] to run (default: every supported pair)")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--budget-seconds", type=float, default=0, help="skip pairs not started by then (0: no limit)")
    p.add_argument("--tools", default="llm-compressor,modelopt", help="tool groups to run, in this order")
    p.add_argument("--reuse-model", action="store_true", help="reuse the model an earlier run trained in the work dir")
    p.add_argument("--merge", action="store_true", help="only merge results-*.json in --out into table.md")
    p.add_argument("--routing-only-overhead", action="store_true", help="also time quantfleet with all-expert mode off")
    p.add_argument("--single-qf", action="store_true", help="time the quantfleet path once per pair")
    a = p.parse_args(argv)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.merge:
        return merge(out)
    _setup_logging()
    for name in ("quantfleet.bench",):
        lg = logging.getLogger(name)
        lg.handlers[:] = logging.getLogger("quantfleet.calibrate").handlers
        lg.setLevel(logging.INFO)
        lg.propagate = False
    device = torch.device(a.device)
    os.environ["QUANTFLEET_DEVICE"] = str(device)
    os.environ.setdefault("QUANTFLEET_TERMINATION_LOG", str(out / "termination-log"))
    work = Path(os.environ.get("QUANTFLEET_BENCH_WORK", "/tmp/quantfleet-bench-work"))
    work.mkdir(parents=True, exist_ok=True)

    env = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "cuda": torch.version.cuda,
    }
    from importlib.metadata import version as v

    for dist in ("llmcompressor", "compressed-tensors", "nvidia-modelopt", "transformers"):
        env[dist] = v(dist)
    log.info("bench env %s", json.dumps(env))

    bench_start = time.monotonic()
    spec = TINY_SPEC if a.tiny else GPU_SPEC
    model_dir = work / "base"
    t = time.monotonic()
    if a.reuse_model and (model_dir / "bench-train.json").exists():
        train_info = json.loads((model_dir / "bench-train.json").read_text())
    else:
        train_info = train(model_dir, spec, device, a.train_seconds, min(a.seq_len, 512), a.train_batch)
        train_info["wall_seconds"] = time.monotonic() - t
        (model_dir / "bench-train.json").write_text(json.dumps(train_info))
    log.info("trained %s", json.dumps(train_info))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    data = build_calibration_data(
        tok, "builtin:python-stdlib", a.samples, a.seq_len, seed=0, heldout_blocks=max(8, a.samples // 8)
    )

    pairs = list(supported_pairs())
    if a.only:
        wanted = {tuple(x.split(":")) for x in a.only.split(",")}
        pairs = [pr for pr in pairs if (pr[0], pr[1]) in wanted or (pr[0], pr[1], pr[2]) in wanted]

    # ModelOpt patches transformers classes process-wide (e.g. attention for KV-cache quantizers), so
    # everything llm-compressor runs before the first mtq.quantize; a calibration Job runs one recipe per process.
    rows: list[Row] = []
    results_name = "results-" + "+".join(a.tools.split(",")) + ".json"
    meta = {"spec": asdict(spec), "samples": len(data.calib), "heldout": len(data.heldout), "seq_len": a.seq_len}

    def save() -> None:
        doc = {"env": env, "train": train_info, "meta": meta, "rows": [asdict(r) for r in rows]}
        (out / results_name).write_text(json.dumps(doc, indent=1))

    for tool_now in a.tools.split(","):
        tool_pairs = sorted((pr for pr in pairs if pr[0] == tool_now), key=lambda pr: pr[2] == "awq")  # AWQ last
        if not a.no_warmup:
            warmup(tool_pairs, work, device)
        for tool, scheme, alg in tool_pairs:
            tag = f"{tool}-{scheme}" + (f"-{alg}" if alg else "")
            if a.budget_seconds and time.monotonic() - bench_start > a.budget_seconds:
                rows.append(
                    Row(scheme=scheme, tool=tool, algorithm=alg, ok=False, error="skipped: bench time budget spent")
                )
                continue
            log.info("bench pair=%s", tag)
            try:
                secs_direct, peak_direct = direct(
                    tool, scheme, alg, model_dir, data, work / f"direct-{tag}", a.seq_len, device
                )
                row = via_quantfleet(tool, scheme, alg, model_dir, data, work / f"qf-{tag}", a.seq_len, device)
                if a.routing_only_overhead:  # all-expert mode off: the wrapper's own cost, like for like
                    off = via_quantfleet(
                        tool, scheme, alg, model_dir, data, work / f"qf-off-{tag}", a.seq_len, device, all_experts=False
                    )
                    row.seconds_tool_routing_only = off.seconds_tool
                if not a.single_qf and (row.seconds_tool or 0) < 15:  # cheap: twice, keep the faster (as for direct)
                    again = via_quantfleet(tool, scheme, alg, model_dir, data, work / f"qf2-{tag}", a.seq_len, device)
                    row.quantfleet_runs = [row.seconds_tool or 0, again.seconds_tool or 0]
                    if (again.seconds_tool or 0) < (row.seconds_tool or 0):
                        again.quantfleet_runs = row.quantfleet_runs
                        row = again
                runs = [secs_direct]
                if secs_direct < 60:  # direct again after quantfleet: order effects must not favour either side
                    runs.append(
                        direct(tool, scheme, alg, model_dir, data, work / f"direct2-{tag}", a.seq_len, device)[0]
                    )
                row.direct_runs = runs
                secs_direct = min(runs)
                row.seconds_direct = secs_direct
                row.peak_gpu_bytes_direct = peak_direct
                row.overhead = row.seconds_tool / secs_direct if row.seconds_tool and secs_direct else None
                if row.seconds_tool_routing_only:
                    row.overhead_routing_only = row.seconds_tool_routing_only / secs_direct
            except Exception as exc:
                traceback.print_exc()
                row = Row(
                    scheme=scheme,
                    tool=tool,
                    algorithm=alg,
                    ok=False,
                    error=f"{type(exc).__name__}: {exc}".replace("\n", " "),
                )
                _free(device)
            rows.append(row)
            log.info("bench result %s", json.dumps(asdict(row)))
            save()
    save()
    return merge(out)


if __name__ == "__main__":
    sys.exit(main())

"""The calibration program, end to end: recipe in, published checkpoint + manifest out.

    (tool llama-cpp: calibrate.gguf, llama.cpp's programs file to file)
    resolve source -> load model/tokenizer -> build data -> base perplexity
      -> quantize with the tool (coverage hooks + progress) -> coverage gate
      -> quantized perplexity + quality gate -> save to staging -> checksum
      -> manifest beside the checkpoint -> atomic publish -> manifest to termination log

Every failure the operator should show a human (starved experts, non-finite or too-high
perplexity, unsupported scheme, tool version mismatch) is a `CalibrationFailed` with a
message that says what to change; `cli.py` writes it to the termination log.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.api.manifest import ExpertCoverage, Quality, ResultManifest
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.api.schemes import TOOL_CHECKPOINT_FORMAT, UnsupportedRecipe, support
from quantfleet.calibrate.coverage import ExpertCounter, starved_message
from quantfleet.calibrate.data import CalibrationData, build_calibration_data
from quantfleet.calibrate.progress import Progress
from quantfleet.calibrate.publish import (
    MANIFEST_NAME,
    check_destination,
    checksum,
    compact_json,
    publish,
    staging_dir,
    write_termination_message,
)
from quantfleet.calibrate.quality import QualityGateFailed, check, perplexity
from quantfleet.calibrate.source import SourceError, resolve_source
from quantfleet.calibrate.tools import ToolAdapter, adapter_for

log = logging.getLogger("quantfleet.calibrate")


class CalibrationFailed(RuntimeError):
    """The calibration ran but its result must not be published; the message says why."""


@dataclass
class Outcome:
    """What one calibration produced, plus phase timings (seconds) for logs and the bench."""

    manifest: ResultManifest
    timings: dict[str, float] = field(default_factory=dict)


class PhaseClock:
    """Seconds per phase of one calibration (the :class:`Outcome`'s timings) and the time since it started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def lap(self, name: str, since: float) -> float:
        """Record phase ``name`` as the time since ``since``; return now, the start of the next phase."""
        now = time.monotonic()
        self.timings[name] = now - since
        return now

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def finish(manifest: ResultManifest, clock: PhaseClock, delta: float) -> Outcome:
    """The last step of every calibration program, once the checkpoint is published: report it and stop the clock."""
    write_termination_message(compact_json(manifest))
    clock.timings["total"] = clock.elapsed()
    log.info(
        "calibrate done checkpoint=%s bytes=%d sha256=%s seconds=%.1f ppl_delta=%+.4f",
        manifest.checkpoint_uri,
        manifest.bytes,
        manifest.sha256[:12],
        clock.timings["total"],
        delta,
    )
    return Outcome(manifest=manifest, timings=clock.timings)


def pick_device() -> Any:
    import torch

    wanted = os.environ.get("QUANTFLEET_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(path: Path, device: Any) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    # BF16 on accelerators (the serving dtype); float32 on CPU, where BF16 matmuls are emulated and slow.
    default = "bfloat16" if device.type != "cpu" else "float32"
    dtype = getattr(torch, os.environ.get("QUANTFLEET_DTYPE", default))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device)
    model.eval()
    return model, tokenizer


def check_tool_version(recipe: CalibrationRecipe, adapter: ToolAdapter) -> None:
    have = adapter.version()
    if recipe.tool_version != have:
        raise CalibrationFailed(
            f"recipe asks for {recipe.tool} {recipe.tool_version} but this image has {have}: "
            "the checkpoint would be labelled with a version that did not make it"
        )


def quantize_in_memory(
    recipe: CalibrationRecipe, model: Any, tokenizer: Any, data: CalibrationData, device: Any, adapter: ToolAdapter
) -> ExpertCoverage | None:
    """Run the tool on `model` with coverage hooks and progress; return coverage (None: dense or data-free)."""
    adapter.prepare(model)
    counter = ExpertCounter(model, should_count=adapter.counting_allowed)
    counter.install()
    layers = _decoder_layers(model)
    progress = Progress("calibration", max(1, len(layers)) * len(data.calib), "layer-samples")
    handles = [
        layer.register_forward_hook(_progress_hook(counter, progress, i, len(layers), len(data.calib)))
        for i, layer in enumerate(layers)
    ]
    log.info(
        "quantize tool=%s version=%s scheme=%s algorithm=%s moe_layers=%d all_experts=%s kv_cache_fp8=%s samples=%d",
        recipe.tool,
        adapter.version(),
        recipe.scheme,
        recipe.algorithm,
        len(counter.layers),
        str(recipe.calibrate_all_experts).lower(),
        str(recipe.kv_cache_fp8).lower(),
        len(data.calib),
    )
    counter.active = True
    try:
        adapter.quantize(model, tokenizer, data.calib, recipe, counter.is_moe, device, progress)
    finally:
        counter.active = False
        counter.remove()
        for h in handles:
            h.remove()
    if not counter.is_moe:
        return None
    if not counter.calibration_passes_seen():
        log.info(
            "coverage scheme=%s tool=%s: data-free scheme, experts need no calibration tokens",
            recipe.scheme,
            recipe.tool,
        )
        return None
    coverage = counter.summary(recipe.calibrate_all_experts, recipe.min_tokens_per_expert)
    for lc in coverage.layers:
        log.info(
            "coverage layer=%d calibrated_min=%d median=%.1f max=%d routed_min=%s starved=%s",
            lc.layer,
            lc.min,
            lc.median,
            lc.max,
            lc.routed_min,
            lc.starved,
        )
    return coverage


def _decoder_layers(model: Any) -> list[Any]:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    return list(layers) if layers is not None else []


def _progress_hook(counter: ExpertCounter, progress: Progress, i: int, n_layers: int, n_samples: int) -> Any:
    def hook(_m: Any, _inp: Any, _out: Any) -> None:
        if counter.active and counter.should_count():
            progress.step(layer=f"{i + 1}/{n_layers}")

    return hook


def calibrate(recipe: CalibrationRecipe, data_override: CalibrationData | None = None) -> Outcome:
    """Run the whole program for `recipe`. Raises CalibrationFailed (or UnsupportedRecipe) on a gated failure."""
    clock = PhaseClock()
    try:
        support(recipe.tool, recipe.scheme, recipe.algorithm)
    except UnsupportedRecipe as exc:
        raise CalibrationFailed(str(exc)) from exc
    try:
        check_destination(recipe.output_uri)
    except SourceError as exc:
        raise CalibrationFailed(str(exc)) from exc
    if recipe.tool == "llama-cpp":  # file to file with llama.cpp's own programs: no model in this process
        from quantfleet.calibrate.gguf import calibrate_gguf

        return calibrate_gguf(recipe, data_override)
    adapter = adapter_for(recipe.tool)
    check_tool_version(recipe, adapter)
    recipe_hash = recipe.content_hash()
    log.info(
        "calibrate start recipe_hash=%s source=%s output=%s", recipe_hash[:12], recipe.source_uri, recipe.output_uri
    )

    import torch

    torch.manual_seed(recipe.seed)
    device = pick_device()
    t = time.monotonic()
    src = resolve_source(recipe.source_uri)
    model, tokenizer = load_model(src, device)
    t = clock.lap("load", t)
    data = data_override or build_calibration_data(
        tokenizer, recipe.dataset, recipe.num_samples, recipe.max_seq_length, recipe.seed
    )
    t = clock.lap("data", t)
    ppl_base, eval_tokens = perplexity(model, data.heldout, device, phase="eval-base")
    log.info("perplexity model=base value=%.4f tokens=%d", ppl_base, eval_tokens)
    t = clock.lap("eval_base", t)

    coverage = quantize_in_memory(recipe, model, tokenizer, data, device, adapter)
    t = clock.lap("quantize", t)
    if coverage is not None:
        msg = starved_message(coverage, recipe.min_tokens_per_expert)
        if msg:
            raise CalibrationFailed(msg)

    ppl_q, _ = perplexity(model, data.heldout, device, phase="eval-quantized")
    log.info("perplexity model=quantized value=%.4f base=%.4f", ppl_q, ppl_base)
    t = clock.lap("eval_quantized", t)
    try:
        delta = check(ppl_base, ppl_q, recipe.max_perplexity_delta)
    except QualityGateFailed as exc:
        raise CalibrationFailed(str(exc)) from exc

    staged = staging_dir(recipe.output_uri)
    try:
        adapter.save(model, tokenizer, str(staged))
        t = clock.lap("save", t)
        digest, nbytes = checksum(staged)
        t = clock.lap("checksum", t)
        manifest = ResultManifest(
            recipe_hash=recipe_hash,
            checkpoint_uri=recipe.output_uri,
            format=TOOL_CHECKPOINT_FORMAT[recipe.tool],
            scheme=recipe.scheme,
            tool=recipe.tool,
            tool_version=adapter.version(),
            bytes=nbytes,
            sha256=digest,
            seconds=round(clock.elapsed(), 3),
            expert_coverage=coverage,
            quality=Quality(perplexity_base=ppl_base, perplexity_quantized=ppl_q, delta=delta, eval_tokens=eval_tokens),
        )
        (staged / MANIFEST_NAME).write_text(manifest.model_dump_json(by_alias=True, exclude_none=True, indent=2))
        publish(staged, recipe.output_uri)
        t = clock.lap("publish", t)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return finish(manifest, clock, delta)

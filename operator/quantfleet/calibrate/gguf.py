"""The llama-cpp tool: a GGUF checkpoint made by llama.cpp's own programs, file to file.

    resolve source -> calibration + held-out text (the recipe's dataset, the model's tokenizer)
      -> convert_hf_to_gguf.py (F16 GGUF) -> llama-imatrix over the calibration text (k-quants only)
      -> llama-quantize <type> -> llama-perplexity F16 vs quantized on the held-out text + quality gate
      -> <out>/model.gguf + the same manifest as the other tools (format "gguf") -> atomic publish

Unlike llm-compressor and ModelOpt nothing is quantized in this process's memory: the model is never loaded into
torch here (the converter streams tensors), so there is no in-memory adapter (calibrate.tools). The programs come
from one llama.cpp build: QUANTFLEET_LLAMA_CPP names its directory (bin/ with the four programs, src/ with
convert_hf_to_gguf.py and the gguf-py it was released with, quantfleet-llama-cpp.json saying which llama.cpp it
is); the calibration image has it at /opt/llama.cpp, quantfleet_dev.llama_cpp builds it under the cache.

Q8_0 gets no importance matrix: it is round-to-nearest per block of 32 weights with one scale and nothing to
choose, and ggml's quantize_q8_0 ignores the imatrix ("(void)quant_weights; // not used", ggml-quants.c). The
k-quant mixes choose per-block scales and mins, and the imatrix (mean squared activations per input column over
the calibration text) weights that choice.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantfleet.api.gguf import GGUF_FILE, IMATRIX_TYPES, SCHEME_GGUF_TYPE, as_gguf
from quantfleet.api.manifest import Quality, ResultManifest
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.api.schemes import TOOL_CHECKPOINT_FORMAT
from quantfleet.calibrate.data import CalibrationData, build_calibration_data
from quantfleet.calibrate.publish import (
    MANIFEST_NAME,
    checksum,
    publish,
    staging_dir,
)
from quantfleet.calibrate.quality import QualityGateFailed, check
from quantfleet.calibrate.source import resolve_source

if TYPE_CHECKING:
    from quantfleet.calibrate.run import Outcome

log = logging.getLogger("quantfleet.calibrate")

LLAMA_CPP_ENV = "QUANTFLEET_LLAMA_CPP"
DEFAULT_LLAMA_CPP_DIR = "/opt/llama.cpp"
BUILD_RECORD = "quantfleet-llama-cpp.json"
CONVERT_OUTTYPE = "f16"


class LlamaCppFailed(RuntimeError):
    """A llama.cpp program failed; the message carries its last output lines."""


@dataclass(frozen=True)
class LlamaCpp:
    """One llama.cpp build: where its programs and its converter are, and which llama.cpp it is."""

    root: Path

    @classmethod
    def from_env(cls) -> LlamaCpp:
        return cls(Path(os.environ.get(LLAMA_CPP_ENV) or DEFAULT_LLAMA_CPP_DIR))

    def program(self, name: str) -> Path:
        path = self.root / "bin" / name
        if not path.is_file():
            raise LlamaCppFailed(f"{path} not found: set {LLAMA_CPP_ENV} to a llama.cpp build (bin/, src/)")
        return path

    @property
    def converter(self) -> Path:
        return self.root / "src" / "convert_hf_to_gguf.py"

    def version(self) -> str:
        """The llama.cpp commit the build was made from (its build record)."""
        record = self.root / BUILD_RECORD
        if not record.is_file():
            raise LlamaCppFailed(f"{record} not found: not a llama.cpp build made for quantfleet")
        return str(json.loads(record.read_text())["llama_cpp_commit"])


# Runs convert_hf_to_gguf.py as its own __main__, with one addition: a tokenizer whose BPE pre-tokenizer llama.cpp
# does not know by hash (it hashes the token ids of a probe string, so any newly trained vocabulary is unknown) but
# whose tokenizer.json declares exactly GPT-2's byte-level pre-tokenization is written as pre-tokenizer "gpt-2",
# which is what it is. Anything else still fails as upstream does.
CONVERT_LAUNCHER = r"""
import json, logging, runpy, sys
from pathlib import Path
src = Path(sys.argv[1])
sys.argv = [str(src / "convert_hf_to_gguf.py"), *sys.argv[2:]]
sys.path[:0] = [str(src), str(src / "gguf-py")]
import conversion.base as base
_orig = base.TextModel.get_vocab_base_pre
GPT2 = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}

def get_vocab_base_pre(self, tokenizer):
    try:
        return _orig(self, tokenizer)
    except NotImplementedError:
        path = Path(self.dir_model) / "tokenizer.json"
        pre = json.loads(path.read_text()).get("pre_tokenizer") if path.is_file() else None
        if isinstance(pre, dict) and all(pre.get(k) == v for k, v in GPT2.items()):
            logging.getLogger("quantfleet").warning("unknown BPE vocabulary with GPT-2 byte-level pre-tokenizer: gpt-2")
            return "gpt-2"
        raise

base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(sys.argv[0], run_name="__main__")
"""

_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+|nan|inf)")
_CHUNKS = re.compile(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+)")


def _run(cmd: Sequence[object], step: str, env: dict[str, str] | None = None) -> str:
    shown = " ".join("<convert launcher>" if a is CONVERT_LAUNCHER else str(a) for a in cmd)
    log.info("llama.cpp step=%s cmd=%s", step, shown)
    t0 = time.monotonic()
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise LlamaCppFailed(f"{step} failed (exit {proc.returncode}):\n{tail}")
    log.info("llama.cpp step=%s seconds=%.1f", step, time.monotonic() - t0)
    return out


# imatrix and perplexity run on the CPU backend's reference layouts: no repacking, no AMX. ggml's AMX matmul
# segfaults on quantized GGUFs on AMX-INT8 CPUs at the pinned release (upstream issue 20824), and measuring with
# the plain kernels keeps the numbers independent of the machine's ISA. Only speed changes.
NO_REPACK = "--no-repack"


def _threads() -> list[str]:
    threads = os.environ.get("QUANTFLEET_THREADS")
    return ["-t", threads] if threads else []


def convert(tools: LlamaCpp, model_dir: Path, out: Path, outtype: str = CONVERT_OUTTYPE) -> Path:
    """The HF checkpoint as one GGUF file (convert_hf_to_gguf.py, in this interpreter: torch + transformers)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the launcher puts the build's own gguf-py first; nothing else of ours is needed
    cmd = [sys.executable, "-c", CONVERT_LAUNCHER, tools.root / "src", model_dir, "--outfile", out]
    _run([*cmd, "--outtype", outtype], "convert", env=env)
    return out


def imatrix(tools: LlamaCpp, model: Path, text: Path, out: Path, ctx: int) -> Path:
    """llama-imatrix: mean squared activations per weight column over `text`, in `ctx`-token chunks."""
    _run(
        [
            tools.program("llama-imatrix"),
            "-m",
            model,
            "-f",
            text,
            "-o",
            out,
            "-c",
            ctx,
            "--no-ppl",
            NO_REPACK,
            *_threads(),
        ],
        "imatrix",
    )
    return out


def quantize(tools: LlamaCpp, src: Path, out: Path, gguf_type: str, imatrix_file: Path | None) -> Path:
    extra: list[str | Path] = ["--imatrix", imatrix_file] if imatrix_file else []
    threads = os.environ.get("QUANTFLEET_THREADS")
    _run([tools.program("llama-quantize"), *extra, src, out, gguf_type, *([threads] if threads else [])], "quantize")
    return out


@dataclass(frozen=True)
class Perplexity:
    value: float
    tokens: int
    chunks: int
    ctx: int


# llama.cpp logs through a background thread and never flushes it at exit (the logger is leaked on purpose,
# common/log.cpp, upstream issue 22142), so llama-perplexity sometimes exits 0 without its last lines, the "Final
# estimate" among them (3 runs in 40 here, on a busy 2-core machine). Such a run is repeated.
PERPLEXITY_ATTEMPTS = 3


def perplexity(tools: LlamaCpp, model: Path, text: Path, ctx: int, phase: str) -> Perplexity:
    """llama-perplexity over `text` in `ctx`-token chunks (each chunk scores its second half: ctx - 1 - ctx/2)."""
    cmd = [tools.program("llama-perplexity"), "-m", model, "-f", text, "-c", ctx, NO_REPACK, *_threads()]
    out = ""
    for attempt in range(1, PERPLEXITY_ATTEMPTS + 1):
        out = _run(cmd, phase)
        m, c = _PPL.search(out), _CHUNKS.search(out)
        if m is not None and c is not None:
            chunks, n_ctx = int(c.group(1)), int(c.group(2))
            return Perplexity(float(m.group(1)), chunks * (n_ctx - 1 - n_ctx // 2), chunks, n_ctx)
        log.warning("llama.cpp step=%s attempt=%d: no final estimate in the output (log lost at exit)", phase, attempt)
    raise LlamaCppFailed(f"{phase}: no perplexity in llama-perplexity's output:\n{out[-2000:]}")


def write_text(tokenizer: Any, blocks: list[list[int]], path: Path) -> Path:
    """Token blocks back to text (llama.cpp tokenizes it again with the GGUF's copy of the same vocabulary)."""
    path.write_text("".join(tokenizer.decode(b, skip_special_tokens=True) for b in blocks), encoding="utf-8")
    return path


def calibrate_gguf(recipe: CalibrationRecipe, data_override: CalibrationData | None = None) -> Outcome:
    """calibrate.run.calibrate for tool llama-cpp. Raises CalibrationFailed on a gated or failed step."""
    from transformers import AutoTokenizer

    from quantfleet.calibrate.run import CalibrationFailed, PhaseClock, finish

    clock = PhaseClock()

    tools = LlamaCpp.from_env()
    have = tools.version()
    if recipe.tool_version != have:
        raise CalibrationFailed(
            f"recipe asks for llama-cpp {recipe.tool_version} but this image has {have}: "
            "the checkpoint would be labelled with a version that did not make it"
        )
    scheme = as_gguf(recipe.scheme)
    if scheme is None:
        raise CalibrationFailed(f"llama-cpp makes the GGUF schemes only, not {recipe.scheme}")
    gguf_type = SCHEME_GGUF_TYPE[scheme]
    recipe_hash = recipe.content_hash()
    log.info(
        "calibrate start recipe_hash=%s source=%s output=%s tool=llama-cpp version=%s type=%s",
        recipe_hash[:12],
        recipe.source_uri,
        recipe.output_uri,
        have,
        gguf_type,
    )
    t = time.monotonic()
    src = resolve_source(recipe.source_uri)
    tokenizer = AutoTokenizer.from_pretrained(src)
    data = data_override or build_calibration_data(
        tokenizer, recipe.dataset, recipe.num_samples, recipe.max_seq_length, recipe.seed
    )
    t = clock.lap("data", t)
    staged = staging_dir(recipe.output_uri)
    work = Path(tempfile.mkdtemp(prefix=".gguf-work-", dir=staged.parent))
    try:
        base = convert(tools, src, work / "model-f16.gguf")
        t = clock.lap("convert", t)
        calib_txt = write_text(tokenizer, data.calib, work / "calibration.txt")
        heldout_txt = write_text(tokenizer, data.heldout, work / "heldout.txt")
        imat = None
        if gguf_type in IMATRIX_TYPES:
            imat = imatrix(tools, base, calib_txt, work / "imatrix.gguf", recipe.max_seq_length)
            t = clock.lap("imatrix", t)
        quantized = quantize(tools, base, staged / GGUF_FILE, gguf_type, imat)
        t = clock.lap("quantize", t)
        ppl_base = perplexity(tools, base, heldout_txt, recipe.max_seq_length, "eval-base")
        log.info("perplexity model=base type=F16 value=%.4f tokens=%d", ppl_base.value, ppl_base.tokens)
        ppl_q = perplexity(tools, quantized, heldout_txt, recipe.max_seq_length, "eval-quantized")
        log.info("perplexity model=quantized type=%s value=%.4f base=%.4f", gguf_type, ppl_q.value, ppl_base.value)
        t = clock.lap("eval", t)
        try:
            delta = check(ppl_base.value, ppl_q.value, recipe.max_perplexity_delta)
        except QualityGateFailed as exc:
            raise CalibrationFailed(str(exc)) from exc
        digest, nbytes = checksum(staged)
        manifest = ResultManifest(
            recipe_hash=recipe_hash,
            checkpoint_uri=recipe.output_uri,
            format=TOOL_CHECKPOINT_FORMAT[recipe.tool],
            scheme=recipe.scheme,
            tool=recipe.tool,
            tool_version=have,
            bytes=nbytes,
            sha256=digest,
            seconds=round(clock.elapsed(), 3),
            quality=Quality(
                perplexity_base=ppl_base.value,
                perplexity_quantized=ppl_q.value,
                delta=delta,
                eval_tokens=ppl_base.tokens,
            ),
        )
        (staged / MANIFEST_NAME).write_text(manifest.model_dump_json(by_alias=True, exclude_none=True, indent=2))
        publish(staged, recipe.output_uri)
        clock.lap("publish", t)
    except LlamaCppFailed as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise CalibrationFailed(str(exc)) from exc
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish(manifest, clock, delta)

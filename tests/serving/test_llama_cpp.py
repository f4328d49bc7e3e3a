"""calibrate (tool llama-cpp) -> model.gguf -> the rendered llama-server answers: the GGUF chain, run for real on CPU.

For each scheme: a tiny Llama built and trained here for a few minutes (quantfleet_dev.llama_cpp.build_tiny_llama: every
weight row a multiple of 256, so the k-quants are used as designed), the project's own `quantfleet calibrate` with
a gguf recipe (in a subprocess of the main venv: convert_hf_to_gguf.py -> llama-imatrix for the k-quants ->
llama-quantize -> llama-perplexity F16 vs quantized), then llama.cpp's own server started with exactly the command
and args quantfleet.render.llamacpp produces. Then: /health is 200, /v1/models names the alias, one completion and
one chat completion answer, /metrics has the names quantfleet.api.llamacpp_flags declares, and each of the two
slots got max_model_len tokens of context (ctx-size = max_model_len x parallel).

What is mapped from the pod to this machine, and nothing else (quantfleet_dev.llama_cpp.local_command): the image's
/app/llama-server -> the build under the cache; --host 0.0.0.0 -> 127.0.0.1; --port 8000 -> a free port. The model
path is passed to the renderer as this machine's path (the pod's would be /models/<path>/model.gguf). On a CPU with
AMX-INT8 (this one) the args carry --no-repack, as they must for such a CPU pool: without it llama-server segfaults
in ggml_backend_amx_mul_mat on the first quantized matmul (upstream llama.cpp issue 20824).

The llama.cpp build comes from a session fixture (`make llama-cpp` builds it first; without it the fixture builds it,
~25 min on 2 cores). Timings and perplexities are printed at the end of the run ("llama.cpp chain").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantfleet import versions
from quantfleet.api import llamacpp_flags as lf
from quantfleet.api.gguf import GGUF_FILE, SCHEME_GGUF_TYPE
from quantfleet.api.manifest import parse_manifest
from quantfleet.api.recipe import CalibrationRecipe, Scheme
from quantfleet.render.llamacpp import llamacpp_args, llamacpp_command
from quantfleet.render.vllm import CpuRollout, ModelLocation, PoolRollout, ServiceInput
from quantfleet_dev import llama_cpp
from quantfleet_dev.testing import free_port, run_calibrate_cli

pytestmark = [pytest.mark.calibration, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator"
SECTION = "llama.cpp chain (calibrate tool llama-cpp -> render.llamacpp -> llama-server)"
MAX_MODEL_LEN = 512
PARALLEL = 2
TINY = "tiny-llama-gguf-r2"  # bump the suffix when build_tiny_llama changes
# As a CPU pool of such nodes would be rendered: ggml's AMX matmul segfaults on quantized GGUFs (api.llamacpp_flags).
AMX_INT8 = "amx_int8" in Path("/proc/cpuinfo").read_text()


@pytest.fixture(scope="session")
def llama_cpp_root() -> Path:
    llama_cpp.ensure(log=lambda m: print(m, file=sys.stderr))
    return llama_cpp.build_dir()


@pytest.fixture(scope="session")
def tiny_llama(llama_cpp_root: Path) -> Path:
    pytest.importorskip("transformers")
    return llama_cpp.build_tiny_llama(llama_cpp.cache_root() / TINY, sys.executable, log=lambda m: None)


def run_calibrate(
    source: Path, out: Path, scheme: Scheme, root: Path, **overrides: Any
) -> tuple[subprocess.CompletedProcess[str], str, float]:
    """`quantfleet calibrate` with tool llama-cpp; returns (the process, its termination message, wall seconds)."""
    fields: dict[str, Any] = {
        "source_uri": str(source),
        "scheme": scheme,
        "tool": "llama-cpp",
        "tool_version": versions.llama_cpp_tool_version(),
        "num_samples": 64,
        "max_seq_length": 128,
        "output_uri": str(out),
        "max_perplexity_delta": 0.5,
    }
    recipe = CalibrationRecipe(**(fields | overrides))
    term = out.parent / f"{out.name}.term"
    env = {
        **os.environ,
        "PYTHONPATH": str(OPERATOR),
        "QUANTFLEET_TERMINATION_LOG": str(term),
        "QUANTFLEET_LLAMA_CPP": str(root),
    }
    proc, seconds = run_calibrate_cli(recipe, env, timeout=1200)
    return proc, term.read_text() if term.is_file() else "", seconds


def calibrate(source: Path, out: Path, scheme: Scheme, root: Path) -> tuple[dict[str, Any], float]:
    """A successful `quantfleet calibrate`: (the termination-log manifest, wall seconds)."""
    proc, term, seconds = run_calibrate(source, out, scheme, root)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return json.loads(term), seconds


def _svc() -> ServiceInput:
    return ServiceInput(
        name="tiny-gguf",
        namespace="serving",
        uid="u-1",
        served_model_name="tiny",
        max_model_len=MAX_MODEL_LEN,
        gpu_memory_utilization=0.9,
        image=versions.llama_cpp_image(cuda=True),
        cpu_image=versions.llama_cpp_image(cuda=False),
    )


def _roll(ckpt: Path) -> PoolRollout:
    return PoolRollout(
        pool="cpu",
        node_selector={},
        gpu_resource="",
        tensor_parallel_size=1,
        kv_cache_dtype="auto",
        quantization=None,
        model=ModelLocation(str(ckpt)),
        replicas=1,
        quantized_checkpoint=True,
        cpu=CpuRollout(kv_cache_space_gib=1, cpus="2", memory="2Gi"),
    )


@pytest.mark.parametrize("scheme", ["gguf-q8_0", "gguf-q4_k_m", "gguf-q5_k_m"])
def test_gguf_chain(
    scheme: Scheme,
    tiny_llama: Path,
    llama_cpp_root: Path,
    tmp_path: Path,
    report: Callable[[str, str], None],
) -> None:
    out = tmp_path / f"tiny-{scheme}"
    manifest_json, calib_s = calibrate(tiny_llama, out, scheme, llama_cpp_root)
    manifest = parse_manifest(json.dumps(manifest_json))
    assert manifest.format == "gguf" and manifest.tool == "llama-cpp" and manifest.scheme == scheme
    assert manifest.quality is not None and manifest.quality.eval_tokens > 0
    gguf = out / GGUF_FILE
    assert gguf.is_file() and gguf.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in out.iterdir()) == [GGUF_FILE, "quantfleet-manifest.json"]

    svc, roll = _svc(), _roll(out)
    command = llamacpp_command()
    args = llamacpp_args(
        svc, roll, gguf_path=str(gguf), parallel=PARALLEL, n_gpu_layers=0, threads=2, no_repack=AMX_INT8
    )
    assert lf.problems_in_args(args) == []
    port = free_port()
    with llama_cpp.start_server(command, args, port, tmp_path / "llama-server.log") as s:
        status, body = s.get(lf.MODELS_PATH)
        assert status == 200, body
        models = json.loads(body)
        assert [m["id"] for m in models["data"]] == ["tiny"], models

        t0 = time.monotonic()
        status, comp = s.post(
            lf.COMPLETIONS_PATH, {"model": "tiny", "prompt": "import os\n", "max_tokens": 16, "temperature": 0}
        )
        completion_s = time.monotonic() - t0
        assert status == 200, comp
        assert isinstance(comp["choices"][0]["text"], str) and comp["usage"]["completion_tokens"] > 0, comp

        status, chat = s.post(
            lf.CHAT_COMPLETIONS_PATH,
            {"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": "def main():"}]},
        )
        assert status == 200, chat
        assert chat["choices"][0]["message"]["role"] == "assistant", chat

        status, metrics = s.get(lf.METRICS_PATH)
        assert status == 200, metrics
        names = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if not line.startswith("#")}
        assert names >= lf.METRIC_NAMES, sorted(lf.METRIC_NAMES - names)
        log = s.log()
        assert f"n_slots = {PARALLEL}, n_ctx_slot = {MAX_MODEL_LEN}" in log, log[-3000:]
        startup = s.startup_seconds

    q = manifest.quality
    report(
        SECTION,
        f"{scheme} ({SCHEME_GGUF_TYPE[scheme]}): {manifest.bytes / 1e6:.2f} MB, "
        f"perplexity F16 {q.perplexity_base:.4f} -> {q.perplexity_quantized:.4f} ({q.delta:+.2%}, "
        f"{q.eval_tokens} tokens); calibrate {calib_s:.1f} s, "
        f"llama-server /health in {startup:.1f} s, 16-token completion {completion_s:.2f} s",
    )


def test_gguf_quality_gate_and_tool_version(tiny_llama: Path, llama_cpp_root: Path, tmp_path: Path) -> None:
    """A breached max_perplexity_delta and a tool_version the build is not: both fail saying why, publish nothing."""
    out = tmp_path / "gated"
    proc, term, _ = run_calibrate(tiny_llama, out, "gguf-q4_k_m", llama_cpp_root, max_perplexity_delta=-0.5)
    assert proc.returncode == 1 and "above max_perplexity_delta" in term, term
    assert not out.exists() and not list(tmp_path.glob(".gguf-work-*")) and not list(tmp_path.glob(".gated.partial-*"))

    proc, term, _ = run_calibrate(tiny_llama, out, "gguf-q8_0", llama_cpp_root, tool_version="deadbeef")
    assert proc.returncode == 1 and "recipe asks for llama-cpp deadbeef but this image has 0c1e57098" in term, term
    assert not out.exists()

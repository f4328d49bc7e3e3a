"""llama.cpp's own tools, built once from the pinned source: GGUF quantization and serving without a GPU.

Development tooling (never shipped in the operator image; images/calibrate/Dockerfile builds the same binaries from
the same pin for the calibration image). The source is the llama.cpp that the PyPI sdist of llama-cpp-python vendors
(versions.toml [llama-cpp]: the sdist's URL and sha256; the download is refused when the hash differs). Only the
four programs quantfleet runs are built (llama-server, llama-quantize, llama-imatrix, llama-perplexity): CPU
backend, Release, static, no HTTPS/curl, no web UI download. They land in ``~/.cache/quantfleet/llama-cpp-<hash>/bin``,
keyed by a hash of the pins and the build options, built once under a lock, marked done by a stamp file recording
the build time. The vendored source stays next to them (``src/``): convert_hf_to_gguf.py and its gguf-py, and
common/arg.cpp, which the flag contract test reads. docs/llama-cpp.md has the recipe and the measurements.

Only the standard library here (and quantfleet.versions): tests running in the main project venv import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantfleet import versions

Log = Callable[[str], None]

VERSION = versions.get("llama-cpp.version")
SDIST_URL = versions.get("llama-cpp.sdist_url")
SDIST_SHA256 = versions.get("llama-cpp.sha256")
COMMIT = versions.get("llama-cpp.commit")
SDIST_NAME = SDIST_URL.rsplit("/", 1)[-1]
# the sdist's top directory and the llama.cpp inside it
SDIST_ROOT = SDIST_NAME.removesuffix(".tar.gz")
VENDOR = "vendor/llama.cpp"

TARGETS = ("llama-server", "llama-quantize", "llama-imatrix", "llama-perplexity")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    # -O1, not Release's -O3: this build runs only the project's tiny models in the tests, and the cold compile is
    # what CI on a fresh 2-core machine pays (docs/llama-cpp.md has both timings); the calibration image keeps -O3
    "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG",
    "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG",
    "-DBUILD_SHARED_LIBS=OFF",  # static binaries: bin/ can be copied anywhere
    "-DGGML_NATIVE=ON",  # this machine's ISA: the cache is per machine (the image builds GGML_NATIVE=OFF)
    "-DLLAMA_OPENSSL=OFF",  # no HTTPS model downloads: models are local files
    "-DLLAMA_CURL=OFF",  # older name of the same (ignored by this release)
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # the server's web UI is not fetched from the hub at build time
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
# Bump when the build steps change in a way that needs a fresh build.
BUILD_REVISION = 1
STAMP = "quantfleet-llama-cpp.json"
ENV_ROOT = "QUANTFLEET_LLAMA_CPP"  # where quantfleet.calibrate.gguf finds a build: bin/, src/ and the stamp


class LlamaCppError(RuntimeError):
    """The sdist could not be fetched or verified, or the build failed."""


def cache_root() -> Path:
    return Path(os.environ.get("QUANTFLEET_CACHE") or Path.home() / ".cache" / "quantfleet").expanduser()


def build_hash() -> str:
    spec = {
        "sdist": SDIST_URL,
        "sha256": SDIST_SHA256,
        "targets": TARGETS,
        "cmake": CMAKE_OPTIONS,
        "revision": BUILD_REVISION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def build_dir() -> Path:
    return cache_root() / f"llama-cpp-{build_hash()}"


def bin_dir() -> Path:
    return build_dir() / "bin"


def source_dir() -> Path:
    """The vendored llama.cpp source (convert_hf_to_gguf.py, gguf-py/, common/arg.cpp)."""
    return build_dir() / "src"


def ready() -> bool:
    return (build_dir() / STAMP).is_file()


def info() -> dict[str, Any]:
    """The stamp of a finished build (timings, sizes, pins); {} when not built."""
    stamp = build_dir() / STAMP
    return json.loads(stamp.read_text()) if stamp.is_file() else {}


def jobs() -> int:
    """Parallel compile jobs: QUANTFLEET_BUILD_JOBS, else 2 (the project's machines are shared 2-core boxes)."""
    return int(os.environ.get("QUANTFLEET_BUILD_JOBS") or 2)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist(log: Log = print) -> Path:
    """The pinned sdist in the cache (downloaded once), its sha256 checked on every call."""
    dest = cache_root() / "sdists" / SDIST_NAME
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        log(f"llama.cpp: downloading {SDIST_URL}")
        with urllib.request.urlopen(SDIST_URL, timeout=300) as resp, part.open("wb") as fh:
            shutil.copyfileobj(resp, fh)
        part.replace(dest)
    got = sha256_file(dest)
    if got != SDIST_SHA256:
        dest.unlink()
        raise LlamaCppError(f"{SDIST_NAME}: sha256 {got}, versions.toml pins {SDIST_SHA256}; removed, not used")
    return dest


def extract_vendor(sdist: Path, dest: Path) -> Path:
    """vendor/llama.cpp of the sdist into `dest` (tarfile's data filter: no links out, no absolute paths)."""
    prefix = f"{SDIST_ROOT}/{VENDOR}/"
    with tarfile.open(sdist) as tf:
        members = []
        for m in tf.getmembers():
            if m.name.startswith(prefix):
                m.name = m.name[len(prefix) :]
                members.append(m)
        if not members:
            raise LlamaCppError(f"{sdist.name} has no {VENDOR}/")
        tf.extractall(dest, members=members, filter="data")
    return dest


def _run(cmd: Sequence[str | os.PathLike[str]], build_log: Path, step: str, cwd: Path | None = None) -> None:
    with build_log.open("a") as fh:
        fh.write(f"\n$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.run(list(map(str, cmd)), stdout=fh, stderr=subprocess.STDOUT, cwd=cwd)
    if proc.returncode != 0:
        lines = build_log.read_text(errors="replace").splitlines()[-40:]
        raise LlamaCppError(f"llama.cpp: {step} failed (exit {proc.returncode}); {build_log}:\n" + "\n".join(lines))


def _build(root: Path, log: Log, build_log: Path) -> dict[str, Any]:
    times: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]) -> None:
        log(f"llama.cpp: {name} ...")
        t0 = time.monotonic()
        fn()
        times[name] = round(time.monotonic() - t0, 1)
        log(f"llama.cpp: {name} took {times[name]} s")

    sdist: list[Path] = []
    timed("download", lambda: sdist.append(fetch_sdist(log)))
    src = root / "src"
    timed("extract", lambda: extract_vendor(sdist[0], src))
    build = root / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    timed("configure", lambda: _run(["cmake", "-S", src, "-B", build, *generator, *CMAKE_OPTIONS], build_log, "cmake"))
    timed(
        f"compile ({jobs()} jobs)",
        lambda: _run(
            ["cmake", "--build", build, "--config", "Release", "-j", str(jobs()), "--target", *TARGETS],
            build_log,
            "cmake --build",
        ),
    )
    out = root / "bin"
    out.mkdir()
    for t in TARGETS:
        shutil.copy2(build / "bin" / t, out / t)
    shutil.rmtree(build)  # objects are not needed again: the stamp keeps the build from rerunning
    return {
        "hash": build_hash(),
        "llama_cpp_python": VERSION,
        "llama_cpp_commit": COMMIT,
        "sdist_sha256": SDIST_SHA256,
        "cmake": list(CMAKE_OPTIONS),
        "targets": list(TARGETS),
        "jobs": jobs(),
        "cpus": os.cpu_count(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": times,
        "seconds_total": round(sum(times.values()), 1),
        "bin_bytes": sum((out / t).stat().st_size for t in TARGETS),
    }


def ensure(log: Log = print) -> Path:
    """Build the four binaries once (idempotent, safe across processes) and return their directory.

    A directory without the stamp is a half-finished build (killed or failed) and is rebuilt from scratch.
    """
    root = build_dir()
    if (root / STAMP).is_file():
        return root / "bin"
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if (root / STAMP).is_file():
            return root / "bin"
        if root.exists():
            log(f"llama.cpp: {root} has no stamp (half-built); removing it")
            shutil.rmtree(root)
        root.mkdir()
        build_log = root.parent / f"{root.name}.build.log"
        build_log.write_text("")
        log(f"llama.cpp: building {', '.join(TARGETS)} from llama-cpp-python {VERSION} (llama.cpp {COMMIT}) in {root}")
        try:
            record = _build(root, log, build_log)
        except BaseException:
            log(f"llama.cpp: build failed; {root} left without a stamp, the next call rebuilds it")
            raise
        (root / STAMP).write_text(json.dumps(record, indent=2) + "\n")
        log(f"llama.cpp: ready in {record['seconds_total']} s: {root / 'bin'}")
    return root / "bin"


def tool_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `quantfleet calibrate` with tool llama-cpp: QUANTFLEET_LLAMA_CPP names this build."""
    env = dict(os.environ if base is None else base)
    ensure()
    env[ENV_ROOT] = str(build_dir())
    return env


# A small Llama that llama.cpp can quantize as designed: every weight row a multiple of 256 (the k-quant super-block,
# QK_K; narrower rows fall back to other types), GQA, and trained for a few minutes on Python's stdlib so that
# perplexity means something (random weights give ~vocabulary-size perplexity and quantization noise vanishes in it).
TINY_LLAMA_SCRIPT = r"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from quantfleet.calibrate.stdlib_text import stdlib_documents
from quantfleet.calibrate.tiny import train_tokenizer

out, steps, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0)
tok = train_tokenizer(2048, 2_000_000, True)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
                  tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
ids = []
for doc in stdlib_documents(max_chars=1_500_000):
    ids.extend(tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
data = torch.tensor(ids, dtype=torch.long)
seq, batch = 128, 16
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
g = torch.Generator().manual_seed(0)
t0, done, loss = time.monotonic(), 0, float("nan")
model.train()
while done < steps and time.monotonic() - t0 < budget:
    starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=g)
    x = torch.stack([data[s : s + seq] for s in starts])
    loss = model(input_ids=x, labels=x).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    done += 1
model.eval()
model.to(torch.bfloat16).save_pretrained(out)
tok.save_pretrained(out)
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "steps": done, "loss": round(float(loss), 3),
                  "train_seconds": round(time.monotonic() - t0, 1), "tokens": len(ids)}))
"""


def build_tiny_llama(
    out_dir: str | Path, python: str | Path, steps: int = 400, budget_s: float = 300.0, log: Log = print
) -> Path:
    """A ~1.6 M-parameter BF16 Llama (hidden 256, 4 heads of 64 / 2 KV heads, 2 layers, 2048-token BPE) trained
    for `steps` steps (at most `budget_s` seconds) on Python's stdlib; no hub. `python` needs torch + transformers
    + tokenizers (the main project venv). Idempotent: an existing model in `out_dir` is returned as is."""
    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [str(python), "-c", TINY_LLAMA_SCRIPT, str(out), str(steps), str(budget_s)],
        capture_output=True,
        text=True,
        env=env,
        timeout=budget_s + 600,
    )
    if proc.returncode != 0:
        raise LlamaCppError(f"building the tiny Llama failed:\n{proc.stderr[-4000:]}")
    record = proc.stdout.strip().splitlines()[-1]
    (out / "quantfleet-tiny.json").write_text(record + "\n")
    log(f"llama.cpp: tiny Llama in {out}: {record}")
    return out


@dataclass
class Server:
    """A running llama-server (see `start_server`)."""

    base_url: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    startup_seconds: float = 0.0

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def post(self, path: str, body: dict[str, Any], timeout: float = 120.0) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def local_command(command: Sequence[str], args: Sequence[str], port: int) -> list[str]:
    """A rendered llama-server container (command + args) as a local process: the image's /app/llama-server ->
    this build's, --host 0.0.0.0 -> 127.0.0.1 (nothing listens beyond this machine), --port -> `port`. Nothing else
    changes."""
    out = [str(bin_dir() / Path(command[0]).name), *command[1:]]
    rebind = {"--host": "127.0.0.1", "--port": str(port)}
    i = 0
    while i < len(args):
        out.append(args[i])
        if args[i] in rebind and i + 1 < len(args):
            out.append(rebind[args[i]])
            i += 2
            continue
        i += 1
    return out


@contextlib.contextmanager
def start_server(
    command: Sequence[str], args: Sequence[str], port: int, log_path: Path, timeout: float = 180.0
) -> Iterator[Server]:
    """Run a rendered llama-server command line here (`local_command`) until /health answers 200; stop it after."""
    argv = local_command(command, args, port)
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", log_path, proc)
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise LlamaCppError(f"llama-server exited {proc.returncode}:\n{server.log()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                raise LlamaCppError(f"llama-server: /health not 200 after {timeout:.0f} s:\n{server.log()[-3000:]}")
            with contextlib.suppress(OSError):
                if server.get("/health", timeout=2)[0] == 200:
                    break
            time.sleep(0.25)
        server.startup_seconds = round(time.monotonic() - t0, 2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m quantfleet_dev.llama_cpp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ensure", help="build the binaries (once); print their directory")
    sub.add_parser("info", help="print the build record")
    sub.add_parser("source", help="print the vendored llama.cpp source directory (after ensure)")
    a = p.parse_args(argv)

    def err(msg: str) -> None:
        print(msg, file=sys.stderr)

    if a.cmd == "ensure":
        print(ensure(err))
    elif a.cmd == "info":
        print(json.dumps(info(), indent=2))
    elif a.cmd == "source":
        ensure(err)
        print(source_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

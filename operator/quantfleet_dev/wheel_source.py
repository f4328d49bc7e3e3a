"""A pinned release's Python source, read from its wheel without installing it.

Why: the contract-source readers (:mod:`quantfleet_dev.vllm_source`, :mod:`quantfleet_dev.sglang_source`) each check
the operator's declarations against the source of one runtime release. Getting that source is the same for every
runtime: ``pip download --no-deps --only-binary=:all:`` of the pinned wheel into a cache outside the checkout (never
an install: the runtimes would pull their own torch), reading the files straight from the zip, and a few small
:mod:`ast` readers. This module holds those parts once; each reader keeps what is particular to its runtime.

This module does I/O (pip, the file system); it stays outside the pure packages.
"""

from __future__ import annotations

import ast
import configparser
import functools
import http
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "QUANTFLEET_CACHE"
# HTTP decorator methods that register a route (``@app.get("/x")``, ``@router.api_route(...)``).
ROUTE_METHODS = frozenset({"get", "post", "put", "delete", "patch", "head", "api_route", "route"})


class SourceLayoutError(RuntimeError):
    """A definition the parser relies on is not where, or not what, it was: the release moved or reshaped it.

    Raised instead of returning an empty answer, so a refactor upstream fails the contract test loudly and points at
    the parser to adapt (docs/vllm-contract.md says how).
    """


class WheelUnavailableError(RuntimeError):
    """The pinned wheel could not be downloaded or read."""


# --------------------------------------------------------------------------------------------------------------------
# Getting the wheel
# --------------------------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$QUANTFLEET_CACHE`` or ``~/.cache/quantfleet``: outside the checkout, shared by every worktree."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quantfleet").expanduser()


def fetch_wheel(
    distribution: str,
    version: str,
    *,
    platforms: tuple[str, ...],
    override_env: str,
    python_version: str | None = None,
    wheel_dir: Path | None = None,
) -> Path:
    """Return the wheel of ``distribution==version``, downloading it once into ``<cache>/wheels``.

    ``$override_env``, when set, names a wheel file to use instead (air-gapped CI). ``platforms`` (and
    ``python_version``, for a wheel per CPython) make every machine, a macOS laptop too, read the same file; pip does
    not widen a manylinux_2_X tag to older glibc versions, so list every one the project has used. The download lands
    in a private temporary directory and is moved into place, so concurrent test runs never see a partial file.
    """
    override = os.environ.get(override_env)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WheelUnavailableError(f"{override_env}={override} is not a file")
        return path
    wheel_dir = wheel_dir or cache_root() / "wheels"
    cached = _cached_wheel(wheel_dir, distribution, version)
    if cached is not None:
        return cached
    wheel_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{distribution}-download-", dir=wheel_dir))
    try:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ]
        if python_version is not None:
            cmd += ["--implementation", "cp", "--python-version", python_version]
        for platform in platforms:
            cmd += ["--platform", platform]
        cmd += ["--dest", str(staging), f"{distribution}=={version}"]
        log.info("downloading %s wheel version=%s dest=%s", distribution, version, wheel_dir)
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise WheelUnavailableError(
                f"pip download of {distribution}=={version} failed (exit {done.returncode}); it needs PyPI, or set "
                f"{override_env} to a wheel file.\n{done.stderr[-2000:]}"
            )
        downloaded = _cached_wheel(staging, distribution, version)
        if downloaded is None:
            raise WheelUnavailableError(f"pip download of {distribution}=={version} left no wheel in {staging}")
        final = wheel_dir / downloaded.name
        os.replace(downloaded, final)
        log.info(
            "downloaded %s wheel file=%s bytes=%d seconds=%.1f",
            distribution,
            final.name,
            final.stat().st_size,
            time.monotonic() - started,
        )
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cached_wheel(directory: Path, distribution: str, version: str) -> Path | None:
    if not directory.is_dir():
        return None
    found = sorted(p for p in directory.glob(f"{distribution}-{version}-*.whl") if p.is_file())
    return found[0] if found else None


def read_wheel(path: Path) -> dict[str, str]:
    """Return the wheel's Python sources and dist-info text files (name -> text); nothing is extracted to disk."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                name: zf.read(name).decode("utf-8", errors="replace")
                for name in zf.namelist()
                if name.endswith(".py") or (".dist-info/" in name and not name.endswith("/"))
            }
    except zipfile.BadZipFile as exc:
        raise WheelUnavailableError(
            f"{path} is not a readable wheel (truncated download?): delete it and retry"
        ) from exc


def dist_info(files: Mapping[str, str], name: str) -> str:
    """The text of ``<dist>.dist-info/<name>`` in the wheel's files."""
    found = [p for p in files if p.endswith(f".dist-info/{name}")]
    if not found:
        raise SourceLayoutError(f"the wheel has no .dist-info/{name}")
    return files[found[0]]


def release_version(files: Mapping[str, str]) -> str:
    """The ``Version:`` of the wheel's METADATA ("" when it has none)."""
    metadata = dist_info(files, "METADATA")
    return next((line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Version:")), "")


def console_scripts(files: Mapping[str, str]) -> frozenset[str]:
    """The console scripts ``entry_points.txt`` declares."""
    entry_points = configparser.ConfigParser(interpolation=None)
    entry_points.read_string(dist_info(files, "entry_points.txt"))
    return frozenset(entry_points["console_scripts"]) if entry_points.has_section("console_scripts") else frozenset()


def texts_under(files: Mapping[str, str], prefix: str, marker: str) -> Iterator[tuple[str, str]]:
    """(path, text) of the Python files under ``prefix`` that contain ``marker``, in path order."""
    for path in sorted(files):
        if path.startswith(prefix) and path.endswith(".py") and marker in files[path]:
            yield path, files[path]


# --------------------------------------------------------------------------------------------------------------------
# Reading the syntax tree
# --------------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def parse(path: str, text: str) -> ast.Module:
    """Parse once per (path, text): the doctored-source tests re-parse a release that differs in one file.

    The trees are only read, never modified, so sharing them is safe.
    """
    return ast.parse(text, filename=path)


def name_of(node: ast.expr) -> str:
    """The name a ``Name`` or ``Attribute`` node ends in ("" for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def constant(node: ast.expr | None) -> object:
    """The value of a constant (a negated number included); None for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int | float):
            return -value
    return None


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """The value passed as ``name=`` to ``call``."""
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def status_codes(func: ast.AST) -> set[int]:
    """HTTP status codes a handler sets explicitly (``status_code=503`` or ``HTTPStatus.X``)."""
    codes: set[int] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.keyword) and node.arg == "status_code":
            value = constant(node.value)
            if isinstance(value, int):
                codes.add(value)
            elif isinstance(node.value, ast.Attribute) and node.value.attr in http.HTTPStatus.__members__:
                codes.add(http.HTTPStatus[node.value.attr].value)
    return codes


@functools.lru_cache(maxsize=2048)
def metric_names_in(path: str, text: str, pattern: re.Pattern[str]) -> frozenset[str]:
    """Prometheus metric names matching ``pattern``, passed as ``name=`` or first argument of a call."""
    names: set[str] = set()
    for node in ast.walk(parse(path, text)):
        if isinstance(node, ast.Call):
            for candidate in (keyword(node, "name"), node.args[0] if node.args else None):
                value = constant(candidate)
                if isinstance(value, str) and pattern.fullmatch(value):
                    names.add(value)
    return frozenset(names)

"""Upstream CRDs (KEDA, prometheus-operator) for the sandbox, taken from their Go module zips.

The chart's ScaledObject, PodMonitor, ServiceMonitor and PrometheusRule must be accepted by the real
schemas of the pinned releases, and this machine reaches the Go module proxy but not GitHub: each
project's module zip carries the generated CRDs its release ships. versions.toml pins the module
version and its go.sum `h1:` hash (the checksum database's), so every machine extracts the same bytes
or refuses to; `ensure()` downloads, verifies and extracts once into `$QUANTFLEET_CACHE/crds/<name>-<version>/`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quantfleet import versions
from quantfleet_dev.sandbox import cluster, paths

FIELD_MANAGER = "quantfleet-sandbox"
MARKER = ".extracted"  # written last into the staging directory: what was extracted, from which verified zip


@dataclass(frozen=True)
class Upstream:
    """One project's CRDs inside its module zip."""

    name: str  # versions.toml section, and crds/<name>-<version> in the cache
    module: str
    directory: str  # inside the module
    patterns: tuple[str, ...]  # file names to take from `directory`

    @property
    def version(self) -> str:
        return versions.get(f"{self.name}.version")

    @property
    def sum(self) -> str:
        return versions.get(f"{self.name}.sum")

    @property
    def cache_dir(self) -> Path:
        return paths.cache_dir() / "crds" / f"{self.name}-{self.version}"

    @property
    def selection(self) -> str:
        """What an extracted directory holds; a different pin or file list re-extracts."""
        return f"{self.module}@{self.version} {self.sum} {self.directory} {' '.join(self.patterns)}\n"


UPSTREAMS = {
    u.name: u
    for u in (
        # every keda.sh CRD (ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication);
        # eventing.keda.sh (CloudEventSource) is not used
        Upstream("keda", "github.com/kedacore/keda/v2", "config/crd/bases", ("keda.sh_*.yaml",)),
        # what a workload's chart ships; the Prometheus/Alertmanager/... CRDs (600-850 KB each) describe the
        # monitoring stack itself
        Upstream(
            "prometheus-operator",
            "github.com/prometheus-operator/prometheus-operator",
            "example/prometheus-operator-crd",
            tuple(f"monitoring.coreos.com_{k}.yaml" for k in ("podmonitors", "servicemonitors", "prometheusrules")),
        ),
    )
}

Log = Callable[[str], None]


def h1_hash(archive: zipfile.ZipFile) -> str:
    """The `h1:` hash go.sum and the checksum database record for a module zip (x/mod/sumdb/dirhash.Hash1):
    base64 SHA-256 over "<sha256 hex>  <name>\\n" for every file, sorted by name."""
    summary = "".join(
        f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n" for name in sorted(archive.namelist())
    )
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def escape_module_path(module: str) -> str:
    """The proxy protocol's case encoding: each upper-case letter becomes '!' + its lower case."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)


def proxy_url() -> str:
    """The first URL in GOPROXY (as `go` would try first), else the public proxy."""
    for entry in os.environ.get("GOPROXY", "").replace("|", ",").split(","):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def select(upstream: Upstream, names: list[str]) -> list[str]:
    """Zip entries of `upstream`'s CRD files (directly in its directory, matching one of its patterns)."""
    prefix = f"{upstream.module}@{upstream.version}/{upstream.directory}/"
    chosen = [
        n
        for n in names
        if n.startswith(prefix) and "/" not in n[len(prefix) :]
        if any(fnmatch.fnmatch(n[len(prefix) :], p) for p in upstream.patterns)
    ]
    return sorted(chosen)


def _download(upstream: Upstream) -> bytes:
    url = f"{proxy_url()}/{escape_module_path(upstream.module)}/@v/{upstream.version}.zip"
    with urllib.request.urlopen(url, timeout=120) as resp:
        data: bytes = resp.read()
    return data


def extract(upstream: Upstream, data: bytes) -> list[Path]:
    """Verify the zip against the pinned hash, then write the selected CRDs (all or nothing) into the cache."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        got = h1_hash(archive)
        if got != upstream.sum:
            raise RuntimeError(
                f"{upstream.module}@{upstream.version}: zip hash {got} != versions.toml [{upstream.name}].sum "
                f"{upstream.sum}"
            )
        chosen = select(upstream, archive.namelist())
        if not chosen:
            raise RuntimeError(
                f"{upstream.module}@{upstream.version} has no {upstream.patterns} in {upstream.directory}"
            )
        upstream.cache_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{upstream.name}-", dir=upstream.cache_dir.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is not
        for name in chosen:
            (staging / Path(name).name).write_bytes(archive.read(name))
        (staging / MARKER).write_text(upstream.selection)
    shutil.rmtree(upstream.cache_dir, ignore_errors=True)
    try:
        staging.rename(upstream.cache_dir)  # a half-written directory is never taken for a complete one
    except OSError:  # another session extracted the same bytes first
        shutil.rmtree(staging, ignore_errors=True)
    return files(upstream)


def files(upstream: Upstream) -> list[Path]:
    """The extracted CRD files, or [] when nothing (or another selection) was extracted for this pin."""
    marker = upstream.cache_dir / MARKER
    if not marker.is_file() or marker.read_text() != upstream.selection:
        return []
    return sorted(upstream.cache_dir.glob("*.yaml"))


def ensure(log: Log = print) -> dict[str, list[Path]]:
    """Every upstream's CRD files, downloaded and verified on first use (then read from the cache)."""
    out = {}
    for name, upstream in UPSTREAMS.items():
        if not files(upstream):
            log(f"{name} {upstream.version}: fetching CRDs from {upstream.module}'s module zip")
            extract(upstream, _download(upstream))
        out[name] = files(upstream)
    return out


def install(layout: cluster.Layout, which: str, timeout: float = 120.0) -> list[str]:
    """Server-side apply one upstream's CRDs into the sandbox and wait until they are Established."""
    crd_files = ensure()[which]
    cluster.kubectl(
        layout,
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        *(a for f in crd_files for a in ("-f", str(f))),
    )
    names = cluster.crd_names(crd_files)
    cluster.kubectl(
        layout, "wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *(f"crd/{n}" for n in names)
    )
    return names


def uninstall(layout: cluster.Layout, which: str, timeout: float = 120.0) -> list[str]:
    """Delete one upstream's CRDs (and so every object of their kinds) and wait until they are gone.

    Seen on Kubernetes 1.34: the API server's finalizer of a cluster-scoped CRD (KEDA's clustertriggerauthentications)
    can stay at Terminating/InstanceDeletionFailed "could not list instances: storage is (re)initializing" for
    minutes; the error then says which CRD is left and why."""
    names = cluster.crd_names(ensure()[which])
    done = cluster.kubectl(
        layout,
        "delete",
        "--ignore-not-found",
        "--wait",
        f"--timeout={int(timeout)}s",
        *(f"crd/{n}" for n in names),
        check=False,
    )
    if done.returncode != 0:
        left = cluster.kubectl(layout, "get", "crd", *names, "--ignore-not-found", "-o", "yaml", check=False).stdout
        raise RuntimeError(f"deleting {which}'s CRDs failed: {done.stderr.strip()}\nstill there:\n{left[-3000:]}")
    return names

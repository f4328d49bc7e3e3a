"""Where the sandbox keeps things: one cache outside the git checkout, so CI clones reuse it.

`QUANTFLEET_CACHE` (default ~/.cache/quantfleet) holds built binaries under
`bin/<component>-<version>/`; `QUANTFLEET_SANDBOX_DIR` (default `$QUANTFLEET_CACHE/sandbox`)
holds the running sandbox's PKI, kubeconfigs, etcd data, pid files and logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from quantfleet import versions

PACKAGE_DIR = Path(__file__).resolve().parent
STAGES_DIR = PACKAGE_DIR / "stages"
DEFAULT_FLEET = PACKAGE_DIR / "fleet.yaml"
REPO_ROOT = PACKAGE_DIR.parents[2]  # operator/quantfleet_dev/sandbox -> repository root
GOMOD_DIR = REPO_ROOT / "hack" / "gomod"
CRDS_DIR = REPO_ROOT / "crds"


def cache_dir() -> Path:
    return Path(os.environ.get("QUANTFLEET_CACHE") or Path.home() / ".cache" / "quantfleet")


def sandbox_dir() -> Path:
    return Path(os.environ.get("QUANTFLEET_SANDBOX_DIR") or cache_dir() / "sandbox")


def bin_dir(component: str, version: str | None = None) -> Path:
    """`$QUANTFLEET_CACHE/bin/<component>-<version>`; the version defaults to the pin in versions.toml."""
    return cache_dir() / "bin" / f"{component}-{version or versions.get(f'{component}.version')}"


def binary(name: str) -> Path:
    """Path of one built program (kube-apiserver, etcd, kwok, ...) at the pinned version."""
    owners = {"etcd": "etcd", "kwok": "kwok", "charttemplate": "helm", "promtool": "prometheus"}
    component = owners.get(name, "kubernetes")
    return bin_dir(component) / name


def kubeconfig_path() -> Path:
    return sandbox_dir() / "kubeconfig"

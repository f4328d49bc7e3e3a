"""Render charts/quantfleet as `helm template` would, for tests, through Helm's own engine.

The renderer is `charttemplate` (hack/gomod/helm/charttemplate, built by `quantfleet-dev sandbox build`):
Helm's chart loader, --set parser, values coalescing, template engine and install order from the pinned
helm module, without the helm CLI, whose cold build took about 20 minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from quantfleet_dev.sandbox import paths

CHART = paths.REPO_ROOT / "charts" / "quantfleet"


def renderer() -> Path:
    """The built charttemplate binary; FileNotFoundError names the command that builds it."""
    binary = paths.binary("charttemplate")
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `make binaries` (quantfleet-dev sandbox build)")
    return binary


def set_args(set_values: Mapping[str, object]) -> list[str]:
    """`--set key=value` per entry, in order (helm's strvals syntax: `a.b[0]=x`; booleans as true/false)."""
    args = []
    for key, value in set_values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def template(
    release: str,
    namespace: str,
    set_values: Mapping[str, object] | None = None,
    api_versions: Sequence[str] = (),
    chart: Path = CHART,
    include_crds: bool = False,
) -> str:
    """helm template's output text (`---\\n# Source: <file>\\n...` per manifest)."""
    argv = [str(renderer()), "--namespace", namespace, *set_args(set_values or {})]
    argv += [a for v in api_versions for a in ("--api-versions", v)]
    argv += ["--include-crds"] if include_crds else []
    proc = subprocess.run([*argv, release, str(chart)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"charttemplate {release} {chart} failed: {proc.stderr.strip()}")
    return proc.stdout


def render(
    release: str,
    namespace: str,
    set_values: Mapping[str, object] | None = None,
    api_versions: Sequence[str] = (),
    chart: Path = CHART,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """The rendered manifests as dicts, in helm's install order (empty documents dropped)."""
    text = template(release, namespace, set_values, api_versions, chart, include_crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]

"""The sandbox build inputs stay in step with versions.toml (the one place versions are pinned)."""

from __future__ import annotations

import re

import pytest
import yaml

from quantfleet import versions
from quantfleet_dev.sandbox import build, paths


@pytest.mark.parametrize("component", build.components(with_helm=True), ids=lambda c: c.name)
def test_wrapper_gomod_pins_the_versions_toml_version(component: build.Component) -> None:
    gomod = (component.gomod_dir / "go.mod").read_text()
    assert build.pinned_in_gomod(gomod, component.module) == component.version, (
        f"{component.gomod_dir}/go.mod is stale: run `quantfleet-dev sandbox build --update`"
    )
    assert (component.gomod_dir / "go.sum").is_file(), "go.sum must be committed for reproducible builds"


def test_kubernetes_staging_modules_are_replaced_at_the_matching_tag() -> None:
    version = versions.get("kubernetes.version")
    _, minor = build.kube_minor(version)
    staging = f"v0.{minor}.{version.split('.')[2]}"
    gomod = (paths.GOMOD_DIR / "kubernetes" / "go.mod").read_text()
    replaces = re.findall(r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", gomod, re.M)
    assert len(replaces) >= 31
    assert all(src == dst and ver == staging for src, dst, ver in replaces)
    assert {"k8s.io/api", "k8s.io/apiserver", "k8s.io/kubectl", "k8s.io/pod-security-admission"} <= {
        r[0] for r in replaces
    }


def test_render_kubernetes_gomod_from_upstream() -> None:
    upstream = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/streaming => ./staging/src/k8s.io/streaming
)
"""
    parsed = build.parse_upstream_gomod(upstream)
    assert parsed == {"go": "1.24.0", "godebug": "default=go1.24", "staging": ["k8s.io/api", "k8s.io/streaming"]}
    text = build.render_kubernetes_gomod("v1.36.3", parsed["staging"], "1.24.0", "default=go1.24")  # type: ignore[arg-type]
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "\tk8s.io/streaming => k8s.io/streaming v0.36.3" in text
    assert "godebug default=go1.24" in text


def test_version_ldflags() -> None:
    flags = build.kubernetes_ldflags("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags


def test_copied_kwok_stages_come_from_the_pinned_release() -> None:
    kwok = versions.get("kwok.version")
    for stage in paths.STAGES_DIR.glob("*.yaml"):
        header = stage.read_text().split("\n", 3)[:3]
        for line in header:
            m = re.search(r"sigs\.k8s\.io/kwok (v\S+)", line)
            if m:
                assert m.group(1) == kwok, f"{stage.name} was copied from kwok {m.group(1)}, pinned is {kwok}"


def test_stage_files_cover_the_lifecycle() -> None:
    names = {}
    for f in paths.STAGES_DIR.glob("*.yaml"):
        doc = yaml.safe_load(f.read_text())
        assert doc["kind"] == "Stage" and doc["apiVersion"] == "kwok.x-k8s.io/v1alpha1", f.name
        names[doc["metadata"]["name"]] = doc
    assert {
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
        "pod-failed",
        "pod-calibration-complete",
    } <= set(names)

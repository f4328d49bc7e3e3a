"""The sandbox build inputs stay in step with versions.toml (the one place versions are pinned)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from quantfleet import versions
from quantfleet_dev.sandbox import build, paths


@pytest.mark.parametrize("component", build.components(), ids=lambda c: c.name)
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


def test_prometheus_module_version_maps_to_the_release() -> None:
    assert build.prometheus_release("v0.316.0") == "3.16.0"
    assert build.prometheus_release("v0.54.1") == "2.54.1"  # the 2.x era: v0.54.1 for 2.54.1
    assert "-X github.com/prometheus/common/version.Version=3.16.0" in build.prometheus_ldflags("v0.316.0")
    with pytest.raises(ValueError):
        build.prometheus_release("v3.16.0")


def test_promtool_builds_without_service_discovery_plugins() -> None:
    prometheus = next(c for c in build.components() if c.name == "prometheus")
    command = build.build_command(prometheus, "-mod=readonly")
    assert command[command.index("-tags") + 1] == "remove_all_sd"
    assert command[-1] == "github.com/prometheus/prometheus/cmd/promtool"
    assert paths.binary("promtool") == prometheus.out_dir / "promtool"


def test_helm_wrapper_raises_k8s_modules_to_the_kubernetes_build() -> None:
    upstream = """require (
\thelm.sh/x v1.0.0
\tk8s.io/api v0.34.0
\tk8s.io/client-go v0.34.0
\tk8s.io/klog/v2 v2.130.1
)
require (
\tk8s.io/component-base v0.34.0 // indirect
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397 // indirect
)
"""
    assert build.helm_requires("v3.19.0", upstream, "v1.34.4") == [
        ("helm.sh/helm/v3", "v3.19.0"),
        ("k8s.io/api", "v0.34.4"),
        ("k8s.io/client-go", "v0.34.4"),
        ("k8s.io/component-base", "v0.34.4"),
    ]
    gomod = (paths.GOMOD_DIR / "helm" / "go.mod").read_text()
    staging = build.kube_staging_version(versions.get("kubernetes.version"))
    assert build.pinned_in_gomod(gomod, "k8s.io/client-go") == staging
    assert build.pinned_in_gomod(gomod, "k8s.io/apimachinery") == staging


def test_helm_ldflags_stamp_the_kubernetes_minor() -> None:
    _, minor = build.kube_minor(versions.get("kubernetes.version"))
    assert f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}" in build.helm_ldflags("v3.19.0")


def test_stamp_covers_the_wrappers_go_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "GOMOD_DIR", tmp_path)
    (tmp_path / "helm" / "charttemplate").mkdir(parents=True)
    (tmp_path / "helm" / "go.mod").write_text("module x\n")
    main = tmp_path / "helm" / "charttemplate" / "main.go"
    main.write_text("package main\n")
    helm = next(c for c in build.components() if c.name == "helm")
    before = build.stamp_digest(helm, ["go", "build"], "go1.26")
    main.write_text("package main // changed\n")
    assert build.stamp_digest(helm, ["go", "build"], "go1.26") != before


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

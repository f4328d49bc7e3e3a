"""Build the sandbox's programs from the Go module proxy, once, into a cache outside the checkout.

`go install k8s.io/kubernetes/cmd/...@vX` does not work: k8s.io/kubernetes requires its staging
modules at v0.0.0 and replaces them with ./staging paths. Each component therefore has a small
wrapper module under `hack/gomod/<component>/` whose go.mod pins the version from versions.toml
(plus, for Kubernetes, a replace of every staging module by its published v0.N.M tag) and whose
go.sum is committed, so a build on a fresh machine fetches exactly the same sources.

`build()` is idempotent: a stamp next to the binaries records a digest of go.mod, go.sum, flags,
package list and Go version, and a component whose stamp matches is skipped. `update=True`
regenerates the wrapper go.mod from versions.toml and lets `go build -mod=mod` refresh go.sum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet import versions
from quantfleet_dev.sandbox import paths

SYSTEM_KUBECTL = Path("/usr/bin/kubectl")


@dataclass(frozen=True)
class Component:
    """One wrapper module and the programs built from it."""

    name: str  # versions.toml section and bin/<name>-<version> directory
    module: str  # the pinned module (the one whose version versions.toml names)
    programs: tuple[tuple[str, str], ...]  # (Go package, output file name)
    ldflags: Callable[[str], list[str]] = field(default=lambda _v: [])
    tags: tuple[str, ...] = ()  # Go build tags (e.g. Prometheus' remove_all_sd drops the cloud SDKs)

    @property
    def version(self) -> str:
        return versions.get(f"{self.name}.version")

    @property
    def gomod_dir(self) -> Path:
        return paths.GOMOD_DIR / self.name

    @property
    def out_dir(self) -> Path:
        return paths.bin_dir(self.name, self.version)


def kubernetes_ldflags(version: str) -> list[str]:
    """The version stamps upstream's hack/lib/version.sh sets (kubectl version, /version, skew checks)."""
    major, minor = kube_minor(version)
    pkg = "k8s.io/component-base/version"
    return [
        f"-X {pkg}.gitVersion={version}",
        f"-X {pkg}.gitMajor={major}",
        f"-X {pkg}.gitMinor={minor}",
        f"-X {pkg}.gitTreeState=clean",
        f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        # client-go carries its own copy that kubectl reports as the client version
        f"-X k8s.io/client-go/pkg/version.gitVersion={version}",
        f"-X k8s.io/client-go/pkg/version.gitMajor={major}",
        f"-X k8s.io/client-go/pkg/version.gitMinor={minor}",
    ]


def kube_minor(version: str) -> tuple[int, int]:
    m = re.match(r"v?(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(m.group(1)), int(m.group(2))


KUBE_SERVER = (
    ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    ("k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager"),
    ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
)
KUBECTL = ("k8s.io/kubernetes/cmd/kubectl", "kubectl")


def prometheus_release(version: str) -> str:
    """Prometheus releases are tagged as Go module versions v0.MMM.P (a v2/v3 tag would need a /vN module path):
    3.16.0 is v0.316.0, 2.54.1 was v0.54.1."""
    m = re.fullmatch(r"v0\.(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a Prometheus module version: {version!r}")
    minor, patch = int(m.group(1)), m.group(2)
    return f"{minor // 100}.{minor % 100}.{patch}" if minor >= 100 else f"2.{minor}.{patch}"


def prometheus_ldflags(version: str) -> list[str]:
    """What promu stamps (`promtool --version` reports the release, not the module version)."""
    pkg = "github.com/prometheus/common/version"
    return [f"-X {pkg}.Version={prometheus_release(version)}", f"-X {pkg}.BuildUser=quantfleet"]


def helm_ldflags(version: str) -> list[str]:
    """What helm's Makefile stamps: its version, and the Kubernetes minor of the k8s.io modules it is built with
    (.Capabilities.KubeVersion defaults to it; unset, helm reports v1.20)."""
    major, minor = kube_minor(versions.get("kubernetes.version"))
    return [
        f"-X helm.sh/helm/v3/internal/version.version={version}",
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={major}",
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
    ]


# Prometheus' plugins/*.go register every service-discovery mechanism unless `remove_all_sd` is set; promtool
# needs none of them for `check rules` / `test rules` (discovery/file and /kubernetes stay: promtool imports them).
PROMETHEUS_TAGS = ("remove_all_sd",)
CHARTTEMPLATE = ("quantfleet.local/hack/gomod/helm/charttemplate", "charttemplate")


def components() -> list[Component]:
    kube_programs = KUBE_SERVER + ((KUBECTL,) if needs_kubectl() else ())
    return [
        Component("etcd", "go.etcd.io/etcd/server/v3", (("go.etcd.io/etcd/server/v3", "etcd"),)),
        Component("kubernetes", "k8s.io/kubernetes", kube_programs, kubernetes_ldflags),
        Component("kwok", "sigs.k8s.io/kwok", (("sigs.k8s.io/kwok/cmd/kwok", "kwok"),)),
        Component("helm", "helm.sh/helm/v3", (CHARTTEMPLATE,), helm_ldflags),
        Component(
            "prometheus",
            "github.com/prometheus/prometheus",
            (("github.com/prometheus/prometheus/cmd/promtool", "promtool"),),
            prometheus_ldflags,
            PROMETHEUS_TAGS,
        ),
    ]


# ---------------------------------------------------------------- kubectl skew


def system_kubectl_minor(kubectl: Path = SYSTEM_KUBECTL) -> tuple[int, int] | None:
    if not kubectl.exists():
        return None
    try:
        out = subprocess.run(
            [str(kubectl), "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        info = json.loads(out)["clientVersion"]
        return int(info["major"]), int(re.sub(r"\D.*", "", info["minor"]))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def needs_kubectl() -> bool:
    """kubectl is supported within one minor of the API server; build ours only when the machine's is further off."""
    system = system_kubectl_minor()
    server = kube_minor(versions.get("kubernetes.version"))
    return system is None or system[0] != server[0] or abs(system[1] - server[1]) > 1


def kubectl_path() -> Path:
    built = paths.binary("kubectl")
    if built.exists():
        return built
    found = shutil.which("kubectl")
    if found and not needs_kubectl():
        return Path(found)
    raise FileNotFoundError(f"no usable kubectl: run `quantfleet-dev sandbox build` (expected {built})")


# ---------------------------------------------------------------- go.mod rendering


def parse_upstream_gomod(text: str) -> dict[str, object]:
    """The parts of an upstream go.mod a wrapper copies: go directive, godebug, local replaces."""
    go = re.search(r"^go (\S+)", text, re.M)
    godebug = re.search(r"^godebug (\S+)", text, re.M)
    local = re.findall(r"^\s*(\S+) => \./staging/src/\S+", text, re.M)
    return {"go": go.group(1) if go else None, "godebug": godebug.group(1) if godebug else None, "staging": local}


def render_kubernetes_gomod(version: str, staging: Sequence[str], go: str, godebug: str | None) -> str:
    staging_version = kube_staging_version(version)
    lines = [
        "// Wrapper module: builds kube-apiserver, kube-controller-manager, kube-scheduler (and kubectl) from the Go",
        "// module proxy. k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging",
        f"// paths; here each one is replaced by its published {staging_version} tag. Generated by",
        "// `quantfleet-dev sandbox build --update` from versions.toml; go.sum is committed for reproducible builds.",
        "module quantfleet.local/hack/gomod/kubernetes",
        "",
        f"go {go}",
        "",
    ]
    if godebug:
        lines += [f"godebug {godebug}", ""]
    lines += [f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{mod} => {mod} {staging_version}" for mod in sorted(staging)]
    lines += [")", ""]
    return "\n".join(lines)


def kube_staging_version(version: str) -> str:
    """The k8s.io staging modules' tag for a Kubernetes release: v1.34.4 -> v0.34.4."""
    _major, minor = kube_minor(version)
    return f"v0.{minor}.{version.split('.')[2]}"


def helm_requires(helm_version: str, upstream: str, kube_version: str) -> list[tuple[str, str]]:
    """helm, and every k8s.io staging module helm requires raised to the Kubernetes pin's tag (helm v3.19.0 wants
    v0.34.0): the renderer's client-go, apimachinery and Capabilities.KubeVersion then match the sandbox's API
    server. MVS only ever raises a version, so this is a patch-level bump."""
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) v0\.\d+\.\d+(?:\s|$)", upstream, re.M)))
    return [("helm.sh/helm/v3", helm_version), *((m, kube_staging_version(kube_version)) for m in staging)]


def render_simple_gomod(name: str, go: str, requires: Sequence[tuple[str, str]], comment: str) -> str:
    lines = [f"// {line}" for line in comment.splitlines()]
    lines += [f"module quantfleet.local/hack/gomod/{name}", "", f"go {go}", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in requires]
    lines += [")", ""]
    return "\n".join(lines)


ETCD_MODULES = ("api/v3", "client/pkg/v3", "client/v3", "pkg/v3", "server/v3")


def render_gomod(component: Component, env: dict[str, str]) -> str:
    """Regenerate a wrapper go.mod for the pinned version from the upstream module's own go.mod."""
    upstream_text = _download_gomod(component.module, component.version, env)
    upstream = parse_upstream_gomod(upstream_text)
    go = str(upstream["go"] or "1.24.0")
    if component.name == "kubernetes":
        staging = list(upstream["staging"])  # type: ignore[call-overload]
        return render_kubernetes_gomod(component.version, staging, go, upstream["godebug"])  # type: ignore[arg-type]
    if component.name == "etcd":
        requires = [(f"go.etcd.io/etcd/{m}", component.version) for m in ETCD_MODULES]
        comment = (
            "Wrapper module: builds the etcd server (its main package is the module go.etcd.io/etcd/server/v3).\n"
            "etcd's own go.mod replaces its sibling modules with ../ paths; here they are required at the same tag."
        )
        return render_simple_gomod("etcd", go, requires, comment)
    if component.name == "helm":
        kube = versions.get("kubernetes.version")
        comment = (
            "Wrapper module: charttemplate/ renders charts with helm's own packages (helm template without helm).\n"
            f"k8s.io modules at {kube_staging_version(kube)}, the staging tag of the sandbox's Kubernetes"
        )
        return render_simple_gomod("helm", go, helm_requires(component.version, upstream_text, kube), comment)
    comment = f"Wrapper module: builds {component.name} from {component.module} with go.sum pinned in this repository."
    return render_simple_gomod(component.name, go, [(component.module, component.version)], comment)


def pinned_in_gomod(gomod: str, module: str) -> str | None:
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", gomod, re.M)
    return m.group(1) if m else None


def _download_gomod(module: str, version: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=paths.GOMOD_DIR,
    ).stdout
    return Path(json.loads(out)["GoMod"]).read_text()


# ---------------------------------------------------------------- building


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOWORK="off")
    env.setdefault("GOFLAGS", "")
    env["GOFLAGS"] = " ".join(f for f in env["GOFLAGS"].split() if not f.startswith("-mod=")) + " -buildvcs=false"
    return env


def go_version(env: dict[str, str]) -> str:
    return subprocess.run(["go", "version"], capture_output=True, text=True, env=env, check=True).stdout.strip()


def build_command(component: Component, mod_flag: str) -> list[str]:
    ldflags = " ".join(["-s", "-w", *component.ldflags(component.version)])
    out = component.out_dir
    # go build -o DIR/ writes one binary per main package, named after the package
    target = str(out / component.programs[0][1]) if len(component.programs) == 1 else str(out) + os.sep
    tags = ["-tags", ",".join(component.tags)] if component.tags else []
    return [
        "go",
        "build",
        mod_flag,
        "-trimpath",
        *tags,
        "-ldflags",
        ldflags,
        "-o",
        target,
        *(p for p, _ in component.programs),
    ]


def stamp_digest(component: Component, command: list[str], gover: str) -> str:
    """Covers go.mod, go.sum and the wrapper's own Go sources (charttemplate), so editing any of them rebuilds."""
    h = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        f = component.gomod_dir / name
        h.update(f.read_bytes() if f.exists() else b"")
    for source in sorted(component.gomod_dir.rglob("*.go")):  # none for pure wrappers: their stamps stay as they were
        h.update(str(source.relative_to(component.gomod_dir)).encode() + b"\0" + source.read_bytes())
    h.update("\0".join(command).encode())
    h.update(gover.encode())
    return h.hexdigest()


def is_built(component: Component, digest: str) -> bool:
    stamp = component.out_dir / ".build-stamp"
    outputs_exist = all((component.out_dir / name).exists() for _, name in component.programs)
    return outputs_exist and stamp.exists() and stamp.read_text().strip() == digest


def build_component(component: Component, update: bool, log: Callable[[str], None]) -> float | None:
    """Build one component unless its stamp matches; returns seconds spent, or None when skipped."""
    env = go_env()
    gomod = component.gomod_dir / "go.mod"
    if update or not gomod.exists():
        component.gomod_dir.mkdir(parents=True, exist_ok=True)
        gomod.write_text(render_gomod(component, env))
        log(f"{component.name}: wrote {gomod.relative_to(paths.REPO_ROOT)} for {component.version}")
    pinned = pinned_in_gomod(gomod.read_text(), component.module)
    if pinned != component.version:
        raise SystemExit(
            f"{gomod} pins {component.module} {pinned} but versions.toml says {component.version}: "
            "run `quantfleet-dev sandbox build --update` and commit hack/gomod"
        )
    fresh_sum = update or not (component.gomod_dir / "go.sum").exists()
    command = build_command(component, "-mod=mod" if fresh_sum else "-mod=readonly")
    digest = stamp_digest(component, build_command(component, "-mod=readonly"), go_version(env))
    if is_built(component, digest):
        log(f"{component.name} {component.version}: up to date in {component.out_dir}")
        return None
    component.out_dir.mkdir(parents=True, exist_ok=True)
    (component.out_dir / ".build-stamp").unlink(missing_ok=True)
    log(f"{component.name} {component.version}: building {', '.join(n for _, n in component.programs)} ...")
    started = time.monotonic()
    subprocess.run(command, cwd=component.gomod_dir, env=env, check=True)
    seconds = time.monotonic() - started
    # go.sum may have been written by -mod=mod: the digest must cover the final files
    digest = stamp_digest(component, build_command(component, "-mod=readonly"), go_version(env))
    (component.out_dir / ".build-stamp").write_text(digest + "\n")
    record = {
        "component": component.name,
        "version": component.version,
        "seconds": round(seconds, 1),
        "go": go_version(env),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (component.out_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"{component.name} {component.version}: built in {seconds:.0f}s -> {component.out_dir}")
    return seconds


def build(update: bool = False, log: Callable[[str], None] = print) -> dict[str, float | None]:
    if shutil.which("go") is None:
        raise SystemExit("quantfleet sandbox build needs Go (https://go.dev/dl/) on PATH")
    started = time.monotonic()
    results = {c.name: build_component(c, update, log) for c in components()}
    log(f"sandbox build: done in {time.monotonic() - started:.0f}s")
    return results


def missing_binaries() -> list[Path]:
    wanted = [paths.binary(n) for n in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")]
    return [p for p in wanted if not p.exists()]

"""Run the sandbox's control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK, each in its own process group with a pid file and a log in the state dir.

`up()` is idempotent: a component whose pid file names a live process running the same binary is
reused, PKI and etcd data are kept, so a second `up` only starts what is missing. `down()` stops
every process group (SIGTERM, then SIGKILL) and leaves nothing running. After the processes are
healthy, `up()` installs every `crds/*.yaml` and registers the fleet's fake GPU nodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quantfleet import versions
from quantfleet_dev.sandbox import build, fleet, paths, pki

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
FLEET_ANNOTATION = "sandbox.quantfleet.io/fleet-node"
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

Log = Callable[[str], None]


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base + 379, base + 380, base + 443, base + 257, base + 259, base + 247)


@dataclass(frozen=True)
class Layout:
    """Every path and port of one sandbox state directory."""

    root: Path
    ports: Ports

    @classmethod
    def load(cls, root: Path | None = None) -> Layout:
        root = root or paths.sandbox_dir()
        state = root / "state.json"
        if state.exists():
            return cls(root, Ports(**json.loads(state.read_text())["ports"]))
        base = int(os.environ.get("QUANTFLEET_SANDBOX_PORT_BASE", "26000"))
        return cls(root, Ports.from_base(base))

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        state = {
            "ports": self.ports.__dict__,
            "kubernetes": versions.get("kubernetes.version"),
            "etcd": versions.get("etcd.version"),
            "kwok": versions.get("kwok.version"),
        }
        (self.root / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def pidfile(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def audit_log(self) -> Path:
        return self.root / "logs" / "audit.log"


# ---------------------------------------------------------------- process bookkeeping


@dataclass
class Component:
    name: str
    argv: list[str]
    healthy: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid in the component's pid file if that process is alive and runs the recorded binary."""
    pidfile = layout.pidfile(name)
    if not pidfile.exists():
        return None
    try:
        record = json.loads(pidfile.read_text())
        pid = int(record["pid"])
    except (ValueError, KeyError):
        return None
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not cmdline:
        # mid-exec: the kernel has not set up the new argv yet (Popen returns once close-on-exec fired)
        return pid
    return pid if cmdline.split(b"\0")[0].decode(errors="replace") == record["binary"] else None


def recorded_argv(layout: Layout, name: str) -> list[str] | None:
    try:
        argv = json.loads(layout.pidfile(name).read_text()).get("argv")
    except (OSError, ValueError):
        return None
    return list(argv) if isinstance(argv, list) else None


def _spawn(layout: Layout, component: Component) -> int:
    layout.logfile(component.name).parent.mkdir(parents=True, exist_ok=True)
    layout.pidfile(component.name).parent.mkdir(parents=True, exist_ok=True)
    log = layout.logfile(component.name).open("ab")
    log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {' '.join(component.argv)}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        component.argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=layout.root,
        env={**os.environ, **component.env},
        start_new_session=True,  # own process group: `down` can stop it and its children as one
    )
    log.close()
    record = {"pid": proc.pid, "pgid": proc.pid, "binary": component.argv[0], "argv": component.argv}
    layout.pidfile(component.name).write_text(json.dumps(record) + "\n")
    return proc.pid


def _log_tail(layout: Layout, name: str, lines: int = 25) -> str:
    try:
        return "\n".join(layout.logfile(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_healthy(layout: Layout, component: Component, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(layout, component.name) is None:
            raise RuntimeError(
                f"{component.name} exited during start-up; last lines of {layout.logfile(component.name)}:\n"
                + _log_tail(layout, component.name)
            )
        if component.healthy():
            return
        time.sleep(0.25)
    raise TimeoutError(
        f"{component.name} not healthy after {timeout:.0f}s; last lines of {layout.logfile(component.name)}:\n"
        + _log_tail(layout, component.name)
    )


def stop(layout: Layout, name: str, grace: float = 10.0) -> bool:
    """Stop one component's process group; returns True if something was running."""
    pidfile = layout.pidfile(name)
    pid = running_pid(layout, name)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    pgid = json.loads(pidfile.read_text()).get("pgid", pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and running_pid(layout, name) is not None:
        time.sleep(0.1)
    if running_pid(layout, name) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        while running_pid(layout, name) is not None:
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- health probes


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0, ""


def _admin_context(layout: Layout) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    ctx.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return ctx


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # kube-controller-manager / kube-scheduler serve self-signed healthz
    return ctx


# ---------------------------------------------------------------- components


def components(layout: Layout) -> list[Component]:
    p, pk, ports = layout.pki, layout.pki, layout.ports
    etcd = Component(
        "etcd",
        [
            str(paths.binary("etcd")),
            "--name=sandbox",
            f"--data-dir={layout.root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--advertise-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{ports.etcd_peer}",
            "--unsafe-no-fsync",  # a throw-away test store on a small VM: durability is not the point
            "--log-level=warn",
        ],
        lambda: '"health":"true"' in _get(f"http://127.0.0.1:{ports.etcd}/health")[1],
    )
    apiserver = Component(
        "kube-apiserver",
        [
            str(paths.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.root / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; NodeRestriction joins the default plugin set.
            "--enable-admission-plugins=NodeRestriction,PodSecurity",
            "--allow-privileged=false",
            # the `kubernetes` Service would point at 127.0.0.1, which Endpoints reject; nothing in-cluster needs it
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            # PodTemplates (which nothing in the sandbox uses) bypass the watch cache, so a watch from a compacted
            # resourceVersion reliably gets 410 Gone from etcd: the informer's relist test drives that path on any
            # sandbox. A young watch cache instead replays its initial state for an old resourceVersion.
            "--watch-cache-sizes=podtemplates#0",
            # Audit only the operator's and the benchmark floor's identities (policy below): how the fleet
            # benchmark counts the operator's requests from the server's side.
            f"--audit-policy-file={layout.root / 'audit-policy.yaml'}",
            f"--audit-log-path={layout.audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
            "--v=1",
        ],
        lambda: _get(f"{layout.server}/readyz", _admin_context(layout))[0] == 200,
    )
    # Client-side rate limits as a 1,000-node cluster tunes them (defaults 20/30 QPS): with the defaults the
    # Deployment and ReplicaSet controllers, not anything under test, set the pace of every fleet-sized run.
    common = ["--bind-address=127.0.0.1", "--leader-elect=false", "--kube-api-qps=100", "--kube-api-burst=200", "--v=1"]

    def control(name: str, port: int, extra: list[str]) -> Component:
        kc = str(layout.component_kubeconfig(name))
        argv = [
            str(paths.binary(name)),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            f"--secure-port={port}",
            f"--cert-dir={layout.root / 'serving-certs' / name}",
            *common,
            *extra,
        ]
        healthy = lambda: _get(f"https://127.0.0.1:{port}/healthz", _insecure_context())[0] == 200  # noqa: E731
        return Component(name, argv, healthy)

    kcm = control(
        "kube-controller-manager",
        ports.controller_manager,
        [
            f"--service-account-private-key-file={pk / 'sa.key'}",
            f"--root-ca-file={pk / 'ca.crt'}",
            f"--cluster-signing-cert-file={pk / 'ca.crt'}",
            f"--cluster-signing-key-file={pk / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # nodeipam needs a pod CIDR per node; KWOK assigns pod IPs itself
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            "--concurrent-gc-syncs=5",
            # Dynamic hostPath provisioning (development-only in-tree provisioner) so PVCs bind like on a
            # real cluster; KWOK never mounts them. StorageClass `standard` (default) uses it.
            "--enable-hostpath-provisioner=true",
        ],
    )
    scheduler = control("kube-scheduler", ports.scheduler, [])
    kwok = Component(
        "kwok",
        [
            str(paths.binary("kwok")),
            f"--kubeconfig={layout.component_kubeconfig('kwok')}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={fleet.KWOK_SELECTOR}",
            f"--server-address=127.0.0.1:{ports.kwok}",
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.0.1",
            *(f"--config={f}" for f in sorted(paths.STAGES_DIR.glob("*.yaml"))),
        ],
        lambda: _get(f"http://127.0.0.1:{ports.kwok}/healthz")[0] == 200,
        env={"HOME": str(layout.root / "kwok-home")},  # keep KWOK from reading a user's ~/.kwok/kwok.yaml
    )
    return [etcd, apiserver, kcm, scheduler, kwok]


AUDITED_USERS = ("quantfleet-operator", "quantfleet-floor")
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": list(AUDITED_USERS)}, {"level": "None"}],
}


def write_kubeconfigs(layout: Layout) -> None:
    users = {
        "kube-controller-manager": "kube-controller-manager",
        "kube-scheduler": "kube-scheduler",
        "kwok": "kwok",
        "operator": "operator",
        "floor": "floor",
    }
    layout.component_kubeconfig("x").parent.mkdir(parents=True, exist_ok=True)
    for name, cert in users.items():
        cfg = pki.kubeconfig(
            layout.server, layout.pki / "ca.crt", layout.pki / f"{cert}.crt", layout.pki / f"{cert}.key", name
        )
        _write_private(layout.component_kubeconfig(name), yaml.safe_dump(cfg))
    admin = pki.kubeconfig(
        layout.server, layout.pki / "ca.crt", layout.pki / "admin.crt", layout.pki / "admin.key", "quantfleet-admin"
    )
    _write_private(layout.kubeconfig, yaml.safe_dump(admin))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


# ---------------------------------------------------------------- up / down / status


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """Serialise `up` / `down` on one state dir: several test sessions may share a sandbox."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(fleet_file: Path | None = None, log: Log = print, timeout: float = 180.0) -> Layout:
    """Start (or reuse) every component, then install CRDs and register the fleet's nodes."""
    layout = Layout.load()
    with _locked(layout):
        return _up(layout, fleet_file, log, timeout)


def _up(layout: Layout, fleet_file: Path | None, log: Log, timeout: float) -> Layout:
    missing = build.missing_binaries()
    if missing:
        raise SystemExit(f"missing binaries {', '.join(map(str, missing))}: run `quantfleet-dev sandbox build` first")
    layout.save()
    pki.ensure_pki(layout.pki)
    write_kubeconfigs(layout)
    _write_private(layout.root / "audit-policy.yaml", yaml.safe_dump(AUDIT_POLICY))
    started_at = time.monotonic()
    comps = {c.name: c for c in components(layout)}
    port_of = {
        "etcd": layout.ports.etcd,
        "kube-apiserver": layout.ports.apiserver,
        "kube-controller-manager": layout.ports.controller_manager,
        "kube-scheduler": layout.ports.scheduler,
        "kwok": layout.ports.kwok,
    }
    waves = (("etcd",), ("kube-apiserver",), ("kube-controller-manager", "kube-scheduler", "kwok"))
    for wave in waves:
        for name in wave:
            if running_pid(layout, name) is not None:
                if recorded_argv(layout, name) == comps[name].argv:
                    log(f"{name}: reusing running process (pid {running_pid(layout, name)})")
                    continue
                log(f"{name}: flags or binary changed since it was started: restarting it")
                stop(layout, name)
            if not _port_free(port_of[name]):
                raise SystemExit(
                    f"{name}: port {port_of[name]} is taken by another program "
                    "(set QUANTFLEET_SANDBOX_PORT_BASE, or QUANTFLEET_SANDBOX_DIR for a second sandbox)"
                )
            pid = _spawn(layout, comps[name])
            log(f"{name}: started pid {pid}, log {layout.logfile(name)}")
        for name in wave:
            _wait_healthy(layout, comps[name], timeout)
    log(f"control plane healthy after {time.monotonic() - started_at:.1f}s")
    bootstrap(layout, fleet_file, log, timeout)
    log(f"sandbox up in {time.monotonic() - started_at:.1f}s; export KUBECONFIG={layout.kubeconfig}")
    return layout


def restart(layout: Layout, name: str, timeout: float = 120.0) -> None:
    """Stop one control-plane component and start it again with the same flags (fault tests)."""
    component = {c.name: c for c in components(layout)}[name]
    stop(layout, name)
    _spawn(layout, component)
    _wait_healthy(layout, component, timeout)


def down(log: Log = print) -> list[str]:
    layout = Layout.load()
    with _locked(layout):
        # the operator `sandbox demo` started goes first, then the control plane in reverse start order
        stopped = [name for name in ("operator", *reversed(COMPONENT_ORDER)) if stop(layout, name)]
    log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return stopped


def status(layout: Layout | None = None) -> dict[str, Any]:
    layout = layout or Layout.load()
    procs = {name: running_pid(layout, name) for name in COMPONENT_ORDER}
    return {
        "state_dir": str(layout.root),
        "kubeconfig": str(layout.kubeconfig),
        "server": layout.server,
        "ports": layout.ports.__dict__,
        "processes": procs,
        "running": all(pid is not None for pid in procs.values()),
        "healthy": all(c.healthy() for c in components(layout)) if all(procs.values()) else False,
    }


def is_up(layout: Layout | None = None) -> bool:
    s = status(layout)
    return bool(s["running"] and s["healthy"])


# ---------------------------------------------------------------- bootstrap: CRDs and nodes


def kubectl(
    layout: Layout, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [str(build.kubectl_path()), f"--kubeconfig={layout.kubeconfig}", *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check, timeout=300)


def crd_files() -> list[Path]:
    return sorted(paths.CRDS_DIR.glob("*.yaml"))


def crd_names(files: list[Path]) -> list[str]:
    """metadata.name of every CRD in the files; libyaml's loader when present (upstream CRDs run to 850 KB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    names = []
    for f in files:
        for doc in yaml.load_all(f.read_text(), Loader=loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
    return names


def install_crds(layout: Layout, log: Log, timeout: float) -> list[str]:
    files = crd_files()
    if not files:
        log("no crds/*.yaml in the repository yet: nothing to install")
        return []
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=quantfleet-sandbox"]
    for f in files:
        args += ["-f", str(f)]
    kubectl(layout, *args)
    names = crd_names(files)
    kubectl(layout, "wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *(f"crd/{n}" for n in names))
    log(f"CRDs established: {', '.join(names)}")
    return names


def api_client(layout: Layout | None = None) -> Any:
    """A `kubernetes.client.ApiClient` for the sandbox's admin user."""
    from kubernetes import config

    layout = layout or Layout.load()
    return config.new_client_from_config(config_file=str(layout.kubeconfig))  # type: ignore[no-untyped-call]


def register_nodes(layout: Layout, fleet_file: Path | None, log: Log) -> list[str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core: Any = client.CoreV1Api(api_client(layout))
    wanted = fleet.fleet_nodes(fleet.load_fleet(fleet_file))
    for node in wanted:  # marks nodes `up` owns; nodes a test adds (make_gpu_node) are never pruned
        node["metadata"]["annotations"][FLEET_ANNOTATION] = "true"
    names = []
    for node in wanted:
        name = node["metadata"]["name"]
        names.append(name)
        try:
            core.create_node(node)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.patch_node(
                name,
                {"metadata": {"labels": node["metadata"]["labels"], "annotations": node["metadata"]["annotations"]}},
            )
            core.patch_node_status(name, {"status": node["status"]})
    # nodes of pools no longer in the fleet file go away
    for existing in core.list_node(label_selector=fleet.POOL_LABEL).items:
        annotations = existing.metadata.annotations or {}
        if existing.metadata.name not in names and annotations.get(FLEET_ANNOTATION) == "true":
            core.delete_node(existing.metadata.name)
            log(f"removed node {existing.metadata.name} (not in the fleet file)")
    return names


def wait_nodes_ready(layout: Layout, names: list[str], timeout: float) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client(layout))
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for node in core.list_node(label_selector=fleet.POOL_LABEL).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
            if ready:
                pending.discard(node.metadata.name)
        if pending:
            time.sleep(0.5)
    if pending:
        raise TimeoutError(f"nodes not Ready after {timeout:.0f}s (is kwok running?): {sorted(pending)}")


def wait_default_serviceaccount(layout: Layout, timeout: float) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core: Any = client.CoreV1Api(api_client(layout))
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", "default")
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


STORAGE_CLASS = """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
"""


def install_storage_class(layout: Layout) -> None:
    """The default StorageClass, backed by kube-controller-manager's hostPath provisioner."""
    kubectl(layout, "apply", "-f", "-", input=STORAGE_CLASS)


def bootstrap(layout: Layout, fleet_file: Path | None, log: Log, timeout: float) -> None:
    install_crds(layout, log, timeout)
    install_storage_class(layout)
    names = register_nodes(layout, fleet_file, log)
    wait_nodes_ready(layout, names, timeout)
    log(f"{len(names)} simulated nodes Ready")
    wait_default_serviceaccount(layout, timeout)

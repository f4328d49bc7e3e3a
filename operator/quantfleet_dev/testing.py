"""Helpers for tests that run the operator's programs: against the sandbox (tests/e2e and anyone else's e2e tests),
or as local processes (tests/serving: `quantfleet calibrate`, servers on a free port).

They live in the package, not in a conftest, so a test module can import them by name
(`from quantfleet_dev.testing import wait_for, operator_process`) without relying on how
pytest puts conftest files on sys.path. No pytest import here: failures are AssertionErrors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from quantfleet_dev.sandbox import cluster

if TYPE_CHECKING:
    from quantfleet.api.recipe import CalibrationRecipe

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 60.0, message: str = "condition", interval: float = 0.5) -> T:
    """Call `fn` until it returns something truthy and return that; raise AssertionError naming `message`
    and the last value (or exception: an API 404 now may be a 200 in a second) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}; last value: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_calibrate_cli(
    recipe: CalibrationRecipe, env: Mapping[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`quantfleet calibrate` (the program the calibration Job runs) for `recipe` in a subprocess with `env`.

    Returns the finished process (output captured) and its wall seconds; the caller judges the exit status.
    """
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli", "calibrate", *recipe.to_args()],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
    )
    return proc, time.monotonic() - t0


@dataclass
class Sandbox:
    """A running sandbox: its layout (ports, paths), an admin ApiClient and kubectl()."""

    layout: cluster.Layout
    api: Any  # kubernetes.client.ApiClient

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the sandbox; with check=True a non-zero exit raises with kubectl's stderr."""
        proc = cluster.kubectl(self.layout, *args, input=input, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)


def create_namespace(sb: Sandbox, prefix: str = "e2e", pod_security: str = "restricted") -> str:
    """A uniquely named namespace enforcing the given Pod Security level; returns once pods can be created in it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/warn": pod_security,
        "quantfleet.io/e2e": "true",
    }
    sb.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    # the ServiceAccount admission plugin refuses pods until the controller has created `default`
    wait_for(lambda: sb.core.read_namespaced_service_account("default", name), 60, f"serviceaccount {name}/default")
    return name


def delete_namespace(sb: Sandbox, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    with contextlib.suppress(ApiException):
        sb.core.delete_namespace(name, propagation_policy="Background")


def _log_tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path | str,
    namespace: str | None = None,
    *,
    extra_args: tuple[str, ...] = (),
    log_path: Path | None = None,
    startup_grace: float = 3.0,
    stop_timeout: float = 15.0,
    allow_exit: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m quantfleet.cli run [--namespace NS]` for the duration of the block.

    Output goes to `log_path` (default: <sandbox state>/logs/operator-<ns>.log) and is echoed to stderr
    when the block raises. An exit during the first `startup_grace` seconds or during the block is an
    AssertionError (unless `allow_exit`: fault tests kill it on purpose). On exit the process group gets SIGTERM,
    then SIGKILL after `stop_timeout`.
    """
    layout = cluster.Layout.load()
    log_path = log_path or layout.logfile(f"operator-{namespace or 'all'}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "quantfleet.cli",
        "run",
        *(["--namespace", namespace] if namespace else []),
        *extra_args,
    ]
    # the operator runs the same code as the test that starts it
    package_root = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_grace
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(f"operator exited with {proc.returncode} at start-up:\n{_log_tail(log_path, 4000)}")
        yield proc
        if proc.poll() is not None and not allow_exit:
            raise AssertionError(
                f"operator exited with {proc.returncode} during the test:\n{_log_tail(log_path, 4000)}"
            )
    except BaseException:
        print(f"--- operator log {log_path} ---\n{_log_tail(log_path, 8000)}", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def cpu_node(
    name: str,
    isa: str = "amx",
    *,
    memory: str = "64Gi",
    cpu: str = "16",
    instance_type: str | None = None,
    ready: bool = True,
    cordoned: bool = False,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A GPU-less Node as the watch cache holds it, labelled by Node Feature Discovery for a CPU of level `isa`
    (amx, avx512, avx2; "unknown": no NFD labels), with `memory` and `cpu` allocatable."""
    from quantfleet.hardware.cpu import INSTANCE_TYPE, nfd_labels_for

    lab = dict(labels if labels is not None else nfd_labels_for(isa))  # type: ignore[arg-type]
    if instance_type:
        lab[INSTANCE_TYPE] = instance_type
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": lab},
        "spec": {"unschedulable": cordoned},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def gpu_node(
    name: str,
    key: str | None,
    gpus: int = 8,
    *,
    ready: bool = True,
    cordoned: bool = False,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as the watch cache holds it: `key` is a GPU table key (H100-SXM, B200, MI300X) whose real
    GPU Feature Discovery / AMD labeller labels it gets; None gives a CPU-only node."""
    from quantfleet.hardware import node_labels_for

    lab = dict(labels if labels is not None else (node_labels_for(key, gpus) if key else {}))
    resource = "amd.com/gpu" if any(k.startswith("amd.com/") for k in lab) else "nvidia.com/gpu"
    alloc = {"cpu": "64", resource: str(gpus)} if key or labels else {"cpu": "64"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": lab},
        "spec": {"unschedulable": cordoned},
        "status": {"allocatable": alloc, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def deployment_runtime(dep: dict[str, Any]) -> str:
    """The runtime a rendered serving Deployment runs: vllm, sglang or llama-cpp (by its container's command)."""
    command = dep["spec"]["template"]["spec"]["containers"][0].get("command") or []
    if command[:2] == ["vllm", "serve"]:
        return "vllm"
    return "sglang" if "sglang.launch_server" in command else "llama-cpp"

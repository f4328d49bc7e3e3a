"""e2e harness: one real control plane per test session (the sandbox), one namespace per test.

Fixtures
  sandbox     session: `quantfleet-dev sandbox up` (reusing a sandbox that is already running) and yields a
              quantfleet_dev.testing.Sandbox (kubeconfig path, kubernetes ApiClient, kubectl()).
              At the end the sandbox is stopped only if this session started it
              (QUANTFLEET_KEEP_SANDBOX=1 keeps it up anyway).
  namespace   per test: a fresh namespace enforcing Pod Security `restricted` (override with
              @pytest.mark.pod_security("baseline")), deleted after the test (its quantfleet Deployments are
              kept in qf.PRODUCED_DEPLOYMENTS first, for test_vllm_parses_deployments.py).
  upstream_crds
              session: the pinned KEDA (keda.sh) and prometheus-operator (PodMonitor, ServiceMonitor, PrometheusRule)
              CRDs installed and Established (quantfleet_dev.sandbox.upstream_crds); yields {"keda": [crd names],
              "prometheus-operator": [...]}; uninstalled (their objects with them) at the end of the session.
Helpers: `from quantfleet_dev.testing import wait_for, operator_process, create_namespace`.

Every test under tests/e2e gets the `e2e` marker (`pytest -m "not e2e"` runs the rest). Without the
binaries from `quantfleet-dev sandbox build` (make binaries) the e2e tests fail with that command; they
are not skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from qf import remember_deployments

from quantfleet_dev.sandbox import build, cluster
from quantfleet_dev.sandbox.upstream_crds import UPSTREAMS, install, uninstall
from quantfleet_dev.testing import Sandbox, create_namespace, delete_namespace

E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pod_security(level): Pod Security level enforced on the test namespace")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def _log(msg: str) -> None:
    print(f"[sandbox] {msg}", file=sys.stderr)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    missing = build.missing_binaries()
    if missing:
        pytest.fail(f"sandbox binaries missing ({', '.join(p.name for p in missing)}): run `make binaries`")
    was_up = cluster.is_up()
    layout = cluster.up(log=_log)
    if cluster.stop(layout, "operator"):
        _log("stopped the all-namespace operator `sandbox demo` left running: e2e tests start their own")
    api = cluster.api_client(layout)
    try:
        yield Sandbox(layout, api)
    finally:
        api.close()
        if not was_up and not os.environ.get("QUANTFLEET_KEEP_SANDBOX"):
            cluster.down(log=_log)


@pytest.fixture
def namespace(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    marker = request.node.get_closest_marker("pod_security")
    name = create_namespace(sandbox, pod_security=marker.args[0] if marker else "restricted")
    try:
        yield name
    finally:
        remember_deployments(sandbox, name)  # for test_vllm_parses_deployments.py
        delete_namespace(sandbox, name)


@pytest.fixture(scope="session")
def upstream_crds(sandbox: Sandbox) -> Iterator[dict[str, list[str]]]:
    installed = {}
    try:
        for which in UPSTREAMS:
            installed[which] = install(sandbox.layout, which)
        yield installed
    finally:
        for which in installed:
            try:
                uninstall(sandbox.layout, which, timeout=60)
            except RuntimeError as exc:  # the API server's CRD finalizer can stall (docs/sandbox.md): not a test result
                _log(f"upstream CRDs of {which} not removed: {exc}")

"""The pinned upstream CRDs install, admit what the chart will ship, and reject what their schemas forbid.

Minimal ScaledObject, PodMonitor, ServiceMonitor and PrometheusRule are server-side dry-run applied against
the real KEDA and prometheus-operator schemas (the `upstream_crds` fixture installs them for the session and
uninstalls them at its end).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from quantfleet_dev.testing import Sandbox

SELECTOR = {"matchLabels": {"app.kubernetes.io/name": "quantfleet"}}

VALID: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "apiVersion": "keda.sh/v1alpha1",
        "spec": {
            "scaleTargetRef": {"name": "svc-h100"},
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus.monitoring:9090",
                        "query": "sum(vllm:num_requests_waiting)",
                        "threshold": "8",
                    },
                }
            ],
        },
    },
    "PodMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "spec": {"selector": SELECTOR, "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics"}]},
    },
    "ServiceMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "spec": {"selector": SELECTOR, "endpoints": [{"port": "metrics", "interval": "30s"}]},
    },
    "PrometheusRule": {
        "apiVersion": "monitoring.coreos.com/v1",
        "spec": {
            "groups": [
                {
                    "name": "quantfleet",
                    "rules": [
                        {
                            "alert": "QuantfleetReconcileErrors",
                            "expr": "rate(quantfleet_reconcile_errors_total[5m]) > 0",
                            "for": "10m",
                            "labels": {"severity": "warning"},
                        }
                    ],
                }
            ]
        },
    },
}


def manifest(kind: str, namespace: str, spec: dict[str, Any]) -> str:
    obj = {"apiVersion": VALID[kind]["apiVersion"], "kind": kind, "metadata": {"name": "probe", "namespace": namespace}}
    return yaml.safe_dump({**obj, "spec": spec})


def test_fixture_installs_every_pinned_crd(upstream_crds: dict[str, list[str]], sandbox: Sandbox) -> None:
    assert {"scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh"} <= set(
        upstream_crds["keda"]
    )
    assert set(upstream_crds["prometheus-operator"]) == {
        "podmonitors.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    }
    for name in (n for names in upstream_crds.values() for n in names):
        established = sandbox.kubectl(
            "get", "crd", name, "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
        )
        assert established.stdout == "True", name


@pytest.mark.parametrize("kind", sorted(VALID))
def test_minimal_object_is_admitted(
    kind: str, upstream_crds: dict[str, list[str]], sandbox: Sandbox, namespace: str
) -> None:
    out = sandbox.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-o",
        "yaml",
        "-f",
        "-",
        input=manifest(kind, namespace, VALID[kind]["spec"]),
    )
    admitted = yaml.safe_load(out.stdout)
    assert admitted["kind"] == kind and admitted["metadata"]["namespace"] == namespace


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("ScaledObject", {"triggers": VALID["ScaledObject"]["spec"]["triggers"]}, "scaleTargetRef"),
        ("PrometheusRule", {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}, "expr"),
        ("PodMonitor", {"selector": SELECTOR, "podMetricsEndpoints": [{"port": 9090}]}, "port"),
    ],
)
def test_schema_violations_are_rejected(
    kind: str, spec: dict[str, Any], message: str, upstream_crds: dict[str, list[str]], sandbox: Sandbox, namespace: str
) -> None:
    out = sandbox.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest(kind, namespace, spec), check=False
    )
    assert out.returncode != 0 and message in out.stderr, out.stderr

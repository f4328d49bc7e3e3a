"""The pinned upstream CRDs install, admit what the chart will ship, and reject what their schemas forbid.

Minimal ScaledObject, PodMonitor, ServiceMonitor and PrometheusRule are server-side dry-run applied against
the real KEDA and prometheus-operator schemas (the `upstream_crds` fixture installs them for the session and
uninstalls them at its end).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from qf import apply, isvc, model_config, wait_cond

from quantfleet_dev import chart
from quantfleet_dev.sandbox.upstream_crds import install
from quantfleet_dev.testing import Sandbox, operator_process, wait_for

CHART_API_VERSIONS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")

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


# ------------------------------------------------------------------------------------------------ what ships


def test_the_charts_monitoring_objects_are_admitted(
    upstream_crds: dict[str, list[str]], sandbox: Sandbox, namespace: str
) -> None:
    """The chart's ServiceMonitor and PrometheusRule (with the real alert file) pass the real schemas."""
    docs = chart.render(namespace, namespace, api_versions=CHART_API_VERSIONS)
    objs = [d for d in docs if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert sorted(d["kind"] for d in objs) == ["PrometheusRule", "ServiceMonitor"]
    out = sandbox.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objs)
    )
    assert "serverside-applied (server dry run)" in out.stdout, out.stdout


def remove_scaledobjects_crd(sandbox: Sandbox) -> None:
    """KEDA's ScaledObject CRD only: deleting its cluster-scoped siblings can hang in the API server's CRD finalizer
    (docs/sandbox.md), and the operator only reads this one."""
    sandbox.kubectl("delete", "--ignore-not-found", "--wait", "--timeout=120s", "crd/scaledobjects.keda.sh")


def test_operator_follows_optional_crds_as_they_come_and_go(
    upstream_crds: dict[str, list[str]], sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    """KEDA absent: one log line and an HPA. KEDA installed while running: the HPA goes, a ScaledObject (and, with
    prometheus-operator, a PodMonitor) the real API server admits takes over. KEDA removed: back to an HPA."""
    ns = namespace
    remove_scaledobjects_crd(sandbox)
    model_config(sandbox, ns, "llama-3.1-8b")
    log = tmp_path / "operator.log"
    svc = isvc(
        "auto",
        model={"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main", "configRef": {"name": "llama-3.1-8b-config"}},
        pools=[{"name": "h100", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}],
        autoscaling={"maxReplicas": 3},
    )

    def exists(kind: str, name: str) -> bool:
        return sandbox.kubectl("get", kind, name, "-n", ns, check=False).returncode == 0

    try:
        with operator_process(sandbox.kubeconfig, ns, log_path=log):
            apply(sandbox, ns, svc)
            wait_cond(sandbox, ns, "inferenceservices", "auto", "Ready", "True", timeout=120)
            text = log.read_text()
            assert text.count("optional kind ScaledObject not served") == 1, text[-3000:]
            assert "optional kind PodMonitor not served" not in text
            assert exists("hpa", "auto-h100") and exists("podmonitor", "auto")
            monitor = json.loads(sandbox.kubectl("get", "podmonitor", "auto", "-n", ns, "-o", "json").stdout)
            assert [r["targetLabel"] for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]] == [
                "inferenceservice",
                "pool",
            ]

            install(sandbox.layout, "keda")
            wait_for(lambda: exists("scaledobject", "auto-h100") and not exists("hpa", "auto-h100"), 60, "KEDA")
            scaled = json.loads(sandbox.kubectl("get", "scaledobject", "auto-h100", "-n", ns, "-o", "json").stdout)
            assert scaled["spec"]["maxReplicaCount"] == 3
            assert 'inferenceservice="auto",pool="h100"' in scaled["spec"]["triggers"][0]["metadata"]["query"]
            obj = wait_cond(sandbox, ns, "inferenceservices", "auto", "Ready", "True", timeout=60)
            assert obj["status"]["decisions"][0]["autoscaler"] == "ScaledObject/auto-h100"

            remove_scaledobjects_crd(sandbox)  # its ScaledObjects go with the CRD
            wait_for(lambda: exists("hpa", "auto-h100"), 60, "back to an HPA")
            obj = wait_cond(sandbox, ns, "inferenceservices", "auto", "Ready", "True", timeout=60)
            assert obj["status"]["decisions"][0]["autoscaler"] == "HorizontalPodAutoscaler/auto-h100"
        text = log.read_text()
        assert "Traceback" not in text and "reconcile failed" not in text, text[-3000:]
    finally:
        install(sandbox.layout, "keda")  # the session fixture's state for the tests after this one

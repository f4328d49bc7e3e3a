"""Expected autoscaling and scrape objects for an InferenceService's pools (pure).

Per autoscaled pool, exactly one of:

- an `autoscaling/v2` HorizontalPodAutoscaler on a Pods metric served by a Prometheus adapter (the custom metrics
  API cannot carry `:` in a metric name, so the adapter exposes `vllm:num_requests_waiting` as
  `vllm_num_requests_waiting`; docs/autoscaling.md has the adapter rules), or
- a KEDA `ScaledObject` whose prometheus trigger queries vLLM's series directly (KEDA makes its own HPA).

Either way the Deployment is rendered without `spec.replicas`: the autoscaler owns the field and the operator never
writes it (the known failure mode of operators that keep resetting replicas and fight their autoscaler).

Per service, when prometheus-operator's CRDs are installed: a PodMonitor scraping every vLLM pod's /metrics, with the
pod's service and pool labels relabelled onto every series as `inferenceservice` and `pool` (docs/monitoring.md's
label contract): the KEDA queries, the alerts and the dashboard select on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from quantfleet.api import vllm_flags as vf
from quantfleet.render.common import LABEL_ISVC, LABEL_POOL, owner_reference

Obj = dict[str, Any]
Metric = Literal["WaitingRequests", "KVCacheUsage"]

HPA_KIND = "HorizontalPodAutoscaler"
KEDA_KIND = "ScaledObject"
PODMONITOR_KIND = "PodMonitor"
KEDA_API = "keda.sh/v1alpha1"
MONITORING_API = "monitoring.coreos.com/v1"

# vLLM's series (api/vllm_flags, checked against the pinned vLLM source) and the name a Prometheus adapter gives
# each in the custom metrics API, where ':' is not allowed.
SERIES: dict[Metric, str] = {
    "WaitingRequests": vf.METRIC_NUM_REQUESTS_WAITING,
    "KVCacheUsage": vf.METRIC_KV_CACHE_USAGE,
}
DEFAULT_TARGET: dict[Metric, float] = {"WaitingRequests": 5.0, "KVCacheUsage": 0.8}
# Series labels the PodMonitor sets from the pod labels (the alerts and the dashboard aggregate by them).
PROM_LABEL_ISVC = "inferenceservice"
PROM_LABEL_POOL = "pool"
SCRAPE_INTERVAL = "15s"


def meta_label(pod_label: str) -> str:
    """Prometheus' Kubernetes service discovery name of a pod label: '.', '/' and '-' become '_'."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in pod_label)


def adapter_metric_name(series: str) -> str:
    """The custom-metrics API name of a vLLM series: 'vllm:num_requests_waiting' -> 'vllm_num_requests_waiting'."""
    return series.replace(":", "_")


@dataclass(frozen=True)
class PoolScaling:
    """One autoscaled pool: the bounds (after the GPU bound) and what to scale on."""

    pool: str
    deployment: str
    min_replicas: int
    max_replicas: int
    metric: Metric
    target: float
    scale_down_seconds: int
    prometheus: str  # KEDA's serverAddress


def _quantity(value: float) -> str:
    """A Kubernetes quantity for a target: whole numbers as-is, fractions in milli-units (0.8 -> '800m')."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _meta(name: str, namespace: str, isvc: str, uid: str, labels: dict[str, str]) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner_reference("InferenceService", isvc, uid)],
    }


def _pool_autoscaler(
    api_version: str, kind: str, isvc: str, namespace: str, uid: str, labels: dict[str, str], s: PoolScaling
) -> Obj:
    """What an HPA and a ScaledObject share: the pool's name and labels, the owner, the Deployment they scale."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": _meta(s.deployment, namespace, isvc, uid, {**labels, LABEL_POOL: s.pool}),
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": s.deployment}},
    }


def _behavior(scale_down_seconds: int) -> Obj:
    # scale up at once (requests are queueing now); scale down only after load stayed low for the window
    return {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": scale_down_seconds},
    }


def expected_hpa(isvc: str, namespace: str, uid: str, labels: dict[str, str], s: PoolScaling) -> Obj:
    obj = _pool_autoscaler("autoscaling/v2", HPA_KIND, isvc, namespace, uid, labels, s)
    obj["spec"] |= {
        "minReplicas": s.min_replicas,
        "maxReplicas": s.max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": adapter_metric_name(SERIES[s.metric])},
                    "target": {"type": "AverageValue", "averageValue": _quantity(s.target)},
                },
            }
        ],
        "behavior": _behavior(s.scale_down_seconds),
    }
    return obj


def keda_query(namespace: str, isvc: str, s: PoolScaling) -> str:
    """The pool's total of the metric; KEDA's AverageValue divides it by the replica count."""
    selector = f'namespace="{namespace}",{PROM_LABEL_ISVC}="{isvc}",{PROM_LABEL_POOL}="{s.pool}"'
    return f"sum({SERIES[s.metric]}{{{selector}}})"


def expected_scaled_object(isvc: str, namespace: str, uid: str, labels: dict[str, str], s: PoolScaling) -> Obj:
    obj = _pool_autoscaler(KEDA_API, KEDA_KIND, isvc, namespace, uid, labels, s)
    obj["spec"] |= {
        "minReplicaCount": s.min_replicas,
        "maxReplicaCount": s.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(s.scale_down_seconds)}},
        "triggers": [
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": s.prometheus,
                    "query": keda_query(namespace, isvc, s),
                    "threshold": f"{s.target:g}",
                },
            }
        ],
    }
    return obj


def expected_pod_monitor(isvc: str, namespace: str, uid: str, labels: dict[str, str], selector: Obj) -> Obj:
    return {
        "apiVersion": MONITORING_API,
        "kind": PODMONITOR_KIND,
        "metadata": _meta(isvc, namespace, isvc, uid, labels),
        "spec": {
            "selector": {"matchLabels": selector},
            "podMetricsEndpoints": [
                {
                    "port": "http",
                    "path": vf.METRICS_PATH,
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": [
                        {"sourceLabels": [meta_label(LABEL_ISVC)], "targetLabel": PROM_LABEL_ISVC},
                        {"sourceLabels": [meta_label(LABEL_POOL)], "targetLabel": PROM_LABEL_POOL},
                    ],
                }
            ],
        },
    }

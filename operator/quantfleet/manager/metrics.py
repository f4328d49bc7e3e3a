"""Prometheus metrics of the operator (served by `quantfleet run --metrics-port`).

Counters/histograms, updated as work happens:
  quantfleet_reconcile_seconds{kind}               reconcile durations
  quantfleet_reconcile_errors_total{kind}          reconciles that raised (retried with backoff)
  quantfleet_workqueue_wait_seconds                time a key waited in the queue before a worker took it
  quantfleet_api_requests_total{verb,resource,code} every request the operator made to the API server
Gauges, computed at scrape time from the watch caches and the queue (never stale, no bookkeeping):
  quantfleet_workqueue_depth                       keys ready for a worker
  quantfleet_workqueue_delayed                     keys waiting for a backoff or requeue-after
  quantfleet_objects_reconciled{kind}              distinct objects reconciled successfully since start
  quantfleet_leader                                1 while this replica holds the leader Lease
  quantfleet_cache_objects{kind}                   objects in each watch cache
  quantfleet_gpu_pool_nodes{pool,gpu}              nodes in a GPU pool
  quantfleet_gpu_pool_usable_nodes{pool,gpu}       Ready, schedulable nodes with allocatable GPUs
  quantfleet_gpu_pool_gpus_per_node{pool,gpu}      allocatable GPUs per usable node
Fleet gauges, from the InferenceService and QuantizedModel caches' `status` (only on the replica that leads, so a
sum over the fleet counts each object once; docs/monitoring.md):
  quantfleet_inferenceservice_replicas{namespace,inferenceservice,pool}        replicas the pinned decision plans
  quantfleet_inferenceservice_ready_replicas{namespace,inferenceservice,pool}  ready replicas observed
  quantfleet_inferenceservice_pool_info{namespace,inferenceservice,pool,gpu,device,precision,kv_cache_dtype,
                                        checkpoint_format,native}               1 per pool decision
  quantfleet_inferenceservice_kv_cache_tokens{namespace,inferenceservice,pool} estimated KV capacity per replica
  quantfleet_inferenceservice_condition{namespace,inferenceservice,type,reason} 1 when the condition is True, else 0
  quantfleet_quantizedmodel_condition{namespace,quantizedmodel,type,reason}     1 when the condition is True, else 0
  quantfleet_quantizedmodel_perplexity_delta{namespace,quantizedmodel}         relative perplexity increase
  quantfleet_quantizedmodels{phase,scheme,tool}                                QuantizedModels per phase
  quantfleet_quantizedmodel_quality_gates{scheme,tool,result}                  gated checkpoints: Passed / Failed
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILE_SECONDS = Histogram("quantfleet_reconcile_seconds", "Reconcile duration", ["kind"])
RECONCILE_ERRORS = Counter("quantfleet_reconcile_errors_total", "Reconciles that raised", ["kind"])
QUEUE_WAIT = Histogram(
    "quantfleet_workqueue_wait_seconds",
    "Time a key waited in the work queue",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
API_REQUESTS = Counter("quantfleet_api_requests_total", "Requests to the API server", ["verb", "resource", "code"])


def count_request(verb: str, resource: str, code: int) -> None:
    API_REQUESTS.labels(verb, resource, str(code)).inc()


class ManagerCollector(Collector):
    """Gauges read at scrape time from the running manager (duck-typed to keep this module import-light)."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self.manager
        depth = GaugeMetricFamily("quantfleet_workqueue_depth", "Keys ready for a worker")
        depth.add_metric([], len(m.queue))
        delayed = GaugeMetricFamily("quantfleet_workqueue_delayed", "Keys waiting for a backoff or requeue")
        delayed.add_metric([], m.queue.waiting())
        done = GaugeMetricFamily(
            "quantfleet_objects_reconciled", "Distinct objects reconciled since start", labels=["kind"]
        )
        for kind, count in m.reconciled_counts().items():
            done.add_metric([kind], count)
        leader = GaugeMetricFamily("quantfleet_leader", "1 while this replica leads")
        leader.add_metric([], 1 if m.leading else 0)
        cached = GaugeMetricFamily("quantfleet_cache_objects", "Objects in each watch cache", labels=["kind"])
        for kind, store in m.cache.stores.items():
            cached.add_metric([kind], len(store))
        yield from (depth, delayed, done, leader, cached)
        yield from pool_gauges(m.cache.pools)
        if m.leading:  # the standby's caches hold the same objects: one exporter, so a sum counts each once
            yield from fleet_gauges(m.cache.objects("InferenceService"), m.cache.objects("QuantizedModel"))


def pool_gauges(pools: Callable[[], Any]) -> Iterator[GaugeMetricFamily]:
    labels = ["pool", "gpu"]
    total = GaugeMetricFamily("quantfleet_gpu_pool_nodes", "Nodes in a GPU pool", labels=labels)
    usable = GaugeMetricFamily("quantfleet_gpu_pool_usable_nodes", "Usable nodes in a GPU pool", labels=labels)
    per_node = GaugeMetricFamily("quantfleet_gpu_pool_gpus_per_node", "Allocatable GPUs per node", labels=labels)
    for pool in pools().pools:
        key = [pool.name, pool.facts.key or pool.facts.label_product or "unknown"]
        total.add_metric(key, len(pool.nodes))
        usable.add_metric(key, len(pool.usable_nodes))
        per_node.add_metric(key, pool.gpus_per_node)
    yield from (total, usable, per_node)


Sample = tuple[str, dict[str, str], float]

_ISVC = ("namespace", "inferenceservice")
_ISVC_POOL = (*_ISVC, "pool")
_QM = ("namespace", "quantizedmodel")
# name -> (help, label names): every fleet gauge, declared once; the sample functions below fill them.
FLEET_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "quantfleet_inferenceservice_replicas": ("Replicas the pinned decision plans for a pool", _ISVC_POOL),
    "quantfleet_inferenceservice_ready_replicas": ("Ready replicas observed in a pool's Deployment", _ISVC_POOL),
    "quantfleet_inferenceservice_pool_info": (
        "A pool's pinned decision (always 1): GPU, weight precision, KV-cache dtype, checkpoint format",
        (*_ISVC_POOL, "gpu", "device", "precision", "kv_cache_dtype", "checkpoint_format", "native"),
    ),
    "quantfleet_inferenceservice_kv_cache_tokens": (
        "Estimated KV-cache capacity per replica in tokens (the planner's estimate in status)",
        _ISVC_POOL,
    ),
    "quantfleet_inferenceservice_condition": (
        "1 when the condition is True, 0 when False or Unknown; reason as in status",
        (*_ISVC, "type", "reason"),
    ),
    "quantfleet_quantizedmodel_condition": (
        "1 when the condition is True, 0 when False or Unknown; reason as in status",
        (*_QM, "type", "reason"),
    ),
    "quantfleet_quantizedmodel_perplexity_delta": (
        "Relative perplexity increase of the checkpoint over its base model (quantized/base - 1)",
        _QM,
    ),
    "quantfleet_quantizedmodels": ("QuantizedModels per phase, scheme and tool", ("phase", "scheme", "tool")),
    "quantfleet_quantizedmodel_quality_gates": (
        "QuantizedModels with a quality gate, by its result (Passed, Failed)",
        ("scheme", "tool", "result"),
    ),
}


def condition_samples(
    metric: str, ident: Mapping[str, str], conditions: Iterable[Mapping[str, Any]] | None
) -> Iterator[Sample]:
    """One 0/1 sample per condition: a True/False pair of series per type would double the series for no gain,
    and the reason label already says why a condition is not True (Unknown included)."""
    for cond in conditions or []:
        labels = {**ident, "type": str(cond.get("type", "")), "reason": str(cond.get("reason", ""))}
        yield metric, labels, 1.0 if cond.get("status") == "True" else 0.0


def service_samples(isvc: Mapping[str, Any]) -> Iterator[Sample]:
    """Per-pool gauges from status.decisions, and the service's conditions. A service without status (not yet
    reconciled) has no samples: nothing is known about it but its spec."""
    meta = isvc.get("metadata") or {}
    ident = {"namespace": str(meta.get("namespace", "")), "inferenceservice": str(meta.get("name", ""))}
    status = isvc.get("status") or {}
    for d in status.get("decisions") or []:
        pool = {**ident, "pool": str(d["pool"])}
        yield "quantfleet_inferenceservice_replicas", pool, float(d["replicas"])
        if d.get("readyReplicas") is not None:
            yield "quantfleet_inferenceservice_ready_replicas", pool, float(d["readyReplicas"])
        info = {
            **pool,
            "gpu": str(d["gpu"]),
            "device": str(d.get("device") or "gpu"),  # unset means gpu (PoolDecision.device)
            "precision": str(d["precision"]),
            "kv_cache_dtype": str(d["kvCacheDtype"]),
            "checkpoint_format": str(d.get("checkpointFormat") or "bf16"),  # as status.checkpointFormat summarises
            "native": "true" if d.get("native") else "false",
        }
        yield "quantfleet_inferenceservice_pool_info", info, 1.0
        if d.get("kvCacheTokens") is not None:
            yield "quantfleet_inferenceservice_kv_cache_tokens", pool, float(d["kvCacheTokens"])
    yield from condition_samples("quantfleet_inferenceservice_condition", ident, status.get("conditions"))


def _scheme_tool(qm: Mapping[str, Any]) -> tuple[str, str]:
    """(spec.scheme, the tool status says was chosen, else the spec's request, e.g. auto before the first pass)."""
    spec = qm.get("spec") or {}
    status = qm.get("status") or {}
    return str(spec.get("scheme") or "unknown"), str(status.get("tool") or spec.get("tool") or "auto")


def _finite(text: Any) -> float | None:
    """status.quality.delta is a string (it may be nan or inf, which the gate always fails): a number, or None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def model_samples(qm: Mapping[str, Any]) -> Iterator[Sample]:
    meta = qm.get("metadata") or {}
    ident = {"namespace": str(meta.get("namespace", "")), "quantizedmodel": str(meta.get("name", ""))}
    status = qm.get("status") or {}
    yield from condition_samples("quantfleet_quantizedmodel_condition", ident, status.get("conditions"))
    delta = _finite((status.get("quality") or {}).get("delta"))
    if delta is not None:
        yield "quantfleet_quantizedmodel_perplexity_delta", ident, delta


def model_counts(qms: Iterable[Mapping[str, Any]]) -> Iterator[Sample]:
    """Outcomes by scheme and tool: phases (Unknown before the first reconcile writes one) and quality gates."""
    phases: Tally[tuple[str, str, str]] = Tally()
    gates: Tally[tuple[str, str, str]] = Tally()
    for qm in qms:
        scheme, tool = _scheme_tool(qm)
        status = qm.get("status") or {}
        phases[(str(status.get("phase") or "Unknown"), scheme, tool)] += 1
        gate = (status.get("quality") or {}).get("gate")
        if gate:
            gates[(scheme, tool, str(gate))] += 1
    for (phase, scheme, tool), n in sorted(phases.items()):
        yield "quantfleet_quantizedmodels", {"phase": phase, "scheme": scheme, "tool": tool}, float(n)
    for (scheme, tool, result), n in sorted(gates.items()):
        yield "quantfleet_quantizedmodel_quality_gates", {"scheme": scheme, "tool": tool, "result": result}, float(n)


def fleet_samples(services: Iterable[Mapping[str, Any]], models: Iterable[Mapping[str, Any]]) -> Iterator[Sample]:
    for isvc in services:
        yield from service_samples(isvc)
    listed = list(models)
    for qm in listed:
        yield from model_samples(qm)
    yield from model_counts(listed)


def fleet_gauges(
    services: Iterable[Mapping[str, Any]], models: Iterable[Mapping[str, Any]]
) -> Iterator[GaugeMetricFamily]:
    """Every family in FLEET_GAUGES (empty ones too: HELP and TYPE say the metric exists before any object does)."""
    families = {
        name: GaugeMetricFamily(name, text, labels=list(labels)) for name, (text, labels) in FLEET_GAUGES.items()
    }
    for name, labels, value in fleet_samples(services, models):
        families[name].add_metric([labels[k] for k in FLEET_GAUGES[name][1]], value)
    yield from families.values()


class PoolCollector(Collector):
    """Per-pool gauges from a GPU pool view (the manager's is the Node cache's)."""

    def __init__(self, pools: Callable[[], Any]) -> None:
        self.pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from pool_gauges(self.pools)


def register(manager: Any) -> ManagerCollector:
    collector = ManagerCollector(manager)
    REGISTRY.register(collector)
    return collector

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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

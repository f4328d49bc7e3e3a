"""Prometheus metrics of the operator (served by `quantfleet run --metrics-port`).

Counters/histograms, updated by every reconcile:
  quantfleet_reconcile_seconds{kind}          histogram of reconcile durations
  quantfleet_reconcile_errors_total{kind}     reconciles that raised
Gauges, computed at scrape time from the in-memory Node view (never stale, no bookkeeping):
  quantfleet_gpu_pool_nodes{pool,gpu}         nodes in a GPU pool
  quantfleet_gpu_pool_usable_nodes{pool,gpu}  Ready, schedulable nodes with allocatable GPUs
  quantfleet_gpu_pool_gpus_per_node{pool,gpu} allocatable GPUs per usable node
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from quantfleet.hardware.pools import group_pools

RECONCILE_SECONDS = Histogram("quantfleet_reconcile_seconds", "Reconcile duration", ["kind"])
RECONCILE_ERRORS = Counter("quantfleet_reconcile_errors_total", "Reconciles that raised", ["kind"])


class PoolCollector(Collector):
    """Per-pool gauges read from the operator's Node view at scrape time."""

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]]) -> None:
        self.nodes = nodes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool", "gpu"]
        total = GaugeMetricFamily("quantfleet_gpu_pool_nodes", "Nodes in a GPU pool", labels=labels)
        usable = GaugeMetricFamily("quantfleet_gpu_pool_usable_nodes", "Usable nodes in a GPU pool", labels=labels)
        per_node = GaugeMetricFamily("quantfleet_gpu_pool_gpus_per_node", "Allocatable GPUs per node", labels=labels)
        for pool in group_pools(self.nodes()).pools:
            key = [pool.name, pool.facts.key or pool.facts.label_product or "unknown"]
            total.add_metric(key, len(pool.nodes))
            usable.add_metric(key, len(pool.usable_nodes))
            per_node.add_metric(key, pool.gpus_per_node)
        yield from (total, usable, per_node)


def register_pool_collector(nodes: Callable[[], list[dict[str, Any]]]) -> PoolCollector:
    collector = PoolCollector(nodes)
    REGISTRY.register(collector)
    return collector

"""GPU pools: the nodes of a cluster grouped by the GPU they carry.

Why: both controllers place work on *pools*, not nodes. A pool is every node whose GPU labels
resolve to the same product; its node selector is the product label GPU Feature Discovery / the
AMD labeller put there, so the real scheduler does the node choice. Pure: takes Node dicts (from
the Kopf index or a list call), returns frozen values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.hardware import GpuFacts, LabelError, gpu_facts_from_labels
from quantfleet.hardware.labels import AMD_DEVICE_ID, AMD_PRODUCT, NV_PRODUCT, short_name

NVIDIA_RESOURCE = "nvidia.com/gpu"
AMD_RESOURCE = "amd.com/gpu"
POOL_LABEL = "quantfleet.io/pool"


@dataclass(frozen=True)
class GpuNode:
    name: str
    labels: Mapping[str, str]
    facts: GpuFacts
    allocatable_gpus: int
    schedulable: bool
    ready: bool


@dataclass(frozen=True)
class GpuPool:
    """Nodes sharing one GPU product. `gpus_per_node` is the largest allocatable count among usable nodes."""

    name: str
    facts: GpuFacts
    node_selector: Mapping[str, str]
    gpu_resource: str
    nodes: tuple[str, ...]
    usable_nodes: tuple[str, ...]
    gpus_per_node: int

    @property
    def usable(self) -> bool:
        return bool(self.usable_nodes) and self.gpus_per_node > 0


@dataclass(frozen=True)
class ClusterGpus:
    pools: tuple[GpuPool, ...]
    problems: tuple[str, ...] = field(default=())
    # (label, value) -> names of pooled nodes carrying it: explicit pool selectors resolve without a node scan
    labels: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def by_name(self, name: str) -> GpuPool | None:
        return next((p for p in self.pools if p.name == name), None)


def pool_name(facts: GpuFacts) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", short_name(facts).lower()).strip("-")


_GPU_LABEL_PREFIXES = ("nvidia.com/", "amd.com/", "beta.amd.com/")


@functools.lru_cache(maxsize=1024)
def _facts(gpu_labels: tuple[tuple[str, str], ...]) -> GpuFacts | None:
    return gpu_facts_from_labels(dict(gpu_labels))


def gpu_node(node: Mapping[str, Any]) -> GpuNode | None:
    """A Node object as a GpuNode; None for nodes without GPU labels. Raises LabelError for unusable labels.

    The facts depend only on the GPU labels, which a pool's nodes share: they are parsed once per distinct set."""
    meta = node.get("metadata", {})
    labels: Mapping[str, str] = meta.get("labels") or {}
    facts = _facts(tuple(sorted((k, v) for k, v in labels.items() if k.startswith(_GPU_LABEL_PREFIXES))))
    if facts is None:
        return None
    status = node.get("status", {})
    resource = NVIDIA_RESOURCE if facts.vendor == "nvidia" else AMD_RESOURCE
    allocatable = _int(status.get("allocatable", {}).get(resource))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    taints = node.get("spec", {}).get("taints") or []
    blocking = any(
        t.get("effect") == "NoSchedule" and t.get("key", "").startswith("node.kubernetes.io/") for t in taints
    )
    schedulable = not node.get("spec", {}).get("unschedulable", False) and not blocking
    return GpuNode(meta.get("name", ""), labels, facts, allocatable, schedulable, ready)


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def selector_for(node: GpuNode) -> dict[str, str]:
    """The label that identifies the pool: the product label the GPU labeller set."""
    if node.facts.vendor == "nvidia":
        return {NV_PRODUCT: node.labels[NV_PRODUCT]} if NV_PRODUCT in node.labels else {}
    if AMD_PRODUCT in node.labels:
        return {AMD_PRODUCT: node.labels[AMD_PRODUCT]}
    return {AMD_DEVICE_ID: node.labels[AMD_DEVICE_ID]} if AMD_DEVICE_ID in node.labels else {}


def group_pools(nodes: Iterable[Mapping[str, Any]]) -> ClusterGpus:
    """Group GPU nodes into pools keyed by product; label problems are reported, never raised."""
    grouped: dict[tuple[tuple[str, str], ...], list[GpuNode]] = {}
    problems: list[str] = []
    for node in nodes:
        try:
            gnode = gpu_node(node)
        except LabelError as exc:
            problems.append(f"node {node.get('metadata', {}).get('name')}: {exc}")
            continue
        if gnode is None:
            continue
        selector = selector_for(gnode)
        if not selector:
            problems.append(f"node {gnode.name}: GPU labels give no product label to select the pool by")
            continue
        grouped.setdefault(tuple(sorted(selector.items())), []).append(gnode)
    pools = []
    index: dict[tuple[str, str], set[str]] = {}
    for members in grouped.values():
        for n in members:
            for item in n.labels.items():
                index.setdefault(item, set()).add(n.name)
    for key, members in sorted(grouped.items()):
        members.sort(key=lambda n: n.name)
        usable = [n for n in members if n.ready and n.schedulable and n.allocatable_gpus > 0]
        facts = members[0].facts
        pools.append(
            GpuPool(
                name=pool_name(facts),
                facts=facts,
                node_selector=dict(key),
                gpu_resource=NVIDIA_RESOURCE if facts.vendor == "nvidia" else AMD_RESOURCE,
                nodes=tuple(n.name for n in members),
                usable_nodes=tuple(n.name for n in usable),
                gpus_per_node=max((n.allocatable_gpus for n in usable), default=0),
            )
        )
    return ClusterGpus(tuple(pools), tuple(problems), {k: frozenset(v) for k, v in index.items()})


def pool_for_selector(cluster: ClusterGpus, selector: Mapping[str, str], nodes: Iterable[Mapping[str, Any]]) -> GpuPool:
    """An explicit pool: nodes matching `selector`; they must all carry the same GPU product."""
    if cluster.labels and selector:
        names: set[Any] = set.intersection(*(set(cluster.labels.get(i, frozenset())) for i in selector.items()))
    else:
        names = {n.get("metadata", {}).get("name") for n in nodes if _matches(n, selector)}
    pools = [p for p in cluster.pools if names & set(p.nodes)]
    if not pools:
        raise LabelError(f"no GPU node matches nodeSelector {dict(selector)}")
    if len(pools) > 1:
        raise LabelError(
            f"nodeSelector {dict(selector)} matches nodes with different GPUs ({', '.join(p.name for p in pools)});"
            " a pool must have one GPU product"
        )
    p = pools[0]
    usable = tuple(n for n in p.usable_nodes if n in names)
    return GpuPool(
        p.name,
        p.facts,
        {**p.node_selector, **selector},
        p.gpu_resource,
        tuple(sorted(names & set(p.nodes))),
        usable,
        p.gpus_per_node if usable else 0,
    )


def _matches(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())

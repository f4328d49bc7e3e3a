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
    members: tuple[GpuNode, ...] = field(default=(), compare=False, repr=False)  # for explicit selectors

    @property
    def usable(self) -> bool:
        return bool(self.usable_nodes) and self.gpus_per_node > 0


@dataclass(frozen=True)
class ClusterGpus:
    pools: tuple[GpuPool, ...]
    problems: tuple[str, ...] = field(default=())

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


def parse_node(node: Mapping[str, Any]) -> GpuNode | str | None:
    """A Node as a GpuNode, None for a node without GPU labels, or the problem (a string) that keeps it out."""
    try:
        gnode = gpu_node(node)
    except LabelError as exc:
        return f"node {node.get('metadata', {}).get('name')}: {exc}"
    if gnode is not None and not selector_for(gnode):
        return f"node {gnode.name}: GPU labels give no product label to select the pool by"
    return gnode


def pools_from(gpu_nodes: Iterable[GpuNode], problems: Iterable[str] = ()) -> ClusterGpus:
    """Pools from already-parsed GPU nodes (the watch cache keeps them parsed, node by node)."""
    grouped: dict[tuple[tuple[str, str], ...], list[GpuNode]] = {}
    for gnode in gpu_nodes:
        grouped.setdefault(tuple(sorted(selector_for(gnode).items())), []).append(gnode)
    pools = []
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
                members=tuple(members),
            )
        )
    return ClusterGpus(tuple(pools), tuple(problems))


def group_pools(nodes: Iterable[Mapping[str, Any]]) -> ClusterGpus:
    """Group GPU nodes into pools keyed by product; label problems are reported, never raised."""
    parsed = [parse_node(n) for n in nodes]
    return pools_from((n for n in parsed if isinstance(n, GpuNode)), (n for n in parsed if isinstance(n, str)))


def pool_for_selector(cluster: ClusterGpus, selector: Mapping[str, str]) -> GpuPool:
    """An explicit pool: nodes matching `selector`; they must all carry the same GPU product."""
    matched: list[tuple[GpuPool, set[str]]] = []
    for pool in cluster.pools:
        if any(k in pool.node_selector and pool.node_selector[k] != v for k, v in selector.items()):
            continue  # the selector names another product: no member can match
        names = {n.name for n in pool.members if all(n.labels.get(k) == v for k, v in selector.items())}
        if names:
            matched.append((pool, names))
    if not matched:
        raise LabelError(f"no GPU node matches nodeSelector {dict(selector)}")
    if len(matched) > 1:
        raise LabelError(
            f"nodeSelector {dict(selector)} matches nodes with different GPUs"
            f" ({', '.join(p.name for p, _ in matched)}); a pool must have one GPU product"
        )
    p, names = matched[0]
    usable = tuple(n for n in p.usable_nodes if n in names)
    return GpuPool(
        p.name,
        p.facts,
        {**p.node_selector, **selector},
        p.gpu_resource,
        tuple(sorted(names)),
        usable,
        p.gpus_per_node if usable else 0,
        tuple(n for n in p.members if n.name in names),
    )

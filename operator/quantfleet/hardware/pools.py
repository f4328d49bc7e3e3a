"""Pools: the nodes of a cluster grouped by the GPU they carry, and the GPU-less nodes grouped as CPU pools.

Why: both controllers place work on *pools*, not nodes. A GPU pool is every node whose GPU labels
resolve to the same product; its node selector is the product label GPU Feature Discovery / the
AMD labeller put there, so the real scheduler does the node choice.

A CPU pool is GPU-less nodes served by vLLM's CPU backend. Automatic CPU pools group nodes by their
`node.kubernetes.io/instance-type` label (one hardware shape), else by the Node Feature Discovery label
of their ISA level (`feature.node.kubernetes.io/cpu-cpuid.AMXTILE` / `AVX512F` / `AVX2`); a pool's facts
are those of its weakest member (lowest ISA level, least allocatable memory and CPU), because its pods
may land on any of them. Nodes with neither label are left out of automatic pools but can still be
selected explicitly. Control-plane nodes are never CPU pool members. An InferenceService uses CPU pools
only when it selects them explicitly or opts in (spec.cpuPools): the pool view merely lists them.

Pure: takes Node dicts (from the watch cache or a list call), returns frozen values. The watch cache
keeps each node parsed (`parse_node`) and re-aggregates (`pools_from`) after a change.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.hardware import GpuFacts, LabelError, gpu_facts_from_labels
from quantfleet.hardware.cpu import (
    CONTROL_PLANE_LABELS,
    INSTANCE_TYPE,
    ISA_SELECTOR_FLAG,
    NFD_CPUID,
    CpuFacts,
    cpu_facts_from_labels,
    cpu_quantity_millis,
    memory_quantity_bytes,
    weakest,
)
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
class CpuNode:
    """A GPU-less node: its CPU facts and what it can give a pod."""

    name: str
    labels: Mapping[str, str]
    facts: CpuFacts
    allocatable_millicpu: int
    allocatable_memory_bytes: int
    schedulable: bool
    ready: bool

    @property
    def usable(self) -> bool:
        enough = self.allocatable_millicpu >= 1000 and self.allocatable_memory_bytes > 0
        return self.ready and self.schedulable and enough


@dataclass(frozen=True)
class CpuPool:
    """GPU-less nodes served by vLLM's CPU backend. `facts`, `memory_bytes` and `cpus` are the weakest usable member's
    (lowest ISA level; least allocatable memory; least allocatable whole cores): a pod must fit on any of them."""

    name: str
    facts: CpuFacts
    node_selector: Mapping[str, str]
    nodes: tuple[str, ...]
    usable_nodes: tuple[str, ...]
    memory_bytes: int
    cpus: int
    members: tuple[CpuNode, ...] = field(default=(), compare=False, repr=False)

    @property
    def usable(self) -> bool:
        return bool(self.usable_nodes) and self.memory_bytes > 0 and self.cpus > 0


@dataclass(frozen=True)
class ClusterGpus:
    """The pool view: GPU pools, automatic CPU pools, every GPU-less node (for explicit selectors), label problems."""

    pools: tuple[GpuPool, ...]
    problems: tuple[str, ...] = field(default=())
    cpu_pools: tuple[CpuPool, ...] = field(default=())
    cpu_nodes: tuple[CpuNode, ...] = field(default=(), compare=False, repr=False)

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
    return GpuNode(meta.get("name", ""), labels, facts, allocatable, _schedulable(node), _ready(node))


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


@functools.lru_cache(maxsize=1024)
def _cpu_facts(cpu_labels: tuple[tuple[str, str], ...]) -> CpuFacts:
    return cpu_facts_from_labels(dict(cpu_labels))


_CPU_LABEL_KEYS = ("kubernetes.io/arch", "feature.node.kubernetes.io/cpu-model.vendor_id")


def cpu_node(node: Mapping[str, Any]) -> CpuNode | None:
    """A GPU-less Node as a CpuNode; None for a control-plane node. (The caller has checked it has no GPU labels.)"""
    meta = node.get("metadata", {})
    labels: Mapping[str, str] = meta.get("labels") or {}
    if any(k in labels for k in CONTROL_PLANE_LABELS):
        return None
    cpu_labels = ((k, v) for k, v in labels.items() if k.startswith(NFD_CPUID) or k in _CPU_LABEL_KEYS)
    facts = _cpu_facts(tuple(sorted(cpu_labels)))
    status = node.get("status", {})
    allocatable = status.get("allocatable", {}) or {}
    return CpuNode(
        meta.get("name", ""),
        labels,
        facts,
        cpu_quantity_millis(allocatable.get("cpu")),
        memory_quantity_bytes(allocatable.get("memory")),
        _schedulable(node),
        _ready(node),
    )


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _schedulable(node: Mapping[str, Any]) -> bool:
    taints = node.get("spec", {}).get("taints") or []
    blocking = any(
        t.get("effect") == "NoSchedule" and t.get("key", "").startswith("node.kubernetes.io/") for t in taints
    )
    return not node.get("spec", {}).get("unschedulable", False) and not blocking


def cpu_selector_for(node: CpuNode) -> dict[str, str]:
    """The label an automatic CPU pool is selected by: the instance type, else the NFD label of the ISA level;
    {} for a node with neither (it joins no automatic pool)."""
    if INSTANCE_TYPE in node.labels:
        return {INSTANCE_TYPE: node.labels[INSTANCE_TYPE]}
    flag = ISA_SELECTOR_FLAG.get(node.facts.isa)
    return {f"{NFD_CPUID}{flag}": "true"} if flag else {}


def parse_node(node: Mapping[str, Any]) -> GpuNode | CpuNode | str | None:
    """A Node as a GpuNode, a CpuNode (no GPU labels), None (a control-plane node), or the problem (a string) that
    keeps it out."""
    try:
        gnode = gpu_node(node)
    except LabelError as exc:
        return f"node {node.get('metadata', {}).get('name')}: {exc}"
    if gnode is None:
        return cpu_node(node)
    if not selector_for(gnode):
        return f"node {gnode.name}: GPU labels give no product label to select the pool by"
    return gnode


def _cpu_pool(name: str, selector: Mapping[str, str], members: list[CpuNode]) -> CpuPool:
    """A CPU pool of `members` (sorted by name); its facts are the weakest usable member's (ValueError: mixed arch)."""
    members = sorted(members, key=lambda n: n.name)
    usable = [n for n in members if n.usable]
    facts = weakest(n.facts for n in (usable or members))
    return CpuPool(
        name=name,
        facts=facts,
        node_selector=dict(selector),
        nodes=tuple(n.name for n in members),
        usable_nodes=tuple(n.name for n in usable),
        memory_bytes=min((n.allocatable_memory_bytes for n in usable), default=0),
        cpus=min((n.allocatable_millicpu // 1000 for n in usable), default=0),
        members=tuple(members),
    )


def cpu_pool_name(selector: Mapping[str, str], facts: CpuFacts) -> str:
    if INSTANCE_TYPE in selector:
        return "cpu-" + re.sub(r"[^a-z0-9-]+", "-", selector[INSTANCE_TYPE].lower()).strip("-")
    return facts.name


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _cpu_pools(cpu_nodes: list[CpuNode], problems: list[str]) -> list[CpuPool]:
    """Automatic CPU pools: one per distinct selector; members are every CPU node that selector matches."""
    selectors = {tuple(sorted(sel.items())) for n in cpu_nodes if (sel := cpu_selector_for(n))}
    pools = []
    for key in sorted(selectors):
        selector = dict(key)
        members = [n for n in cpu_nodes if _matches(n.labels, selector)]
        try:
            probe = weakest(n.facts for n in members)
            pools.append(_cpu_pool(cpu_pool_name(selector, probe), selector, members))
        except ValueError as exc:
            problems.append(f"CPU nodes {selector}: {exc}")
    return pools


def pools_from(nodes: Iterable[GpuNode | CpuNode], problems: Iterable[str] = ()) -> ClusterGpus:
    """Pools from already-parsed nodes (the watch cache keeps them parsed, node by node)."""
    grouped: dict[tuple[tuple[str, str], ...], list[GpuNode]] = {}
    cpu_nodes: list[CpuNode] = []
    for gnode in nodes:
        if isinstance(gnode, CpuNode):
            cpu_nodes.append(gnode)
            continue
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
    all_problems = list(problems)
    cpu_nodes.sort(key=lambda n: n.name)
    cpu_pools = _cpu_pools(cpu_nodes, all_problems)
    return ClusterGpus(tuple(pools), tuple(all_problems), tuple(cpu_pools), tuple(cpu_nodes))


def group_pools(nodes: Iterable[Mapping[str, Any]]) -> ClusterGpus:
    """Group GPU nodes into pools keyed by product and GPU-less nodes into CPU pools; label problems are reported,
    never raised."""
    parsed = [parse_node(n) for n in nodes]
    return pools_from(
        (n for n in parsed if isinstance(n, GpuNode | CpuNode)), (n for n in parsed if isinstance(n, str))
    )


def pool_for_selector(cluster: ClusterGpus, selector: Mapping[str, str]) -> GpuPool | CpuPool:
    """An explicit pool: nodes matching `selector`. They must all carry the same GPU product, or all be GPU-less (a
    CPU pool, whose facts are its weakest member's)."""
    cpu_members = [n for n in cluster.cpu_nodes if _matches(n.labels, selector)]
    gpu_members = [
        n.name
        for p in cluster.pools
        if not any(k in p.node_selector and p.node_selector[k] != v for k, v in selector.items())  # another product
        for n in p.members
        if _matches(n.labels, selector)
    ]
    if cpu_members and gpu_members:
        raise LabelError(
            f"nodeSelector {dict(selector)} matches GPU nodes ({', '.join(gpu_members[:3])}) and GPU-less nodes"
            f" ({', '.join(n.name for n in cpu_members[:3])}); a pool is either one GPU product or CPUs only"
        )
    if not cpu_members:
        return _gpu_pool_for_selector(cluster, selector)
    try:
        facts = weakest(n.facts for n in cpu_members)
        return _cpu_pool(cpu_pool_name(selector, facts), selector, cpu_members)
    except ValueError as exc:
        raise LabelError(f"nodeSelector {dict(selector)}: {exc}") from exc


def _gpu_pool_for_selector(cluster: ClusterGpus, selector: Mapping[str, str]) -> GpuPool:
    matched: list[tuple[GpuPool, set[str]]] = []
    for pool in cluster.pools:
        if any(k in pool.node_selector and pool.node_selector[k] != v for k, v in selector.items()):
            continue  # the selector names another product: no member can match
        names = {n.name for n in pool.members if all(n.labels.get(k) == v for k, v in selector.items())}
        if names:
            matched.append((pool, names))
    if not matched:
        raise LabelError(f"no GPU or CPU node matches nodeSelector {dict(selector)}")
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

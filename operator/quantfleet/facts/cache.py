"""The operator's view of the cluster: one watch cache per kind it reads, and the GPU pool view derived from Nodes.

Which kinds, and why each is watched (never polled):

- Node: always cluster-wide (cluster-scoped, also in namespaced mode), all nodes: GPU pools for both kinds.
- QuantizedModel, InferenceService: watched namespaces, all: their reconciles; services read their model.
- ConfigMap: watched namespaces, all (a model's config.json lives in a user's ConfigMap): both kinds.
- PersistentVolumeClaim: watched namespaces, all (a clash with a user's claim is detected, not overwritten).
- Job: managed-by=quantfleet. Pod: managed-by=quantfleet + component=calibration (exit code, result manifest).
- Deployment, Service, PodDisruptionBudget: watched namespaces, all: InferenceService. Objects another manager made
  are kept as bare metadata: enough for the writer to see that a name is taken (and refuse it) without a GET.

Objects are trimmed on the way in (managedFields always; Nodes to labels, taints, schedulability, Ready and
allocatable; Pods to their status), so 1,000 Nodes cost about a megabyte.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from quantfleet.facts.informer import Informer, strip_managed_fields
from quantfleet.facts.store import Handler, Indexer, Store
from quantfleet.hardware.pools import ClusterGpus, CpuNode, GpuNode, parse_node, pools_from
from quantfleet.kube.client import Kube
from quantfleet.render.common import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY

log = logging.getLogger("quantfleet.cache")
Obj = dict[str, Any]

MANAGED = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def trim_node(node: Obj) -> Obj:
    """What the pool view reads of a Node; heartbeats (lastHeartbeatTime) no longer look like changes."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": meta.get("labels") or {},
        },
        "spec": {k: spec[k] for k in ("unschedulable", "taints") if k in spec},
        "status": {
            "allocatable": status.get("allocatable") or {},
            "capacity": status.get("capacity") or {},
            "conditions": [
                {"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason")}
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ],
        },
    }


def trim_pod(pod: Obj) -> Obj:
    meta = strip_managed_fields(pod).get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences", "creationTimestamp")
            if k in meta
        },
        "status": pod.get("status") or {},
    }


def trim_foreign(obj: Obj) -> Obj:
    """Objects the operator did not make: only what proves the name is taken (and by whom)."""
    obj = strip_managed_fields(obj)
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
        return obj
    keep = ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences")
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta},
    }


def node_view(node: Obj | None) -> Obj | None:
    """A trimmed Node without its resourceVersion: equal views mean no change any pool could notice."""
    if node is None:
        return None
    meta = dict(node.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return {**node, "metadata": meta}


# kind -> (label selector, transform, cluster-scoped)
WATCHED: dict[str, tuple[str | None, Callable[[Obj], Obj], bool]] = {
    "Node": (None, trim_node, True),
    "QuantizedModel": (None, strip_managed_fields, False),
    "InferenceService": (None, strip_managed_fields, False),
    "ConfigMap": (None, strip_managed_fields, False),
    "PersistentVolumeClaim": (None, strip_managed_fields, False),
    "Job": (MANAGED, strip_managed_fields, False),
    "Pod": (f"{MANAGED},{LABEL_COMPONENT}=calibration", trim_pod, False),
    "Deployment": (None, trim_foreign, False),
    "Service": (None, trim_foreign, False),
    "PodDisruptionBudget": (None, trim_foreign, False),
}
# Kinds cached without a label selector: an object missing from the cache does not exist (as of the last event).
COMPLETE = frozenset(kind for kind, (selector, _, _) in WATCHED.items() if selector is None)


class Cache:
    """Watch caches for every kind in WATCHED, for the given namespaces (None: cluster-wide)."""

    def __init__(self, kube: Kube, namespaces: list[str] | None = None, watch_timeout: int = 600) -> None:
        self.namespaces = namespaces or None
        self.stores: dict[str, Store] = {kind: Store(kind) for kind in WATCHED}
        self.informers: list[Informer] = []
        for kind, (selector, transform, cluster_scoped) in WATCHED.items():
            scopes: list[str | None] = [None] if cluster_scoped or not self.namespaces else list(self.namespaces)
            for ns in scopes:
                self.informers.append(
                    Informer(kube, self.stores[kind], kind, ns, selector, transform, watch_timeout=watch_timeout)
                )
        self._pools: tuple[int, ClusterGpus] | None = None
        self._pools_lock = threading.Lock()
        self._gpu_nodes: dict[str, GpuNode | CpuNode | str] = {}  # node name -> parsed node, or why it is left out
        self.node_facts_version = 0
        self.stores["Node"].add_handler(self._node_changed)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        for informer in self.informers:
            informer.start(stop)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for informer in self.informers:
            if not informer.synced.wait(max(0.0, deadline - time.monotonic())):
                log.warning("cache not synced kind=%s namespace=%s", informer.kind, informer.namespace)
                return False
        return True

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    # -- configuration -----------------------------------------------------------------------------
    def add_indexer(self, kind: str, name: str, fn: Indexer) -> None:
        self.stores[kind].add_indexer(name, fn)

    def add_handler(self, kind: str, fn: Handler) -> None:
        self.stores[kind].add_handler(fn)

    # -- reads -----------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.stores[kind].get(namespace, name)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.stores[kind].objects(namespace)

    def by_index(self, kind: str, index: str, value: str) -> list[Obj]:
        return self.stores[kind].by_index(index, value)

    def observe(self, obj: Obj) -> None:
        """Write-through from the one writer: the object it just wrote, as the server returned it."""
        store = self.stores.get(obj.get("kind", ""))
        if store is None:
            return
        _, transform, _ = WATCHED[store.kind]
        store.observe(transform(obj))

    # -- Nodes -> GPU pools ---------------------------------------------------------------------------
    def _node_changed(self, old: Obj | None, new: Obj | None) -> None:
        """Keep each node parsed as it changes, so a pool snapshot never re-reads 1,000 nodes' labels."""
        if node_view(old) == node_view(new):
            return
        name = (new or old or {}).get("metadata", {}).get("name", "")
        parsed = parse_node(new) if new is not None else None
        with self._pools_lock:
            if parsed is None:
                self._gpu_nodes.pop(name, None)
            else:
                self._gpu_nodes[name] = parsed
            self.node_facts_version += 1

    def nodes(self) -> list[Obj]:
        return self.stores["Node"].objects()

    def pools(self) -> ClusterGpus:
        """GPU and CPU pools from the parsed nodes, re-aggregated only after a Node change a pool could notice."""
        with self._pools_lock:
            version = self.node_facts_version
            if self._pools is not None and self._pools[0] == version:
                return self._pools[1]
            parsed = list(self._gpu_nodes.values())
        pools = pools_from(
            (n for n in parsed if isinstance(n, GpuNode | CpuNode)), (n for n in parsed if isinstance(n, str))
        )
        with self._pools_lock:
            if self._pools is None or self._pools[0] < version:
                self._pools = (version, pools)
        return pools

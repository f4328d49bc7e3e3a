"""The operator's view of the cluster: one watch cache per kind it reads, and the GPU pool view derived from Nodes.

Which kinds, and why each is watched (never polled):

- Node: always cluster-wide (cluster-scoped, also in namespaced mode), all nodes: GPU pools for both kinds.
- QuantizedModel, InferenceService: watched namespaces, all: their reconciles; services read their model.
- ConfigMap: watched namespaces, all (a model's config.json lives in a user's ConfigMap): both kinds.
- PersistentVolumeClaim: watched namespaces, all (a clash with a user's claim is detected, not overwritten).
- Job: managed-by=quantfleet. Pod: managed-by=quantfleet + component=calibration (exit code, result manifest).
  vLLM pods are not cached: at 500 services their events cost the API server's pod watch fan-out more than they are
  worth (the fleet benchmark's converge time went from 1.5 to 2.0-2.4 x the floor with them). They are read with
  `list_uncached` only for a rollout the Deployment controller marked stuck, to say why.
- Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler: watched namespaces, all: InferenceService.
  Objects another manager made are kept as bare metadata: enough for the writer to see that a name is taken (and
  refuse it) without a GET.
- CustomResourceDefinition: cluster-wide, trimmed to name and Established: which optional kinds exist.
- Optional kinds (OPTIONAL: KEDA's ScaledObject, prometheus-operator's PodMonitor): watched only while their CRD is
  Established. Their informers start when the CRD appears and stop when it goes, and listeners (the
  InferenceService handlers) re-enqueue what renders them; a cluster without them costs one log line, no error.

Objects are trimmed on the way in (managedFields always; Nodes to labels, taints, schedulability, Ready and
allocatable; Pods to their status), so 1,000 Nodes cost about a megabyte.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from quantfleet.api.conditions import is_true
from quantfleet.facts.informer import Informer, strip_managed_fields
from quantfleet.facts.store import Handler, Indexer, Store
from quantfleet.hardware.pools import ClusterGpus, CpuNode, GpuNode, parse_node, pools_from
from quantfleet.kube.client import KINDS, Kube
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


def trim_crd(crd: Obj) -> Obj:
    """Which optional kinds exist: a CRD's name and whether it is Established."""
    meta = crd.get("metadata") or {}
    conditions = (crd.get("status") or {}).get("conditions") or []
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {k: meta[k] for k in ("name", "uid", "resourceVersion", "deletionTimestamp") if k in meta},
        "spec": {
            "versions": [
                {"name": v.get("name"), "served": v.get("served")}
                for v in (crd.get("spec") or {}).get("versions") or []
            ]
        },
        "status": {"conditions": [{"type": c.get("type"), "status": c.get("status")} for c in conditions]},
    }


def crd_serves(crd: Obj | None, api_version: str) -> bool:
    """The CRD is Established, not being deleted, and serves the version the operator renders (group/version)."""
    if crd is None or (crd.get("metadata") or {}).get("deletionTimestamp"):
        return False  # a terminating CRD refuses creates (403) while its objects are deleted
    version = api_version.rpartition("/")[2]
    return is_true((crd.get("status") or {}).get("conditions"), "Established") and any(
        v.get("name") == version and v.get("served") for v in (crd.get("spec") or {}).get("versions") or []
    )


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
    "HorizontalPodAutoscaler": (None, trim_foreign, False),
    "CustomResourceDefinition": (None, trim_crd, True),
}
# Optional kinds -> the CRD that serves them; watched (all objects, foreign ones trimmed) only while it exists.
OPTIONAL: dict[str, str] = {
    "ScaledObject": "scaledobjects.keda.sh",
    "PodMonitor": "podmonitors.monitoring.coreos.com",
}
# Kinds cached without a label selector: an object missing from the cache does not exist (as of the last event).
COMPLETE = frozenset(kind for kind, (selector, _, _) in WATCHED.items() if selector is None) | frozenset(OPTIONAL)
OptionalListener = Callable[[str, bool], None]  # (kind, now available)


def _wait_synced(informers: list[Informer], deadline: float) -> bool:
    for informer in informers:
        if not informer.synced.wait(max(0.0, deadline - time.monotonic())):
            log.warning("cache not synced kind=%s namespace=%s", informer.kind, informer.namespace)
            return False
    return True


class Cache:
    """Watch caches for every kind in WATCHED, for the given namespaces (None: cluster-wide)."""

    def __init__(self, kube: Kube, namespaces: list[str] | None = None, watch_timeout: int = 600) -> None:
        self.namespaces = namespaces or None
        self.kube = kube
        self.watch_timeout = watch_timeout
        self.stores: dict[str, Store] = {kind: Store(kind) for kind in (*WATCHED, *OPTIONAL)}
        self.informers: list[Informer] = []
        for kind, (selector, transform, cluster_scoped) in WATCHED.items():
            self.informers += self._informers(kind, selector, transform, cluster_scoped)
        # optional kind -> (its informers' stop event, its informers), while its CRD is Established
        self._optional: dict[str, tuple[threading.Event, list[Informer]]] = {}
        self._optional_lock = threading.Lock()
        self._optional_listeners: list[OptionalListener] = []
        self._stop: threading.Event | None = None
        self.stores["CustomResourceDefinition"].add_handler(self._crd_changed)
        self._pools: tuple[int, ClusterGpus] | None = None
        self._pools_lock = threading.Lock()
        self._gpu_nodes: dict[str, GpuNode | CpuNode | str] = {}  # node name -> parsed node, or why it is left out
        self.node_facts_version = 0
        self.stores["Node"].add_handler(self._node_changed)

    def _informers(
        self, kind: str, selector: str | None, transform: Callable[[Obj], Obj], cluster_scoped: bool
    ) -> list[Informer]:
        scopes: list[str | None] = [None] if cluster_scoped or not self.namespaces else list(self.namespaces)
        return [
            Informer(self.kube, self.stores[kind], kind, ns, selector, transform, watch_timeout=self.watch_timeout)
            for ns in scopes
        ]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        self._stop = stop
        for informer in self.informers:
            informer.start(stop)

    def _optional_informers(self) -> list[Informer]:
        with self._optional_lock:
            return [i for _, informers in self._optional.values() for i in informers]

    def wait_synced(self, timeout: float) -> bool:
        """Every informer synced, including the optional kinds whose CRDs the first CRD list found: a first pass must
        not take an installed KEDA for an absent one (and swap a ScaledObject for an HPA)."""
        deadline = time.monotonic() + timeout
        # the watched kinds first: the CRD informer's list is what starts the optional kinds' informers
        if not _wait_synced(self.informers, deadline) or not _wait_synced(self._optional_informers(), deadline):
            return False
        for kind, crd in OPTIONAL.items():
            if not self.available(kind):
                log.info("optional kind %s not served (CRD %s absent): not rendered until it is installed", kind, crd)
        return True

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in (*self.informers, *self._optional_informers()))

    # -- optional kinds ------------------------------------------------------------------------------
    def available(self, kind: str) -> bool:
        """The optional kind's CRD is Established and its cache is synced (so a missing object is missing)."""
        with self._optional_lock:
            entry = self._optional.get(kind)
        return entry is not None and all(i.synced.is_set() for i in entry[1])

    def available_optional(self) -> frozenset[str]:
        return frozenset(kind for kind in OPTIONAL if self.available(kind))

    def add_optional_listener(self, fn: OptionalListener) -> None:
        self._optional_listeners.append(fn)

    def _crd_changed(self, old: Obj | None, new: Obj | None) -> None:
        name = (new or old or {}).get("metadata", {}).get("name")
        kind = next((k for k, crd in OPTIONAL.items() if crd == name), None)
        if kind is None or self._stop is None:
            return
        serves = crd_serves(new, KINDS[kind].api_version)
        with self._optional_lock:
            running = kind in self._optional
            if serves and not running:
                stop = threading.Event()
                informers = self._informers(kind, None, trim_foreign, False)
                self._optional[kind] = (stop, informers)
            elif not serves and running:
                stop, informers = self._optional.pop(kind)
            else:
                return
        if serves:
            log.info("optional kind %s served (CRD %s established): watching it", kind, name)
            for informer in informers:
                informer.start(stop)
            threading.Thread(target=self._notify_when_synced, args=(kind, informers), daemon=True).start()
        else:
            log.info("optional kind %s no longer served (CRD %s removed): not rendered", kind, name)
            stop.set()
            self.stores[kind].replace([], None)
            self._notify(kind, False)

    def _notify_when_synced(self, kind: str, informers: list[Informer]) -> None:
        for informer in informers:
            informer.synced.wait()
        self._notify(kind, True)

    def _notify(self, kind: str, present: bool) -> None:
        for fn in self._optional_listeners:
            fn(kind, present)

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

    def list_uncached(self, kind: str, namespace: str, label_selector: str) -> list[Obj]:
        """One LIST outside the caches, trimmed like the cached kind: for rare paths only (a stuck rollout's pods)."""
        _, transform, _ = WATCHED[kind]
        page = self.kube.list_page(kind, namespace, label_selector, limit=50)
        return [transform(o) for o in page.get("items") or []]

    def observe(self, obj: Obj) -> None:
        """Write-through from the one writer: the object it just wrote, as the server returned it."""
        store = self.stores.get(obj.get("kind", ""))
        if store is None:
            return
        transform = WATCHED[store.kind][1] if store.kind in WATCHED else trim_foreign
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

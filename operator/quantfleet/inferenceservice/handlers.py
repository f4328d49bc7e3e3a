"""Which cache changes enqueue which InferenceServices (and the indexes that make those lookups cheap).

- the object itself: any change but its status;
- its Deployments, Service, PodDisruptionBudget, HorizontalPodAutoscalers, ScaledObjects and PodMonitor: by the
  quantfleet.io/inferenceservice label (vLLM pods are not watched: a pod's readiness reaches the service through
  its Deployment's status, and a stuck rollout's pods are read once per reconcile of that service);
- an optional kind (KEDA's ScaledObject, prometheus-operator's PodMonitor) that became served or went away: every
  service (what they render depends on it);
- the QuantizedModel it serves (spec, Ready, checkpoint) and the ConfigMap it plans with: by index;
- a Node change a pool could notice (Ready, schedulable, labels, GPUs): the services whose explicit pool selectors
  or pinned decisions match the node's old or new labels, and the automatic services not planned yet.
  A Node heartbeat changes nothing a pool reads and enqueues nothing.
"""

from __future__ import annotations

import json
from typing import Any

from quantfleet.api.conditions import is_true
from quantfleet.facts.cache import Cache, node_view
from quantfleet.facts.mapping import Enqueue, both, changed_beyond_status, ns_key, parent_by_label
from quantfleet.render.common import LABEL_COMPONENT, LABEL_ISVC, selector_key

Obj = dict[str, Any]
KIND = "InferenceService"
BY_QM = "isvc-by-quantizedmodel"
BY_CONFIGMAP = "isvc-by-configmap"
BY_SELECTOR = "isvc-by-node-selector"
UNPLANNED = "isvc-automatic-unplanned"
QM_BY_CONFIGMAP = "isvc:qm-by-configmap"
BY_LABEL = "by-isvc-label"
BY_POOL_SELECTOR = "vllm-by-node-selector"
CHILD_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject", "PodMonitor")


def _model(isvc: Obj) -> Obj:
    return (isvc.get("spec") or {}).get("model") or {}


def quantized_model(isvc: Obj) -> list[str]:
    ref = _model(isvc).get("quantizedModelRef") or {}
    return [ns_key(isvc["metadata"]["namespace"], ref["name"])] if ref.get("name") else []


def configmap(isvc: Obj) -> list[str]:
    ref = _model(isvc).get("configRef") or {}
    return [ns_key(isvc["metadata"]["namespace"], ref["name"])] if ref.get("name") else []


def qm_configmap(qm: Obj) -> list[str]:
    ref = (((qm.get("spec") or {}).get("source") or {}).get("modelConfigRef")) or {}
    return [ns_key(qm["metadata"]["namespace"], ref["name"])] if ref.get("name") else []


def selectors(isvc: Obj) -> list[str]:
    """Explicit pools' selectors and the pinned decisions' selectors."""
    spec_pools = (isvc.get("spec") or {}).get("pools") or []
    decisions = (isvc.get("status") or {}).get("decisions") or []
    keys = {selector_key(p.get("nodeSelector") or {}) for p in spec_pools}
    keys |= {selector_key(d.get("nodeSelector") or {}) for d in decisions}
    return sorted(keys)


def unplanned(isvc: Obj) -> list[str]:
    automatic = not (isvc.get("spec") or {}).get("pools")
    return ["yes"] if automatic and not (isvc.get("status") or {}).get("decisions") else []


def by_label(obj: Obj) -> list[str]:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_ISVC)
    return [ns_key(obj["metadata"].get("namespace"), value)] if value else []


def pool_selector(deployment: Obj) -> list[str]:
    """The node selector of an operator-made vLLM Deployment (what pool its GPUs come from)."""
    meta = deployment.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_COMPONENT) != "vllm" or not meta.get("ownerReferences"):
        return []
    selector = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")
    return [selector_key(selector)] if selector else []


def _matches(node: Obj, selector: dict[str, str]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def setup(cache: Cache, enqueue: Enqueue) -> None:
    cache.add_indexer(KIND, BY_QM, quantized_model)
    cache.add_indexer(KIND, BY_CONFIGMAP, configmap)
    cache.add_indexer(KIND, BY_SELECTOR, selectors)
    cache.add_indexer(KIND, UNPLANNED, unplanned)
    cache.add_indexer("QuantizedModel", QM_BY_CONFIGMAP, qm_configmap)
    for kind in CHILD_KINDS:
        cache.add_indexer(kind, BY_LABEL, by_label)
        cache.add_handler(kind, parent_by_label(LABEL_ISVC, enqueue))
    cache.add_indexer("Deployment", BY_POOL_SELECTOR, pool_selector)

    def enqueue_all(objs: list[Obj], urgent: bool = False) -> None:
        for obj in objs:
            enqueue(obj["metadata"]["namespace"], obj["metadata"]["name"], urgent)

    def own(old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None and changed_beyond_status(old, new):
            enqueue(obj["metadata"]["namespace"], obj["metadata"]["name"])

    def qm(old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and old.get("spec") == new.get("spec"):
            before, after = old.get("status") or {}, new.get("status") or {}
            if before.get("checkpoint") == after.get("checkpoint") and before.get("conditions") == after.get(
                "conditions"
            ):
                return
        obj = new or old
        assert obj is not None
        # a model that became Ready (or changed its checkpoint) unblocks its services: they go first
        urgent = new is not None and is_true((new.get("status") or {}).get("conditions"), "Ready")
        enqueue_all(cache.by_index(KIND, BY_QM, ns_key(obj["metadata"]["namespace"], obj["metadata"]["name"])), urgent)

    def config(old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and old.get("data") == new.get("data"):
            return
        cm = new or old
        assert cm is not None
        ns, name = cm["metadata"]["namespace"], cm["metadata"]["name"]
        enqueue_all(cache.by_index(KIND, BY_CONFIGMAP, ns_key(ns, name)))
        for model in cache.by_index("QuantizedModel", QM_BY_CONFIGMAP, ns_key(ns, name)):
            enqueue_all(cache.by_index(KIND, BY_QM, ns_key(ns, model["metadata"]["name"])))

    def node(old: Obj | None, new: Obj | None) -> None:
        if node_view(old) == node_view(new):
            return
        versions = list(both(old, new))
        for key in cache.stores[KIND].index_values(BY_SELECTOR):
            selector = json.loads(key)
            if any(_matches(n, selector) for n in versions):
                enqueue_all(cache.by_index(KIND, BY_SELECTOR, key), urgent=True)
        enqueue_all(cache.by_index(KIND, UNPLANNED, "yes"), urgent=True)

    cache.add_handler(KIND, own)
    cache.add_optional_listener(lambda _kind, _present: enqueue_all(cache.objects(KIND)))
    cache.add_handler("QuantizedModel", qm)
    cache.add_handler("ConfigMap", config)
    cache.add_handler("Node", node)

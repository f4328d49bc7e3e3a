"""Which cache changes enqueue which QuantizedModels (and the indexes that make those lookups cheap).

- the object itself: any change but its status (its status is only ever written by this operator);
- its Jobs, calibration pods and checkpoint PVC: by the quantfleet.io/quantizedmodel label;
- a ConfigMap it names in spec.source.modelConfigRef: by index;
- a Node a pool could notice (Ready, schedulable, labels, GPUs): the QuantizedModels still waiting for a pool.
"""

from __future__ import annotations

from typing import Any

from quantfleet.api.conditions import condition
from quantfleet.facts.cache import Cache, node_view
from quantfleet.facts.mapping import Enqueue, changed_beyond_status, ns_key, parent_by_label
from quantfleet.render.common import LABEL_QM

Obj = dict[str, Any]
KIND = "QuantizedModel"
BY_CONFIGMAP = "qm-by-configmap"
BY_RECIPE = "qm-by-checkpoint-recipe"
WAITING = "qm-waiting-for-pool"
BY_LABEL = "by-qm-label"


def config_ref(qm: Obj) -> list[str]:
    ref = (((qm.get("spec") or {}).get("source") or {}).get("modelConfigRef")) or {}
    return [ns_key(qm["metadata"]["namespace"], ref["name"])] if ref.get("name") else []


def checkpoint_recipe(qm: Obj) -> list[str]:
    recipe = (((qm.get("status") or {}).get("checkpoint")) or {}).get("recipeHash")
    return [ns_key(qm["metadata"]["namespace"], recipe)] if recipe else []


def waiting_for_pool(qm: Obj) -> list[str]:
    cond = condition((qm.get("status") or {}).get("conditions"), "CheckpointAvailable") or {}
    return ["yes"] if cond.get("reason") == "NoSuitablePool" else []


def by_label(obj: Obj) -> list[str]:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_QM)
    return [ns_key(obj["metadata"].get("namespace"), value)] if value else []


def setup(cache: Cache, enqueue: Enqueue) -> None:
    cache.add_indexer(KIND, BY_CONFIGMAP, config_ref)
    cache.add_indexer(KIND, BY_RECIPE, checkpoint_recipe)
    cache.add_indexer(KIND, WAITING, waiting_for_pool)
    for kind in ("Job", "Pod", "PersistentVolumeClaim"):
        cache.add_indexer(kind, BY_LABEL, by_label)
        cache.add_handler(kind, parent_by_label(LABEL_QM, enqueue))

    def own(old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None and changed_beyond_status(old, new):
            # Calibration is the long pole of everything that serves the model (hours on real GPUs): a new or
            # changed QuantizedModel starts its Job ahead of routine service passes, which could only wait for it.
            enqueue(obj["metadata"]["namespace"], obj["metadata"]["name"], urgent=True)

    def configmap(old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and old.get("data") == new.get("data"):
            return
        cm = new or old
        assert cm is not None
        for qm in cache.by_index(KIND, BY_CONFIGMAP, ns_key(cm["metadata"]["namespace"], cm["metadata"]["name"])):
            enqueue(qm["metadata"]["namespace"], qm["metadata"]["name"])

    def node(old: Obj | None, new: Obj | None) -> None:
        if node_view(old) != node_view(new):
            for qm in cache.by_index(KIND, WAITING, "yes"):
                enqueue(qm["metadata"]["namespace"], qm["metadata"]["name"], urgent=True)

    cache.add_handler(KIND, own)
    cache.add_handler("ConfigMap", configmap)
    cache.add_handler("Node", node)

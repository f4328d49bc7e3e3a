"""Kopf wiring: decorators only. Every trigger runs the same level-triggered reconcile.

create / update / resume / the operator-wide resync loop / an event on an owned child -> reconcile(parent).
Nodes are indexed (kopf.index) so the reconciles read GPU pools from memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import kopf

from quantfleet.api.common import API_GROUP, API_VERSION
from quantfleet.controllers import inferenceservice, quantizedmodel
from quantfleet.controllers.context import Context
from quantfleet.kube.api import Kube, load_client_config
from quantfleet.manager.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS
from quantfleet.render.common import LABEL_ISVC, LABEL_MANAGED_BY, LABEL_QM, MANAGED_BY

log = logging.getLogger("quantfleet.handlers")
RESYNC_SECONDS = float(os.environ.get("QUANTFLEET_RESYNC_SECONDS", "10"))
QM = (API_GROUP, API_VERSION, "quantizedmodels")
ISVC = (API_GROUP, API_VERSION, "inferenceservices")

_ctx: Context | None = None
_nodes: dict[str, dict[str, Any]] = {}
_nodes_lock = threading.Lock()
_nodes_listed = False


def known_nodes() -> list[dict[str, Any]]:
    """The Node view. The first call LISTs Nodes, so no reconcile ever plans against a half-filled watch
    cache right after start-up; watch events keep the view fresh from then on."""
    global _nodes_listed
    with _nodes_lock:
        if not _nodes_listed:
            for node in context().kube.list("Node"):
                _nodes.setdefault(node["metadata"]["name"], node)
            _nodes_listed = True
        return list(_nodes.values())


def context() -> Context:
    global _ctx
    if _ctx is None:
        _ctx = Context(Kube(load_client_config(os.environ.get("KUBECONFIG"))), nodes=known_nodes)
    return _ctx


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=API_GROUP)
    settings.posting.enabled = False  # Events go through quantfleet.kube (one write path)
    settings.watching.server_timeout = 120
    settings.execution.max_workers = 16


# ---- Resync: one operator-wide loop, not per-object Kopf timers -------------------------------------
# (Kopf puts a finalizer on every object that has a timer; a loop here keeps objects free of finalizers
# unless deletion has real work to do.)
def resync_all() -> None:
    ctx = context()
    namespaces: list[str | None] = [n for n in os.environ.get("QUANTFLEET_NAMESPACES", "").split(",") if n] or [None]
    for kind, fn in (("QuantizedModel", quantizedmodel.reconcile), ("InferenceService", inferenceservice.reconcile)):
        for ns in namespaces:
            for obj in ctx.kube.list(kind, ns):
                try:
                    _run(kind, fn, obj)
                except Exception:  # one broken object never stops the others' resync
                    log.exception(
                        "resync failed kind=%s object=%s/%s",
                        kind,
                        obj["metadata"].get("namespace"),
                        obj["metadata"].get("name"),
                    )


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    async def loop() -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await asyncio.to_thread(resync_all)
            except Exception:
                log.exception("resync pass failed")

    memo["resync"] = asyncio.create_task(loop())


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("resync")
    if task is not None:
        task.cancel()


# ---- Nodes: an in-memory view, kept by watch events -----------------------------------------------
@kopf.on.event("", "v1", "nodes")
def node_event(type: str, body: kopf.Body, name: str, **_: Any) -> None:
    with _nodes_lock:
        if type == "DELETED":
            _nodes.pop(name, None)
        else:
            _nodes[name] = {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}


def _run(kind: str, fn: Any, body: Any) -> None:
    start = time.monotonic()
    try:
        fn(context(), _plain(body))
    except Exception:
        RECONCILE_ERRORS.labels(kind).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)


def _plain(body: Any) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body["metadata"]),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


# ---- QuantizedModel -------------------------------------------------------------------------------
@kopf.on.resume(*QM)
@kopf.on.create(*QM)
@kopf.on.update(*QM)
def qm_changed(body: kopf.Body, **_: Any) -> None:
    _run("QuantizedModel", quantizedmodel.reconcile, body)


def _retention_delete(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("storage") or {}).get("retention") == "Delete")


# A finalizer only where deletion has work to do (retention: Delete); Retain objects never block deletion.
@kopf.on.delete(*QM, when=_retention_delete)
def qm_deleted(body: kopf.Body, started: Any, **_: Any) -> None:
    began = started.timestamp() if hasattr(started, "timestamp") else time.time()
    if not quantizedmodel.finalize(context(), _plain(body), began, time.time()):
        raise kopf.TemporaryError("waiting for the checkpoint cleanup Job", delay=3)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_QM: kopf.PRESENT})
def qm_child_job(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    _reconcile_owner("QuantizedModel", quantizedmodel.reconcile, body, namespace)


# ---- InferenceService -----------------------------------------------------------------------------
@kopf.on.resume(*ISVC)
@kopf.on.create(*ISVC)
@kopf.on.update(*ISVC)
def isvc_changed(body: kopf.Body, **_: Any) -> None:
    _run("InferenceService", inferenceservice.reconcile, body)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_ISVC: kopf.PRESENT})
def isvc_child_deployment(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    _reconcile_owner("InferenceService", inferenceservice.reconcile, body, namespace)


@kopf.on.event(*QM)
def qm_for_services(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
    """A QuantizedModel that becomes Ready unblocks the InferenceServices waiting for it."""
    ctx = context()
    for isvc in ctx.kube.list("InferenceService", namespace):
        ref = ((isvc.get("spec") or {}).get("model") or {}).get("quantizedModelRef") or {}
        if ref.get("name") == name:
            _run("InferenceService", inferenceservice.reconcile, isvc)


def _reconcile_owner(kind: str, fn: Any, child: Any, namespace: str | None) -> None:
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            owner = context().kube.get(kind, ref["name"], namespace)
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                _run(kind, fn, owner)

"""QuantizedModel reconcile: gather (caches) -> decide (pure) -> the one writer. Level-triggered, one path for all."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from quantfleet.facts.cache import Cache
from quantfleet.facts.mapping import Enqueue
from quantfleet.kube.writer import NotOwned, Writer
from quantfleet.quantizedmodel import decide, handlers
from quantfleet.quantizedmodel.gather import gather

log = logging.getLogger("quantfleet.quantizedmodel")


class QuantizedModelController:
    kind = handlers.KIND

    def __init__(self, cache: Cache, writer: Writer, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.cache = cache
        self.writer = writer
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def setup(self, cache: Cache, enqueue: Enqueue) -> None:
        handlers.setup(cache, enqueue)

    def reconcile(self, namespace: str, name: str) -> float | None:
        qm = self.cache.get(self.kind, namespace, name)
        if qm is None:
            return None
        if qm["metadata"].get("deletionTimestamp") and decide.FINALIZER not in (qm["metadata"].get("finalizers") or []):
            return None
        facts = gather(self.cache, qm, self.clock())
        out = decide.outcome(qm, facts)
        try:
            self.writer.execute(qm, out, lambda o: self.cache.get(o["kind"], namespace, o["metadata"]["name"]))
        except NotOwned as exc:
            log.warning("quantizedmodel child conflict object=%s/%s error=%s", namespace, name, exc)
            self.writer.event(qm, "Warning", "ResourceConflict", str(exc), facts.now)
            return None
        self.writer.record(qm, out, facts.now)
        return out.requeue_after

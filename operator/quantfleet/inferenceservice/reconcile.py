"""InferenceService reconcile: gather (caches) -> decide (pure) -> the one writer. Level-triggered, one path for all."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from quantfleet.facts.cache import Cache
from quantfleet.facts.mapping import Enqueue
from quantfleet.inferenceservice import decide, handlers
from quantfleet.inferenceservice.gather import gather
from quantfleet.kube.writer import NotOwned, Writer

log = logging.getLogger("quantfleet.inferenceservice")


class InferenceServiceController:
    kind = handlers.KIND

    def __init__(self, cache: Cache, writer: Writer, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.cache = cache
        self.writer = writer
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def setup(self, cache: Cache, enqueue: Enqueue) -> None:
        handlers.setup(cache, enqueue)

    def reconcile(self, namespace: str, name: str) -> float | None:
        isvc = self.cache.get(self.kind, namespace, name)
        if isvc is None or isvc["metadata"].get("deletionTimestamp"):
            return None  # children go with it (owner references)
        facts = gather(self.cache, isvc, self.clock())
        out = decide.outcome(isvc, facts)
        try:
            self.writer.execute(isvc, out, lambda o: self.cache.get(o["kind"], namespace, o["metadata"]["name"]))
        except NotOwned as exc:
            log.warning("inferenceservice child conflict object=%s/%s error=%s", namespace, name, exc)
            out = decide.conflict(isvc, str(exc), facts)
        self.writer.record(isvc, out, facts.now)
        return out.requeue_after

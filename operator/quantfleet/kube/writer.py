"""The one path that changes the cluster: apply on drift, create-once, guarded deletes, status, Events.

Why one writer: every write the operator makes goes through the same three rules, so they cannot be forgotten in
one controller and kept in another:

1. **Write only on drift.** `ensure` compares the desired object with the cached live one and skips the request
   when nothing the operator owns differs: the hash of the last applied object (an annotation the writer stamps)
   must match, and every field of the desired object must still hold its value in the live one (quantities are
   compared by value, server-added defaults are ignored). A `kubectl edit` of an owned field is drift and is undone;
   a field the server or another manager added is not. Status is patched only when it differs.
2. **Never take over or delete what the operator does not control.** Apply and delete check the live object's
   controller owner reference against the parent's uid; deletes carry a uid precondition, so a same-named object
   created in between is never removed.
3. **Read your own writes.** Every response is handed to `observe` (the watch caches' write-through), so the next
   reconcile sees what was just written instead of a stale copy that would look like drift.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from quantfleet.kube.client import Kube
from quantfleet.render.common import controlled_by, short_hash
from quantfleet.render.compare import is_subset
from quantfleet.render.outcome import Outcome

log = logging.getLogger("quantfleet.writer")
Obj = dict[str, Any]
APPLIED_HASH = "quantfleet.io/applied-hash"
# Field manager that holds a field the operator hands to another controller (an autoscaled Deployment's replicas):
# when the operator's own apply stops setting a field it was the only manager of, the API server would reset it.
HANDOVER_MANAGER = "quantfleet-handover"


class NotOwned(RuntimeError):
    """The live object exists and is not controlled by the expected owner: the operator refuses to touch it."""


def refuse_foreign(desired: Mapping[str, Any], live: Mapping[str, Any] | None, owner_uid: str | None) -> None:
    """Raise NotOwned when `live` exists and its controller is not `owner_uid` (None: no owner to check)."""
    if live is not None and owner_uid is not None and not controlled_by(live, owner_uid):
        meta = desired["metadata"]
        raise NotOwned(
            f"{desired['kind']} {meta.get('namespace')}/{meta['name']} exists and is not owned by this resource;"
            " refusing to take it over"
        )


def _owned(obj: Mapping[str, Any]) -> bool:
    """Children with an owner reference are guarded by it; the rest (checkpoint PVCs) by the caller's checks."""
    return bool(obj.get("metadata", {}).get("ownerReferences"))


def applied_hash(desired: Mapping[str, Any]) -> str:
    return short_hash(dict(desired), 16)


def drifted(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `desired` would change `live` in a field the operator owns."""
    if live is None:
        return True
    stamped = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH)
    return stamped != applied_hash(desired) or not is_subset(desired, live)


class EventRecorder:
    """Posts Events from a thread of its own, as client-go's recorder does: an Event never delays a reconcile.

    Bounded: when the API server falls behind, the oldest unsent Events are dropped (and counted), never the work."""

    def __init__(self, post: Callable[[Obj], None], capacity: int = 2000) -> None:
        self.post = post
        self.pending: queue.Queue[Obj] = queue.Queue(capacity)
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, event: Obj) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()
        while True:
            try:
                self.pending.put_nowait(event)
                return
            except queue.Full:
                try:
                    self.pending.get_nowait()
                    self.pending.task_done()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while True:
            event = self.pending.get()
            try:
                self.post(event)
            except Exception as exc:
                meta = event.get("involvedObject") or {}
                log.warning(
                    "event not recorded object=%s/%s reason=%s error=%s",
                    meta.get("namespace"),
                    meta.get("name"),
                    event.get("reason"),
                    exc,
                )
            finally:
                self.pending.task_done()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the Events recorded so far were sent: shutdown, tests."""
        done = threading.Event()

        def wait() -> None:
            self.pending.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)


class Writer:
    def __init__(
        self,
        kube: Kube,
        observe: Callable[[Obj], None] | None = None,
        component: str = "quantfleet",
        complete: frozenset[str] = frozenset(),
    ):
        self.kube = kube
        self.observe = observe or (lambda _obj: None)
        self.component = component
        self.complete = complete  # kinds whose cache holds every object: missing there means missing
        self.events = EventRecorder(kube.post_event)

    def _seen(self, obj: Obj | None) -> Obj | None:
        if obj is not None:
            self.observe(obj)
        return obj

    def ensure(self, desired: Obj, live: Obj | None, owner_uid: str | None) -> Obj | None:
        """Server-side apply `desired` if it drifted from `live`; returns the new object, or None (no write).

        For a kind cached through a label selector, `live` cannot show a same-named object someone else made: before
        the first apply of such a name the writer reads it once (creation only, never at steady state)."""
        meta = desired["metadata"]
        if live is None and desired["kind"] not in self.complete:
            live = self.kube.get(desired["kind"], meta["name"], meta.get("namespace"))
        refuse_foreign(desired, live, owner_uid)
        if not drifted(desired, live):
            return None
        stamped = {
            **desired,
            "metadata": {
                **desired["metadata"],
                "annotations": {**(desired["metadata"].get("annotations") or {}), APPLIED_HASH: applied_hash(desired)},
            },
        }
        log.info(
            "apply kind=%s object=%s/%s reason=%s",
            desired["kind"],
            desired["metadata"].get("namespace"),
            desired["metadata"]["name"],
            "missing" if live is None else "drift",
        )
        return self._seen(self.kube.apply(stamped))

    def create(self, desired: Obj, live: Obj | None, owner_uid: str | None) -> Obj | None:
        """Create an immutable child once (None when it exists: a cache that lags never causes a duplicate)."""
        meta = desired["metadata"]
        if live is None:
            log.info("create kind=%s object=%s/%s", desired["kind"], meta.get("namespace"), meta["name"])
            created = self.kube.create(desired)
            if created is not None:
                return self._seen(created)
            live = self.kube.get(desired["kind"], meta["name"], meta.get("namespace"))  # 409: whose is it?
        refuse_foreign(desired, live, owner_uid)
        return None

    def delete(self, live: Obj, owner_uid: str | None) -> bool:
        """Delete a child the parent controls (uid precondition: never a same-named successor)."""
        meta = live["metadata"]
        if meta.get("deletionTimestamp"):
            return False
        if owner_uid is not None and not controlled_by(live, owner_uid):
            raise NotOwned(f"{live['kind']} {meta.get('namespace')}/{meta['name']} is not ours to delete")
        log.info("delete kind=%s object=%s/%s", live["kind"], meta.get("namespace"), meta["name"])
        return self.kube.delete(live["kind"], meta["name"], meta.get("namespace"), uid=meta.get("uid"))

    def status(self, obj: Obj, status: Obj) -> bool:
        """Make `obj`'s status equal `status` (keys that disappeared are nulled); False when it already is."""
        prev: Obj = obj.get("status") or {}
        if prev == status:
            return False
        patch = {**status, **{k: None for k in prev if k not in status}}
        meta = obj["metadata"]
        self._seen(self.kube.patch_status(obj["kind"], meta["name"], meta["namespace"], patch))
        return True

    def finalizers(self, obj: Obj, finalizers: list[str]) -> None:
        meta = obj["metadata"]
        if list(meta.get("finalizers") or []) == finalizers:
            return
        patch = {"finalizers": finalizers or None, "resourceVersion": meta.get("resourceVersion")}
        self._seen(self.kube.patch_metadata(obj["kind"], meta["name"], meta.get("namespace"), patch))

    def execute(self, parent: Obj, out: Outcome, live: Callable[[Obj], Obj | None]) -> None:
        """Make the children match an Outcome (raises NotOwned before touching anything it does not own)."""
        uid = parent["metadata"]["uid"]
        for obj in out.hand_over:
            current = live(obj)
            if current is None:
                continue
            refuse_foreign(obj, current, uid)
            log.info(
                "hand over kind=%s object=%s/%s", obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]
            )
            self._seen(self.kube.apply(obj, field_manager=HANDOVER_MANAGER))
        for obj in out.create:
            self.create(obj, live(obj), uid if _owned(obj) else None)
        for obj in out.apply:
            self.ensure(obj, live(obj), uid if _owned(obj) else None)
        for obj in out.delete:
            self.delete(obj, uid if _owned(obj) else None)

    def record(self, parent: Obj, out: Outcome, now: str) -> None:
        """Write an Outcome's status, finalizers and Events."""
        if out.status is not None:
            self.status(parent, out.status)
        if out.finalizers is not None:
            self.finalizers(parent, list(out.finalizers))
        for ev in out.events:
            self.event(parent, ev.type, ev.reason, ev.message, now)

    def event(self, obj: Mapping[str, Any], etype: str, reason: str, message: str, now: str) -> None:
        """A core/v1 Event about `obj`, sent in the background (best effort: it never fails or delays a reconcile)."""
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'obj')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "type": etype,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
        }
        self.events.record(event)

"""What a reconcile needs from the outside world, in one object: API access, the Node view, the clock.

Handlers build it once at startup; tests can build one against the sandbox's API server.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api.conditions import Cond, merge_conditions, transitions
from quantfleet.kube.api import Kube, post_event

Obj = dict[str, Any]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Context:
    kube: Kube
    nodes: Callable[[], list[Obj]]
    now: Callable[[], str] = utc_now
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, uid: str) -> threading.Lock:
        """One reconcile at a time per object (handlers, timers and child events may overlap)."""
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        post_event(self.kube, obj, etype, reason, message, self.now())


def status_patch(previous: Obj | None, new: Obj) -> Obj:
    """A merge patch that makes status equal `new`: keys that disappeared are nulled."""
    patch = dict(new)
    for key in previous or {}:
        if key not in patch:
            patch[key] = None
    return patch


def reconcile_live(ctx: Context, kind: str, body: Obj, fn: Callable[[Context, Obj], None]) -> None:
    """Run `fn` on the freshest copy of the object, one pass at a time per object; skip objects being deleted."""
    meta = body["metadata"]
    with ctx.lock(meta["uid"]):
        live = ctx.kube.get(kind, meta["name"], meta["namespace"])
        if live is None or live["metadata"].get("deletionTimestamp"):
            return
        fn(ctx, live)


def write_status(ctx: Context, kind: str, body: Obj, fields: Obj, conds: list[Cond]) -> list[Mapping[str, Any]]:
    """Write the rebuilt status (only when it differs); return the conditions that changed, for Events."""
    meta = body["metadata"]
    prev: Obj = body.get("status") or {}
    conditions = merge_conditions(prev.get("conditions"), conds, ctx.now(), meta.get("generation"))
    new = {
        **{k: v for k, v in fields.items() if v is not None},
        "conditions": conditions,
        "observedGeneration": meta.get("generation"),
    }
    if prev == new:
        return []
    ctx.kube.patch_status(kind, meta["name"], meta["namespace"], status_patch(prev, new))
    return transitions(prev.get("conditions"), conditions)

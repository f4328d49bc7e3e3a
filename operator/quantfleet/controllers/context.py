"""What a reconcile needs from the outside world, in one object: API access, the Node view, the clock.

Handlers build it once at startup; tests can build one against the sandbox's API server.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

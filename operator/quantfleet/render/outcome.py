"""What one reconcile pass wants done: the result of the pure core, executed by the one writer.

Each custom resource's pure core maps {the object, the cluster facts it depends on} to an `Outcome`: the children
that must exist (applied when they drift), immutable children to create once, owned children to delete, the full
status to hold, Events to post, and the finalizers the object should carry. The golden tests compare Outcomes;
the reconcile hands them to quantfleet.kube.writer. Pure: plain values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    apply: tuple[Obj, ...] = ()
    create: tuple[Obj, ...] = ()
    delete: tuple[Obj, ...] = ()
    status: Obj | None = None  # the whole status stanza, wire form; None: leave it alone
    events: tuple[Event, ...] = ()
    finalizers: tuple[str, ...] | None = None  # the list the object should carry; None: leave it alone
    requeue_after: float | None = None  # come back even without an event (time-based conditions only)
    hand_over: tuple[Obj, ...] = ()

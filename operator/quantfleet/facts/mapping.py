"""Helpers for event handlers: which changes matter, and which parent a child event belongs to.

A controller's handlers turn a cache change (old, new) into the keys of the objects that must be reconciled.
These helpers keep that cheap and precise: a parent's own status write (which only the operator makes) does not
enqueue it again, and a child enqueues exactly its parent, found by the label the operator put on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Obj = dict[str, Any]
# (namespace, name, urgent): urgent for work whose blocker just cleared; it goes ahead of routine passes
Enqueue = Callable[..., None]
_META = ("generation", "labels", "annotations", "finalizers", "deletionTimestamp", "uid")


def changed_beyond_status(old: Obj | None, new: Obj | None) -> bool:
    """Anything but status (and resourceVersion) changed: spec, labels, annotations, finalizers, deletion."""
    if old is None or new is None:
        return True
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return any(om.get(k) != nm.get(k) for k in _META)


def label(obj: Obj | None, key: str) -> str | None:
    return ((obj or {}).get("metadata", {}).get("labels") or {}).get(key)


def both(old: Obj | None, new: Obj | None) -> Iterator[Obj]:
    """The versions of an object an event carries (one or two)."""
    yield from (o for o in (old, new) if o is not None)


def parent_by_label(key: str, enqueue: Enqueue) -> Callable[[Obj | None, Obj | None], None]:
    """A handler for child events: enqueue the parent named by the child's `key` label (old and new version)."""

    def handler(old: Obj | None, new: Obj | None) -> None:
        seen = set()
        for obj in both(old, new):
            parent = label(obj, key)
            ns = obj["metadata"].get("namespace")
            if parent and ns and (ns, parent) not in seen:
                seen.add((ns, parent))
                enqueue(ns, parent)

    return handler


def ns_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}"

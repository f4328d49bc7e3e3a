"""A thread-safe, indexed object store: what one watch cache holds for one kind.

Keys are "namespace/name" ("name" for cluster-scoped objects). Indexers map an object to index values
(`by_label`, `by_owner`, `configmap refs` ...), kept up to date on every change so a lookup never scans.
Event handlers run after each change with (old, new): `new` None is a deletion, `old` None an addition.

`observe` is the write-through the one writer uses: an object the operator just wrote replaces the cached copy
when it is newer, and the watch event that follows with the same resourceVersion is then a no-op.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]
Indexer = Callable[[Obj], Iterable[str]]
Handler = Callable[[Obj | None, Obj | None], None]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def _rv(obj: Obj | None) -> int | None:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def newer(candidate: Obj, current: Obj | None) -> bool:
    """Whether `candidate` is a later version than `current` (resourceVersions compared as etcd revisions)."""
    a, b = _rv(candidate), _rv(current)
    return current is None or a is None or b is None or a > b


class Store:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, Indexer] = {}
        self._index: dict[str, dict[str, set[str]]] = {}
        self._handlers: list[Handler] = []
        self._lock = threading.RLock()
        self.version = 0  # bumped on every change: cheap "did anything change" for derived snapshots

    # -- configuration ---------------------------------------------------------------------------
    def add_indexer(self, name: str, fn: Indexer) -> None:
        with self._lock:
            self._indexers[name] = fn
            self._index[name] = {}
            for key, obj in self._items.items():
                for value in fn(obj):
                    self._index[name].setdefault(value, set()).add(key)

    def add_handler(self, fn: Handler) -> None:
        self._handlers.append(fn)

    # -- reads -----------------------------------------------------------------------------------
    def get(self, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            return self._items.get(f"{namespace}/{name}" if namespace else name)

    def objects(self, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            if namespace is None:
                return list(self._items.values())
            prefix = f"{namespace}/"
            return [o for k, o in self._items.items() if k.startswith(prefix)]

    def by_index(self, name: str, value: str) -> list[Obj]:
        with self._lock:
            return [self._items[k] for k in sorted(self._index[name].get(value, ())) if k in self._items]

    def index_values(self, name: str) -> list[str]:
        with self._lock:
            return [v for v, keys in self._index[name].items() if keys]

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # -- writes (the informer and the writer's write-through) -------------------------------------------
    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            for value in fn(obj):
                keys = self._index[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._index[name][value]

    def _put(self, obj: Obj) -> Obj | None:
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            for value in fn(obj):
                self._index[name].setdefault(value, set()).add(key)
        self.version += 1
        return old

    def _remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            self.version += 1
        return old

    def _notify(self, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            handler(old, new)

    def upsert(self, obj: Obj) -> None:
        """ADDED/MODIFIED from the watch. Same resourceVersion as cached (our own write seen again): no event."""
        with self._lock:
            current = self._items.get(key_of(obj))
            if current is not None and _rv(current) is not None and _rv(current) == _rv(obj):
                return
            old = self._put(obj)
        self._notify(old, obj)

    def delete(self, obj: Obj) -> None:
        with self._lock:
            old = self._remove(key_of(obj))
        if old is not None:
            self._notify(old, None)

    def observe(self, obj: Obj) -> None:
        """Write-through of an object the operator just wrote (only if newer than the cached copy)."""
        with self._lock:
            current = self._items.get(key_of(obj))
            if not newer(obj, current):
                return
            old = self._put(obj)
        self._notify(old, obj)

    def replace(self, objs: list[Obj], namespace: str | None) -> None:
        """A relist: the list is the truth for `namespace` (None: all). Objects missing from it were deleted
        while the watch was down and get a deletion event; changed ones an update; unchanged ones nothing."""
        events: list[tuple[Obj | None, Obj | None]] = []
        with self._lock:
            listed = {key_of(o): o for o in objs}
            prefix = f"{namespace}/" if namespace else None
            for key in [k for k in self._items if prefix is None or k.startswith(prefix)]:
                if key not in listed:
                    events.append((self._remove(key), None))
            for key, obj in listed.items():
                current = self._items.get(key)
                if current is not None and _rv(current) == _rv(obj) and _rv(obj) is not None:
                    continue
                if current is not None and not newer(obj, current):
                    continue  # our write-through is already ahead of this list
                events.append((self._put(obj), obj))
        for old, new in events:
            self._notify(old, new)

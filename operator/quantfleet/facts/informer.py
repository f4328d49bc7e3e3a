"""List-then-watch one kind (in one namespace, or cluster-wide) into a Store, the way client-go's reflector does.

- LIST in pages, then WATCH from the list's resourceVersion with bookmarks, so reconnects resume where the stream
  stopped and an idle watch never ages out.
- 410 Gone (the resourceVersion was compacted away): relist, and the Store's `replace` turns the difference into
  events: objects deleted while the watch was down are removed and their parents enqueued, changed ones updated.
  Nothing is missed and nothing stale survives (Kopf 1.45's relist re-emits existing objects but never drops the
  vanished ones from its indexes: the reason this project keeps its own caches, see docs/controller.md).
- Other errors (API server down, connection reset): back off exponentially (jittered, capped) and resume.
- `transform` trims objects before they are stored (managedFields, and for Nodes everything the pool view does
  not read), which is what keeps a 1,000-node cache small.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from quantfleet.facts.store import Store
from quantfleet.kube.client import KINDS, Kube, WatchExpired

log = logging.getLogger("quantfleet.informer")
Obj = dict[str, Any]


class Informer:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        watch_timeout: int = 600,
    ) -> None:
        self.kube = kube
        self.store = store
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.transform = transform or strip_managed_fields
        self.watch_timeout = watch_timeout
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.namespace or '*'}"

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name=f"informer-{self.name}", daemon=True)
        self._thread.start()

    def _list(self) -> None:
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.kube.list_page(self.kind, self.namespace, self.label_selector, continue_token=token)
            items.extend(self.transform(o) for o in page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                self.resource_version = meta.get("resourceVersion")
                break
        self.store.replace(items, self.namespace)
        self.relists += 1
        self.synced.set()
        log.debug(
            "listed kind=%s namespace=%s objects=%d rv=%s", self.kind, self.namespace, len(items), self.resource_version
        )

    def _watch(self, stop: threading.Event) -> None:
        assert self.resource_version is not None
        timeout = int(self.watch_timeout * random.uniform(1.0, 1.25))  # spread reconnects over time
        for event in self.kube.watch(self.kind, self.namespace, self.resource_version, self.label_selector, timeout):
            obj = event.get("object") or {}
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            etype = event.get("type")
            if etype == "BOOKMARK":
                self.resource_version = rv or self.resource_version
            elif etype in ("ADDED", "MODIFIED"):
                obj.setdefault("apiVersion", self.store_api_version())
                obj.setdefault("kind", self.kind)
                self.store.upsert(self.transform(obj))
                self.resource_version = rv or self.resource_version
            elif etype == "DELETED":
                obj.setdefault("kind", self.kind)
                self.store.delete(obj)
                self.resource_version = rv or self.resource_version
            if stop.is_set():
                return

    def store_api_version(self) -> str:
        return KINDS[self.kind].api_version

    def run(self, stop: threading.Event) -> None:
        failures = 0
        need_list = self.resource_version is None  # a restarted informer resumes its watch where it stopped
        while not stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch(stop)
                failures = 0
            except WatchExpired as exc:
                log.info("watch expired, relisting kind=%s namespace=%s reason=%s", self.kind, self.namespace, exc)
                need_list = True
            except Exception as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                log.warning(
                    "watch failed kind=%s namespace=%s error=%s retry_in=%.1fs",
                    self.kind,
                    self.namespace,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    delay,
                )
                stop.wait(delay)


def strip_managed_fields(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj

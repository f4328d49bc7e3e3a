"""The controller manager: watch caches -> event handlers -> one work queue -> workers -> reconciles.

What controller-runtime's Manager does, in Python threads:

- Every replica starts the watch caches at once (a standby's caches are warm when it takes over).
- Only the leader (coordination.k8s.io Lease, quantfleet.kube.lease) runs workers. On becoming leader it enqueues
  every object once; from then on only events enqueue work: each controller's handlers map a change (of its own
  objects, their children, a referenced ConfigMap or QuantizedModel, a Node in a pool it uses) to the keys that
  care. A leader that loses its Lease exits: the Deployment restarts it as a standby.
- One worker per key at a time, `workers` keys at once; a reconcile that raises is retried with jittered
  exponential backoff; a successful one resets it. A periodic resync (minutes; a safety net, not the engine)
  enqueues every cached object, without a LIST.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from quantfleet.facts.cache import COMPLETE, WATCHED, Cache
from quantfleet.facts.queue import WorkQueue
from quantfleet.kube.client import Kube, load_client_config
from quantfleet.kube.lease import LeaderElector, LeaseConfig
from quantfleet.kube.writer import Writer
from quantfleet.manager import metrics

log = logging.getLogger("quantfleet.manager")
Key = tuple[str, str, str]  # (kind, namespace, name)
Enqueue = Callable[..., None]  # (namespace, name, urgent=False) of the controller's own kind


class Controller(Protocol):
    kind: str

    def setup(self, cache: Cache, enqueue: Enqueue) -> None:
        """Register indexers and event handlers that enqueue this controller's objects."""

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One level-triggered pass; returns seconds until a time-based re-check, or None."""


@dataclass
class Options:
    namespaces: list[str] | None = None
    workers: int = 8
    resync_seconds: float = 600.0
    leader_election: bool = True
    lease: LeaseConfig | None = None
    identity: str = ""
    watch_timeout: int = 600  # seconds; each watch is re-opened after 1-1.25 x this (a read, at rest)


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


class Manager:
    def __init__(
        self,
        options: Options,
        controllers: Callable[[Cache, Writer], list[Controller]],
        kubeconfig: str | None = None,
    ) -> None:
        self.options = options
        cfg = load_client_config(kubeconfig)
        # watches hold their connection for minutes: they get a client of their own, sized to them
        watches = len(WATCHED) * len(options.namespaces or [None])
        self.cache = Cache(Kube(cfg, watches + 2, metrics.count_request), options.namespaces, options.watch_timeout)
        self.writer_client = Kube(cfg, options.workers + 4, metrics.count_request)
        self.writer = Writer(self.writer_client, observe=self.cache.observe, complete=COMPLETE)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.controllers = {c.kind: c for c in controllers(self.cache, self.writer)}
        for kind, controller in self.controllers.items():
            controller.setup(self.cache, self._enqueuer(kind))
        self.stop = threading.Event()
        self.leading = False
        self._reconciled: dict[str, set[tuple[str, str]]] = {kind: set() for kind in self.controllers}
        self._lock = threading.Lock()
        self.exit_code = 0
        lease = options.lease or LeaseConfig(namespace=(options.namespaces or ["default"])[0])
        self.elector = LeaderElector(self.writer_client, lease, options.identity or default_identity())

    def _enqueuer(self, kind: str) -> Enqueue:
        def enqueue(namespace: str, name: str, urgent: bool = False) -> None:
            self.queue.add((kind, namespace, name), urgent)

        return enqueue

    def reconciled_counts(self) -> dict[str, int]:
        with self._lock:
            return {kind: len(keys) for kind, keys in self._reconciled.items()}

    # -- workers ---------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            key, waited = item
            metrics.QUEUE_WAIT.observe(waited)
            kind, ns, name = key
            start = time.monotonic()
            try:
                requeue = self.controllers[kind].reconcile(ns, name)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(kind).inc()
                delay = self.queue.add_rate_limited(key)
                log.exception("reconcile failed kind=%s object=%s/%s retry_in=%.1fs", kind, ns, name, delay)
            else:
                self.queue.forget(key)
                with self._lock:
                    self._reconciled[kind].add((ns, name))
                if requeue is not None:
                    self.queue.add_after(key, requeue)
            finally:
                metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)
                self.queue.done(key)

    def enqueue_all(self) -> None:
        # QuantizedModels first (the services that serve them can only wait for their checkpoints)
        for kind in sorted(self.controllers, key=lambda k: k != "QuantizedModel"):
            for obj in self.cache.objects(kind):
                meta = obj["metadata"]
                self.queue.add((kind, meta["namespace"], meta["name"]))

    def _resync_loop(self) -> None:
        while not self.stop.wait(self.options.resync_seconds):
            log.info("resync: enqueue every cached object (safety net)")
            self.enqueue_all()

    def _start_leading(self) -> None:
        self.leading = True
        self.enqueue_all()
        for i in range(self.options.workers):
            threading.Thread(target=self._worker, name=f"worker-{i}", daemon=True).start()
        threading.Thread(target=self._resync_loop, name="resync", daemon=True).start()

    def _lost(self) -> None:
        self.leading = False
        self.exit_code = 1
        self.stop.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until `stop` is set (a signal) or leadership is lost (exit code 1)."""
        self.cache.start(self.stop)
        if not self.cache.wait_synced(120):
            log.error("watch caches did not sync within 120 s; exiting so the pod restarts")
            return 1
        log.info("caches synced: %s", {k: len(s) for k, s in self.cache.stores.items()})
        if self.options.leader_election:
            threading.Thread(
                target=self.elector.run, args=(self.stop, self._start_leading, self._lost), name="leader", daemon=True
            ).start()
        else:
            self._start_leading()
        self.stop.wait()
        self.queue.shutdown()
        self.writer.events.flush(2.0)
        if self.options.leader_election:
            self.elector.release()
        return self.exit_code

"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection package does it.

Why a Lease and not Kopf peering: a Lease is the Kubernetes convention (kube-controller-manager, every
controller-runtime operator), needs no CRD of its own, is visible with `kubectl get lease`, and gives the
standby a bounded takeover time. Semantics:

- The holder renews every `renew_seconds`. A candidate takes the Lease only when the record it last observed has
  not changed for `lease_seconds` of its *own* clock (so clock skew between nodes does not matter) or when the
  holder released it. Writes use the Lease's resourceVersion (optimistic concurrency): two candidates can never
  both win.
- A leader that cannot renew for `renew_deadline` stops leading (the caller exits the process) before any
  standby can take over, so there is never a moment with two leaders.
- On a clean shutdown the leader releases the Lease (empty holder), so its successor starts at once.

Takeover after `kill -9` of the leader: at most lease_seconds + retry_seconds (10 s with the defaults).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from quantfleet.kube.client import Kube

log = logging.getLogger("quantfleet.leader")
Obj = dict[str, Any]


def _micro_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseConfig:
    namespace: str
    name: str = "quantfleet-operator"
    lease_seconds: float = 8.0
    renew_seconds: float = 2.5
    renew_deadline: float = 6.0
    retry_seconds: float = 1.0


class LeaderElector:
    def __init__(
        self, kube: Kube, config: LeaseConfig, identity: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.monotonic = monotonic
        self.cfg = config
        self.identity = identity
        self._observed: tuple[str | None, str | None] = (None, None)  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._held: Obj | None = None  # the Lease as our last successful write left it: renewals need no GET
        self.leading = threading.Event()

    # -- one attempt -----------------------------------------------------------------------------
    def _spec(self, now: float, acquire: bool, transitions: int) -> Obj:
        spec: Obj = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.cfg.lease_seconds)),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = _micro_time(now)
        return spec

    def try_acquire_or_renew(self) -> bool:
        now = time.time()
        mono = self.monotonic()
        if self._held is not None:  # renewing: one PUT on the copy we wrote; a conflict means re-read
            held = self._held
            held["spec"] = {**held["spec"], "renewTime": _micro_time(now)}
            updated = self.kube.replace(held)
            self._held = updated
            if updated is not None:
                self._observed, self._observed_at = (self.identity, updated["spec"].get("renewTime")), mono
                return True
        lease = self.kube.get("Lease", self.cfg.name, self.cfg.namespace)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                "spec": self._spec(now, True, 0),
            }
            self._held = self.kube.create(body)
            return self._held is not None
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        record = (holder, spec.get("renewTime"))
        if record != self._observed:
            self._observed, self._observed_at = record, mono
        mine = holder == self.identity
        expired = holder is None or mono - self._observed_at > float(
            spec.get("leaseDurationSeconds") or self.cfg.lease_seconds
        )
        if not mine and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        existing_spec = dict(spec)
        existing_spec.update(self._spec(now, not mine, transitions))
        if mine and spec.get("acquireTime"):
            existing_spec["acquireTime"] = spec["acquireTime"]
        lease["spec"] = existing_spec
        updated = self.kube.replace(lease)
        self._held = updated
        if updated is None:
            return False
        new_spec = updated.get("spec") or {}
        self._observed, self._observed_at = (new_spec.get("holderIdentity"), new_spec.get("renewTime")), mono
        return True

    def release(self) -> None:
        if not self.leading.is_set():
            return
        try:
            lease = self.kube.get("Lease", self.cfg.name, self.cfg.namespace)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {
                    **lease["spec"],
                    "holderIdentity": None,
                    "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(time.time()),
                }
                self.kube.replace(lease)
                self._held = None
                log.info("leader lease released lease=%s/%s", self.cfg.namespace, self.cfg.name)
        except Exception as exc:  # best effort: the lease expires anyway
            log.warning("could not release the leader lease: %s", exc)
        self.leading.clear()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_started: Callable[[], None], on_lost: Callable[[], None]) -> None:
        """Block until leading (calls on_started), then renew until `stop` or until renewing fails (on_lost)."""
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    break
            except (ApiException, OSError) as exc:
                log.warning("leader election attempt failed: %s", exc)
            stop.wait(self.cfg.retry_seconds)
        if stop.is_set():
            return
        self.leading.set()
        log.info("became leader identity=%s lease=%s/%s", self.identity, self.cfg.namespace, self.cfg.name)
        on_started()
        last_renew = time.monotonic()
        while not stop.wait(self.cfg.renew_seconds):
            try:
                ok = self.try_acquire_or_renew()
            except (ApiException, OSError) as exc:
                log.warning("lease renewal failed: %s", exc)
                ok = False
            if ok:
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew > self.cfg.renew_deadline:
                log.error("leadership lost identity=%s: no renewal for %.1fs", self.identity, self.cfg.renew_deadline)
                self.leading.clear()
                on_lost()
                return

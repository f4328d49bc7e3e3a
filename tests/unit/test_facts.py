"""The controller core's building blocks, in isolation: indexed store, work queue, drift detection, leader election.

These are the pure(ish) halves; the same pieces run against a real API server in tests/e2e/test_controller_core.py
(relist after 410 Gone, leader failover under kill -9, API server restarts).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest

from quantfleet.facts.queue import WorkQueue
from quantfleet.facts.store import Store
from quantfleet.kube.lease import LeaderElector, LeaseConfig
from quantfleet.kube.writer import APPLIED_HASH, NotOwned, Writer, applied_hash, drifted, is_subset

Obj = dict[str, Any]


def obj(name: str, rv: int, ns: str = "a", **labels: str) -> Obj:
    return {"kind": "Job", "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels}}


# ---------------------------------------------------------------------------------------------- store


def recording(store: Store) -> list[tuple[str | None, str | None]]:
    seen: list[tuple[str | None, str | None]] = []

    def handler(old: Obj | None, new: Obj | None) -> None:
        seen.append(
            (old["metadata"]["resourceVersion"] if old else None, new["metadata"]["resourceVersion"] if new else None)
        )

    store.add_handler(handler)
    return seen


def test_store_indexes_follow_changes() -> None:
    store = Store("Job")
    store.add_indexer("owner", lambda o: [v] if (v := o["metadata"]["labels"].get("owner")) else [])
    store.upsert(obj("j1", 1, owner="x"))
    store.upsert(obj("j2", 2, owner="x"))
    assert [o["metadata"]["name"] for o in store.by_index("owner", "x")] == ["j1", "j2"]
    store.upsert(obj("j1", 3, owner="y"))
    assert [o["metadata"]["name"] for o in store.by_index("owner", "x")] == ["j2"]
    assert [o["metadata"]["name"] for o in store.by_index("owner", "y")] == ["j1"]
    store.delete(obj("j2", 4))
    assert store.by_index("owner", "x") == [] and store.index_values("owner") == ["y"]


def test_same_resource_version_is_not_an_event() -> None:
    store = Store("Job")
    seen = recording(store)
    store.upsert(obj("j", 5))
    store.upsert(obj("j", 5))  # e.g. the watch delivering what the writer already put there
    assert seen == [(None, "5")]


def test_write_through_only_moves_forward() -> None:
    store = Store("Job")
    seen = recording(store)
    store.upsert(obj("j", 5))
    store.observe(obj("j", 7))  # our write's response
    store.observe(obj("j", 6))  # an older copy arriving late changes nothing
    store.upsert(obj("j", 7))  # the watch event for our own write: no second event
    assert seen == [(None, "5"), ("5", "7")]
    assert store.get("a", "j")["metadata"]["resourceVersion"] == "7"


def test_relist_removes_what_vanished_and_updates_what_changed() -> None:
    store = Store("Job")
    store.upsert(obj("kept", 1))
    store.upsert(obj("changed", 2))
    store.upsert(obj("gone", 3))
    store.upsert(obj("other-ns", 4, ns="b"))
    seen = recording(store)
    store.replace([obj("kept", 1), obj("changed", 9), obj("new", 10)], namespace="a")
    assert sorted(seen, key=str) == sorted([("3", None), ("2", "9"), (None, "10")], key=str)
    assert sorted(store.keys()) == ["a/changed", "a/kept", "a/new", "b/other-ns"]  # b/ untouched by a's relist


# ---------------------------------------------------------------------------------------------- queue


def test_queue_deduplicates_and_serialises_one_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    key, _ = q.get()  # type: ignore[misc]
    assert key == "a"
    q.add("a")  # changed while a worker holds it: not handed to a second worker ...
    assert q.get()[0] == "b"  # type: ignore[index]
    assert len(q) == 0
    q.done("a")  # ... but queued again once the first is done
    assert q.get()[0] == "a"  # type: ignore[index]


def test_queue_backoff_grows_with_jitter_and_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=8.0)
    delays = [q.add_rate_limited("k") for _ in range(6)]
    for i, d in enumerate(delays):
        expected = min(8.0, 2.0**i)
        assert 0.8 * expected <= d <= 1.2 * expected
    q.forget("k")
    assert q.failures("k") == 0 and q.add_rate_limited("k") <= 1.2


def test_queue_add_after_and_shutdown() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.2)
    start = time.monotonic()
    assert q.get()[0] == "late"  # type: ignore[index]
    assert time.monotonic() - start >= 0.15
    threading.Timer(0.1, q.shutdown).start()
    assert q.get() is None


# ---------------------------------------------------------------------------------------------- drift


DESIRED: Obj = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "a", "labels": {"x": "1"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "vllm", "args": ["m", "--port", "8000"], "resources": {"requests": {"cpu": "1"}}}
                ]
            }
        },
    },
}


def live_of(desired: Obj) -> Obj:
    live = copy.deepcopy(desired)
    live["metadata"]["annotations"] = {APPLIED_HASH: applied_hash(desired)}
    live["metadata"]["uid"] = "u"
    live["spec"]["progressDeadlineSeconds"] = 600  # server default
    c = live["spec"]["template"]["spec"]["containers"][0]
    c["terminationMessagePath"] = "/dev/termination-log"  # server default
    c["resources"]["requests"]["cpu"] = "1000m"  # same quantity, another spelling
    live["status"] = {"readyReplicas": 2}
    return live


def test_no_drift_when_the_server_only_added_defaults() -> None:
    assert not drifted(DESIRED, live_of(DESIRED))


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o["spec"].__setitem__("replicas", 3),  # kubectl scale
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["args"].append("--x"),  # kubectl edit
        lambda o: o["metadata"]["labels"].pop("x"),
        lambda o: o["metadata"]["annotations"].pop(APPLIED_HASH),  # applied by an older operator version
    ],
)
def test_drift_when_an_owned_field_differs(edit: Any) -> None:
    live = live_of(DESIRED)
    edit(live)
    assert drifted(DESIRED, live)


def test_drift_when_desired_drops_a_field() -> None:
    """Removing a field from the desired object must reach the server (the hash changes), though the live
    object still holds every desired value."""
    smaller = copy.deepcopy(DESIRED)
    smaller["metadata"]["labels"] = {}
    live = live_of(DESIRED)
    assert is_subset(smaller, live) and drifted(smaller, live)


class FakeKube:
    """Records writes; answers GET from `objects`."""

    def __init__(self, objects: dict[str, Obj] | None = None) -> None:
        self.objects = objects or {}
        self.calls: list[str] = []

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        self.calls.append(f"get {name}")
        return self.objects.get(name)

    def apply(self, o: Obj) -> Obj:
        self.calls.append(f"apply {o['metadata']['name']}")
        return {**o, "metadata": {**o["metadata"], "resourceVersion": "9"}}

    def delete(self, kind: str, name: str, namespace: str | None = None, uid: str | None = None) -> bool:
        self.calls.append(f"delete {name} uid={uid}")
        return True

    def post_event(self, event: Obj) -> None:
        self.calls.append(f"event {event['reason']}")


def owned(o: Obj, uid: str) -> Obj:
    return {**o, "metadata": {**o["metadata"], "ownerReferences": [{"uid": uid, "controller": True}]}}


def test_writer_skips_converged_objects_and_refuses_foreign_ones() -> None:
    kube = FakeKube()
    seen: list[Obj] = []
    writer = Writer(kube, observe=seen.append)  # type: ignore[arg-type]
    desired = owned(DESIRED, "p1")
    assert writer.ensure(desired, owned(live_of(desired), "p1"), "p1") is None
    assert kube.calls == []  # converged: not even a read
    assert writer.ensure(desired, None, "p1") is not None  # new name: one read (is it someone else's?), one apply
    assert kube.calls == ["get d", "apply d"] and seen and APPLIED_HASH in seen[0]["metadata"]["annotations"]
    with pytest.raises(NotOwned):
        writer.ensure(desired, owned(live_of(desired), "someone-else"), "p1")
    kube.objects["d"] = live_of(DESIRED)  # exists, made by someone else, invisible to the label-filtered cache
    with pytest.raises(NotOwned):
        writer.ensure(desired, None, "p1")
    with pytest.raises(NotOwned):
        writer.delete(owned(live_of(desired), "someone-else"), "p1")
    assert writer.delete(owned(live_of(desired), "p1"), "p1")
    assert kube.calls[-1] == "delete d uid=u"  # uid precondition: never a same-named successor
    cached = Writer(FakeKube(), complete=frozenset({"Deployment"}))  # type: ignore[arg-type]
    cached.ensure(desired, None, "p1")  # the unfiltered cache would have shown a same-named object: no GET
    assert cached.kube.calls == ["apply d"]  # type: ignore[attr-defined]
    writer.event(desired, "Normal", "Hello", "sent in the background", "2026-12-02T00:00:00Z")
    writer.events.flush()
    assert kube.calls[-1] == "event Hello"


# ---------------------------------------------------------------------------------------------- leader election


class LeaseServer:
    """The Lease semantics the elector relies on: create-if-absent, PUT with resourceVersion (409 on conflict)."""

    def __init__(self) -> None:
        self.lease: Obj | None = None
        self.rv = 0

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return copy.deepcopy(self.lease)

    def create(self, o: Obj) -> Obj | None:
        if self.lease is not None:
            return None
        self.rv += 1
        self.lease = {**copy.deepcopy(o), "metadata": {**o["metadata"], "resourceVersion": str(self.rv)}}
        return copy.deepcopy(self.lease)

    def replace(self, o: Obj) -> Obj | None:
        assert self.lease is not None
        if o["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            return None
        self.rv += 1
        self.lease = {**copy.deepcopy(o), "metadata": {**o["metadata"], "resourceVersion": str(self.rv)}}
        return copy.deepcopy(self.lease)


def test_lease_is_held_by_one_and_taken_over_after_expiry_or_release() -> None:
    server = LeaseServer()
    clock = [100.0]
    cfg = LeaseConfig(namespace="ns", lease_seconds=8)
    a = LeaderElector(server, cfg, "a", monotonic=lambda: clock[0])  # type: ignore[arg-type]
    b = LeaderElector(server, cfg, "b", monotonic=lambda: clock[0])  # type: ignore[arg-type]
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # a holds it
    clock[0] += 5
    assert a.try_acquire_or_renew()  # renewed
    assert not b.try_acquire_or_renew()  # b sees a new renewTime: a's lease runs from now on b's clock
    clock[0] += 7
    assert not b.try_acquire_or_renew()  # 7 s without a renewal < 8 s
    clock[0] += 2
    assert b.try_acquire_or_renew()  # a stopped renewing (killed): b takes over
    assert server.lease["spec"]["holderIdentity"] == "b" and server.lease["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # and a, should it come back, is a standby now
    b.leading.set()
    b.release()
    assert a.try_acquire_or_renew()  # released: no waiting for expiry


def test_urgent_keys_jump_the_queue() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ("a", "b", "c"):
        q.add(k)
    q.add("c", urgent=True)  # already queued: moves ahead, once
    q.add("d", urgent=True)
    assert [q.get()[0] for _ in range(4)] == ["c", "d", "a", "b"]  # type: ignore[index]
    for k in "abcd":
        q.done(k)
    assert len(q) == 0
    q.add("x")
    key = q.get()[0]  # type: ignore[index]
    q.add("y")
    q.add("x", urgent=True)  # changed while being reconciled, and urgent: first once its worker is done
    q.done(key)
    assert q.get()[0] == "x"  # type: ignore[index]


def test_an_optional_kind_is_served_only_by_an_established_live_crd_of_its_version() -> None:
    from quantfleet.facts.cache import crd_serves, trim_crd

    crd = {
        "metadata": {"name": "scaledobjects.keda.sh", "uid": "u", "managedFields": [{}]},
        "spec": {"versions": [{"name": "v1alpha1", "served": True, "schema": {"big": "…"}}]},
        "status": {"conditions": [{"type": "Established", "status": "True", "message": "…"}]},
    }
    trimmed = trim_crd(crd)
    assert "schema" not in str(trimmed) and crd_serves(trimmed, "keda.sh/v1alpha1")
    assert not crd_serves(trimmed, "keda.sh/v1beta1")  # not the version the operator renders
    assert not crd_serves(None, "keda.sh/v1alpha1")
    terminating = trim_crd({**crd, "metadata": {**crd["metadata"], "deletionTimestamp": "2026-12-03T00:00:00Z"}})
    assert not crd_serves(terminating, "keda.sh/v1alpha1")  # creates are refused (403) while it is deleted
    pending = trim_crd({**crd, "status": {"conditions": [{"type": "Established", "status": "False"}]}})
    assert not crd_serves(pending, "keda.sh/v1alpha1")

"""The controller core against a real control plane, under the faults a fleet meets.

- a watch whose resourceVersion expired (410 Gone): the cache relists and nothing is missed, deletions included;
- the leader killed with SIGKILL five times while ~50 objects converge: a standby takes over within 15 s each
  time, and the end state has exactly one calibration Job per QuantizedModel and one Deployment per pool;
- kube-apiserver restarted mid-convergence: everything converges;
- the nodes of a pool flapping NotReady/Ready: the services on it go Degraded and back, never re-planned;
- at rest the operator makes no writes and (almost) no reads (its own request counter, scraped from /metrics).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import threading
import time
import urllib.request
from typing import Any

import pytest
from qf import GROUP, VERSION, apply, cond, events, get, isvc, model_config, qm, wait_cond

from quantfleet.facts.informer import Informer
from quantfleet.facts.store import Store
from quantfleet.kube.client import KINDS, Kind, Kube, load_client_config
from quantfleet_dev.sandbox import cluster
from quantfleet_dev.testing import Sandbox, free_port, operator_process, wait_for

ISVCS = "inferenceservices"
QMS = "quantizedmodels"
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct@main"
POOLS = {
    "NVIDIA-H100-80GB-HBM3": "nvidia.com/gpu.product",
    "NVIDIA-B200": "nvidia.com/gpu.product",
    "AMD_Instinct_MI300X_OAM": "amd.com/gpu.product-name",
    "AMD_Instinct_MI355X_OAM": "amd.com/gpu.product-name",
}


def service(name: str, product: str, replicas: int = 1) -> dict[str, Any]:
    return isvc(
        name,
        model={"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}},
        pools=[{"name": "p", "nodeSelector": {POOLS[product]: product}, "replicas": replicas}],
        maxModelLen=8192,
    )


def workload(n_services: int, n_models: int) -> list[dict[str, Any]]:
    """Services over four pools in proportion to their GPUs (the test fleet has 32 H100, 16 B200, 8 MI300X and
    8 MI355X), and QuantizedModels with distinct recipes (distinct seeds), each calibrating on one H100."""
    share = {"NVIDIA-H100-80GB-HBM3": 0.45, "NVIDIA-B200": 0.3, "AMD_Instinct_MI300X_OAM": 0.125}
    products: list[str] = []
    for product, fraction in share.items():
        products += [product] * round(n_services * fraction)
    products += ["AMD_Instinct_MI355X_OAM"] * (n_services - len(products))
    objs = [service(f"svc-{i:02d}", product) for i, product in enumerate(products)]
    objs += [qm(f"qm-{i:02d}", "fp8-dynamic", calibration={"seed": i}) for i in range(n_models)]
    return objs


def listed(sb: Sandbox, ns: str, plural: str) -> list[dict[str, Any]]:
    return list(sb.custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"])


def all_converged(sb: Sandbox, ns: str, n_services: int, n_models: int) -> bool:
    services, models = listed(sb, ns, ISVCS), listed(sb, ns, QMS)
    ready = [o for o in services + models if cond(o, "Ready").get("status") == "True"]
    return len(services) == n_services and len(models) == n_models and len(ready) == n_services + n_models


def assert_children_exact(sb: Sandbox, ns: str, n_services: int, n_models: int) -> None:
    """One Deployment per (service, pool), one calibration Job per QuantizedModel, nothing orphaned."""
    services = {
        o["metadata"]["uid"]: o for o in sb.custom.list_namespaced_custom_object(GROUP, VERSION, ns, ISVCS)["items"]
    }
    models = {
        o["metadata"]["uid"]: o for o in sb.custom.list_namespaced_custom_object(GROUP, VERSION, ns, QMS)["items"]
    }
    deps = sb.apps.list_namespaced_deployment(ns).items
    assert sorted(d.metadata.name for d in deps) == sorted(f"svc-{i:02d}-p" for i in range(n_services))
    assert all(d.metadata.owner_references[0].uid in services for d in deps)
    jobs = [
        j
        for j in sb.batch.list_namespaced_job(ns, label_selector="app.kubernetes.io/component=calibration").items
        if not j.metadata.deletion_timestamp
    ]
    assert sorted(j.metadata.name for j in jobs) == sorted(m["status"]["jobName"] for m in models.values())
    assert len(jobs) == n_models and all(j.metadata.owner_references[0].uid in models for j in jobs)


def lease_holder(sb: Sandbox, ns: str) -> str | None:
    from kubernetes import client

    try:
        lease = client.CoordinationV1Api(sb.api).read_namespaced_lease("quantfleet-operator", ns)
    except Exception:
        return None
    return lease.spec.holder_identity or None


def holder_pid(holder: str) -> int:
    return int(holder.rsplit("_", 1)[1])  # identity = <hostname>_<pid>


# ------------------------------------------------------------------------------------------------ watch expiry


def compact_etcd(sandbox: Sandbox) -> None:
    """Compact etcd to its current revision through its JSON gateway: older resourceVersions are gone."""
    url = f"http://127.0.0.1:{sandbox.layout.ports.etcd}/v3/kv"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"{url}/{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    revision = int(post("range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    post("compaction", {"revision": revision, "physical": True})


def test_expired_watch_relists_and_misses_nothing(
    sandbox: Sandbox, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PodTemplates: the sandbox's API server serves their watches from etcd, not from a watch cache (which, while
    # young, replays its initial state for any old resourceVersion instead of answering 410)
    monkeypatch.setitem(KINDS, "PodTemplate", Kind("v1", "PodTemplate", "podtemplates"))
    kube = Kube(load_client_config(str(sandbox.kubeconfig)))
    store = Store("PodTemplate")
    deleted: list[str] = []
    store.add_handler(lambda old, new: deleted.append(old["metadata"]["name"]) if new is None else None)
    informer = Informer(kube, store, "PodTemplate", namespace, watch_timeout=2)

    def names() -> set[str]:
        return {o["metadata"]["name"] for o in store.objects(namespace)}

    def template(name: str, value: str) -> dict[str, Any]:
        pod = {"containers": [{"name": "c", "image": "busybox"}]}
        return {"metadata": {"name": name, "labels": {"v": value}}, "template": {"spec": pod}}

    def create(name: str, value: str) -> None:
        sandbox.core.create_namespaced_pod_template(namespace, template(name, value))

    stop = threading.Event()
    informer.start(stop)
    assert informer.synced.wait(30)
    create("a", "1")
    create("b", "1")
    wait_for(lambda: names() == {"a", "b"}, 30, "watch delivers a and b")
    stop.set()
    assert informer._thread is not None
    informer._thread.join(15)
    assert not informer._thread.is_alive()

    # while the watch is down: a deletion, a creation, an update
    sandbox.core.delete_namespaced_pod_template("a", namespace)
    create("c", "1")
    sandbox.core.patch_namespaced_pod_template("b", namespace, {"metadata": {"labels": {"v": "2"}}})
    # ... and the resourceVersion it would resume from is gone: the API server answers 410 Gone. On a young sandbox
    # revision 1 is still in etcd (compaction runs every 5 min), so compact it away now: fresh machines too.
    compact_etcd(sandbox)
    informer.resource_version = "1"
    relists = informer.relists
    stop2 = threading.Event()
    informer.start(stop2)
    try:
        wait_for(lambda: names() == {"b", "c"}, 30, "relist: a gone, c present")
        assert informer.relists == relists + 1
        assert store.get(namespace, "b")["metadata"]["labels"] == {"v": "2"}
        assert "a" in deleted  # the deletion was seen as an event: its parents would be enqueued
    finally:
        stop2.set()
        kube.close()


# ------------------------------------------------------------------------------------------------ leader failover


def test_leader_killed_five_times_during_convergence(sandbox: Sandbox, namespace: str) -> None:
    model_config(sandbox, namespace, "llama-3.1-8b")
    n_services, n_models = 40, 10
    for obj in workload(n_services, n_models):
        apply(sandbox, namespace, obj)
    takeovers: list[float] = []
    with contextlib.ExitStack() as stack:

        def replica(i: int) -> Any:
            log = cluster.Layout.load().logfile(f"operator-{namespace}-{i}")
            return stack.enter_context(operator_process(sandbox.kubeconfig, namespace, log_path=log, allow_exit=True))

        procs = [replica(0), replica(1)]
        for i in range(5):
            holder = wait_for(lambda: lease_holder(sandbox, namespace), 30, "a leader")
            time.sleep(1.5)  # let it work a little
            os.kill(holder_pid(holder), signal.SIGKILL)
            killed_at = time.monotonic()
            new = wait_for(
                lambda h=holder: (x := lease_holder(sandbox, namespace)) and x != h and x, 30, "a new leader"
            )
            takeovers.append(time.monotonic() - killed_at)
            assert holder_pid(new) in {p.pid for p in procs}
            procs.append(replica(i + 2))  # the Deployment would restart the killed pod as a standby
        wait_for(lambda: all_converged(sandbox, namespace, n_services, n_models), 240, "all objects Ready")
        assert_children_exact(sandbox, namespace, n_services, n_models)
    assert max(takeovers) <= 15, f"standby takeovers took {takeovers}"


# ------------------------------------------------------------------------------------------------ API server restart


def test_apiserver_restart_mid_convergence(sandbox: Sandbox, namespace: str) -> None:
    model_config(sandbox, namespace, "llama-3.1-8b")
    n_services, n_models = 16, 4
    with operator_process(sandbox.kubeconfig, namespace):
        for obj in workload(n_services, n_models):
            apply(sandbox, namespace, obj)
        time.sleep(2)
        cluster.restart(sandbox.layout, "kube-apiserver")
        wait_for(lambda: all_converged(sandbox, namespace, n_services, n_models), 240, "all objects Ready")
        assert_children_exact(sandbox, namespace, n_services, n_models)


# ------------------------------------------------------------------------------------------------ flapping nodes


def set_ready(sb: Sandbox, node: str, ready: bool) -> None:
    """NotReady the way a dead kubelet looks: KWOK stops managing the node (it would heal it at once), its Ready
    condition goes False, and the node lifecycle controller adds the node.kubernetes.io/not-ready taints."""
    if not ready:
        sb.core.patch_node(node, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "paused"}}})
        status = "False"
    else:
        status = "True"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sb.core.patch_node_status(
        node,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": status,
                        "reason": "KubeletReady" if ready else "KubeletNotReady",
                        "message": "flap test",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ]
            }
        },
    )
    if ready:
        sb.core.patch_node(node, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"}}})


@pytest.mark.pod_security("baseline")
def test_flapping_pool_degrades_and_recovers_without_replan(sandbox: Sandbox, namespace: str) -> None:
    model_config(sandbox, namespace, "llama-3.1-8b")
    nodes = [
        n.metadata.name
        for n in sandbox.core.list_node(label_selector="amd.com/gpu.product-name=AMD_Instinct_MI355X_OAM").items
    ]
    with operator_process(sandbox.kubeconfig, namespace):
        apply(sandbox, namespace, service("flappy", "AMD_Instinct_MI355X_OAM"))
        obj = wait_cond(sandbox, namespace, ISVCS, "flappy", "Ready", "True", timeout=120)
        pinned = (obj["status"]["planHash"], obj["status"]["decisions"][0]["precision"])
        try:
            for _ in range(3):
                for node in nodes:
                    set_ready(sandbox, node, False)
                obj = wait_cond(sandbox, namespace, ISVCS, "flappy", "Degraded", "True", "PoolUnavailable", timeout=30)
                assert (obj["status"]["planHash"], obj["status"]["decisions"][0]["precision"]) == pinned
                for node in nodes:
                    set_ready(sandbox, node, True)
                obj = wait_cond(sandbox, namespace, ISVCS, "flappy", "Degraded", "False", "AsPlanned", timeout=30)
                assert (obj["status"]["planHash"], obj["status"]["decisions"][0]["precision"]) == pinned
        finally:
            for node in nodes:
                set_ready(sandbox, node, True)
        decided = [e for e in events(sandbox, namespace, "flappy") if e.reason == "DecisionMade"]
        assert len(decided) == 1, "the flapping pool must never cause a re-plan"
        assert get(sandbox, namespace, ISVCS, "flappy")["status"]["planGeneration"] == 1


# ------------------------------------------------------------------------------------------------ at rest


def requests_by_verb(port: int) -> dict[tuple[str, str], float]:
    """quantfleet_api_requests_total by (verb, resource), from the operator's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("quantfleet_api_requests_total{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1 : line.index("}")].split(","))
            key = (labels["verb"].strip('"'), labels["resource"].strip('"'))
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def test_converged_operator_makes_no_writes_and_no_reads(sandbox: Sandbox, namespace: str) -> None:
    model_config(sandbox, namespace, "llama-3.1-8b")
    n_services, n_models = 8, 2
    port = free_port()
    with operator_process(sandbox.kubeconfig, namespace, extra_args=("--metrics-port", str(port))):
        for obj in workload(n_services, n_models):
            apply(sandbox, namespace, obj)
        wait_for(lambda: all_converged(sandbox, namespace, n_services, n_models), 120, "all objects Ready")
        time.sleep(5)  # the last status writes' own watch events
        before = requests_by_verb(port)
        time.sleep(30)
        after = requests_by_verb(port)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if after.get(k, 0.0) != before.get(k, 0.0)}
    app = {k: v for k, v in delta.items() if k[1] != "leases"}
    assert app == {}, f"requests at rest besides the leader Lease: {app}"
    assert set(delta) <= {("get", "leases"), ("update", "leases")}

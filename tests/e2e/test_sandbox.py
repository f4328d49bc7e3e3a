"""The sandbox behaves like a cluster with GPU node pools: real API server, scheduler and controllers,
KWOK-simulated kubelets. These tests are the contract the operator's e2e tests build on."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from quantfleet.api.manifest import parse_manifest
from quantfleet_dev.sandbox import cluster, fleet
from quantfleet_dev.testing import Sandbox, wait_for

pytestmark = pytest.mark.e2e

CRDS = Path(__file__).resolve().parents[2] / "crds"
PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: KWOK plays the kubelet


def restricted_pod_spec(resources: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A pod spec that passes Pod Security `restricted` (the namespace fixture enforces it)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": PAUSE,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if resources:
        container["resources"] = {"limits": resources}
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        **spec,
    }


def pod(name: str, resources: dict[str, str] | None = None, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec = restricted_pod_spec(resources, restartPolicy="Always")
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def job(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    template = {
        "metadata": {"labels": labels or {}, "annotations": annotations or {}},
        "spec": restricted_pod_spec({"nvidia.com/gpu": "1"}, restartPolicy="Never"),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": template},
    }


def pod_ready(sb: Sandbox, ns: str, name: str) -> Any:
    p = sb.core.read_namespaced_pod(name, ns)
    ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    return p if p.status.phase == "Running" and ready else None


def job_condition(sb: Sandbox, ns: str, name: str, kind: str) -> bool:
    j = sb.batch.read_namespaced_job(name, ns)
    return any(c.type == kind and c.status == "True" for c in j.status.conditions or [])


def job_pod(sb: Sandbox, ns: str, job_name: str) -> Any:
    pods = sb.core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
    return pods[0] if pods else None


# ---------------------------------------------------------------- CRDs


def crd_docs() -> list[dict[str, Any]]:
    return [d for f in sorted(CRDS.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def test_crds_are_established(sandbox: Sandbox) -> None:
    docs = crd_docs()
    assert docs, "crds/*.yaml is empty"
    ext = sandbox.api
    from kubernetes import client

    api = client.ApiextensionsV1Api(ext)
    for doc in docs:
        crd = api.read_custom_resource_definition(doc["metadata"]["name"])
        established = [c for c in crd.status.conditions or [] if c.type == "Established"]
        assert established and established[0].status == "True", crd.metadata.name


def test_invalid_quantizedmodel_is_rejected_with_the_cel_message(sandbox: Sandbox, namespace: str) -> None:
    base = {"apiVersion": "quantfleet.io/v1alpha1", "kind": "QuantizedModel"}
    invalid = {
        **base,
        "metadata": {"name": "both-sources"},
        "spec": {"source": {"huggingFace": {"repo": "a/b"}, "uri": "pvc://x/y"}, "scheme": "fp8-dynamic"},
    }
    with pytest.raises(ApiException) as rejected:
        sandbox.custom.create_namespaced_custom_object(
            "quantfleet.io", "v1alpha1", namespace, "quantizedmodels", invalid
        )
    assert rejected.value.status == 422
    assert "exactly one of" in rejected.value.body, rejected.value.body

    # the same object with one source is accepted: the rejection above is the CEL rule, not a schema typo
    valid = {
        **base,
        "metadata": {"name": "one-source"},
        "spec": {"source": {"huggingFace": {"repo": "a/b"}}, "scheme": "fp8-dynamic"},
    }
    created = sandbox.custom.create_namespaced_custom_object(
        "quantfleet.io", "v1alpha1", namespace, "quantizedmodels", valid
    )
    assert created["metadata"]["uid"]


# ---------------------------------------------------------------- nodes and scheduling


def test_fleet_nodes_are_ready_with_gpu_capacity(sandbox: Sandbox) -> None:
    expected = {n["metadata"]["name"]: n for n in fleet.fleet_nodes(fleet.load_fleet())}
    nodes = {n.metadata.name: n for n in sandbox.core.list_node(label_selector=fleet.POOL_LABEL).items}
    assert set(expected) <= set(nodes)
    for name, want in expected.items():
        node = nodes[name]
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions), name
        for key, value in want["metadata"]["labels"].items():
            assert node.metadata.labels.get(key) == value, (name, key)
        for resource, qty in want["status"]["allocatable"].items():
            assert parse_quantity(node.status.allocatable[resource]) == parse_quantity(qty), (name, resource)


def test_b200_pod_is_scheduled_on_a_b200_node_and_becomes_ready(sandbox: Sandbox, namespace: str) -> None:
    sandbox.core.create_namespaced_pod(
        namespace, pod("b200", {"nvidia.com/gpu": "4"}, {"nvidia.com/gpu.product": "NVIDIA-B200"})
    )
    running = wait_for(lambda: pod_ready(sandbox, namespace, "b200"), 60, "pod b200 Running/Ready")
    node = sandbox.core.read_node(running.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-B200"
    assert node.metadata.labels[fleet.POOL_LABEL] == "b200"
    assert running.status.pod_ip  # KWOK assigned an address


def test_scheduler_honours_gpu_capacity(sandbox: Sandbox, namespace: str) -> None:
    # no node has 9 GPUs: the real scheduler must leave the pod Pending with Insufficient nvidia.com/gpu
    sandbox.core.create_namespaced_pod(namespace, pod("too-big", {"nvidia.com/gpu": "9"}))

    def unschedulable() -> Any:
        p = sandbox.core.read_namespaced_pod("too-big", namespace)
        cond = [c for c in p.status.conditions or [] if c.type == "PodScheduled" and c.status == "False"]
        return cond[0] if cond else None

    cond = wait_for(unschedulable, 60, "PodScheduled=False on too-big")
    assert cond.reason == "Unschedulable"
    assert "nvidia.com/gpu" in cond.message
    assert not sandbox.core.read_namespaced_pod("too-big", namespace).spec.node_name


def test_amd_pod_lands_on_mi300x(sandbox: Sandbox, namespace: str) -> None:
    sandbox.core.create_namespaced_pod(
        namespace, pod("mi300x", {"amd.com/gpu": "4"}, {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"})
    )
    running = wait_for(lambda: pod_ready(sandbox, namespace, "mi300x"), 60, "pod mi300x Running/Ready")
    labels = sandbox.core.read_node(running.spec.node_name).metadata.labels
    assert labels["amd.com/gpu.device-id"] == "74a1"
    assert labels[fleet.POOL_LABEL] == "mi300x"


def test_deployment_pods_become_ready(sandbox: Sandbox, namespace: str) -> None:
    labels = {"app": "l40s-server"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "l40s-server"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": restricted_pod_spec(
                    {"nvidia.com/gpu": "2"}, nodeSelector={"nvidia.com/gpu.product": "NVIDIA-L40S"}
                ),
            },
        },
    }
    sandbox.apps.create_namespaced_deployment(namespace, deployment)

    def ready_replicas() -> bool:
        d = sandbox.apps.read_namespaced_deployment("l40s-server", namespace)
        return (d.status.ready_replicas or 0) == 3 and (d.status.available_replicas or 0) == 3

    wait_for(ready_replicas, 90, "3 ready replicas of l40s-server")
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector="app=l40s-server").items
    assert {sandbox.core.read_node(p.spec.node_name).metadata.labels[fleet.POOL_LABEL] for p in pods} == {"l40s"}


# ---------------------------------------------------------------- Jobs


def test_job_completes_through_the_job_controller(sandbox: Sandbox, namespace: str) -> None:
    sandbox.batch.create_namespaced_job(namespace, job("ok", annotations={"sandbox.quantfleet.io/duration": "4s"}))
    wait_for(lambda: job_condition(sandbox, namespace, "ok", "Complete"), 90, "Job ok Complete")
    j = sandbox.batch.read_namespaced_job("ok", namespace)
    assert j.status.succeeded == 1 and not j.status.failed
    p = job_pod(sandbox, namespace, "ok")
    assert p.status.phase == "Succeeded"
    term = p.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    # the duration annotation is honoured: the container "ran" about 4s
    assert (term.finished_at - term.started_at) >= dt.timedelta(seconds=3)


def test_labelled_job_pod_fails_with_its_exit_code_and_message(sandbox: Sandbox, namespace: str) -> None:
    message = "CUDA out of memory (simulated)"
    sandbox.batch.create_namespaced_job(
        namespace,
        job(
            "boom",
            labels={"sandbox.quantfleet.io/outcome": "fail"},
            annotations={"sandbox.quantfleet.io/exit-code": "3", "sandbox.quantfleet.io/message": message},
        ),
    )
    wait_for(lambda: job_condition(sandbox, namespace, "boom", "Failed"), 90, "Job boom Failed")
    p = job_pod(sandbox, namespace, "boom")
    assert p.status.phase == "Failed"
    term = p.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason, term.message) == (3, "Error", message)
    j = sandbox.batch.read_namespaced_job("boom", namespace)
    assert j.status.failed == 1 and not j.status.succeeded


def test_calibration_pod_reports_a_simulated_result_manifest(sandbox: Sandbox, namespace: str) -> None:
    annotations = {
        "quantfleet.io/recipe-hash": "0123456789abcdef",
        "quantfleet.io/checkpoint-uri": "pvc://checkpoints/qwen3-fp8",
        "quantfleet.io/scheme": "fp8-dynamic",
        "quantfleet.io/tool": "llm-compressor",
        "quantfleet.io/tool-version": "0.14.0.1",
        "quantfleet.io/format": "compressed-tensors",
    }
    sandbox.batch.create_namespaced_job(
        namespace, job("calib", labels={"app.kubernetes.io/component": "calibration"}, annotations=annotations)
    )
    wait_for(lambda: job_condition(sandbox, namespace, "calib", "Complete"), 90, "Job calib Complete")
    term = job_pod(sandbox, namespace, "calib").status.container_statuses[0].state.terminated
    assert term.exit_code == 0
    manifest = parse_manifest(term.message)
    assert manifest.simulated is True
    assert manifest.recipe_hash == annotations["quantfleet.io/recipe-hash"]
    assert manifest.checkpoint_uri == annotations["quantfleet.io/checkpoint-uri"]
    assert (manifest.scheme, manifest.tool, manifest.format) == ("fp8-dynamic", "llm-compressor", "compressed-tensors")
    assert manifest.bytes > 0 and len(manifest.sha256) == 64
    assert json.loads(term.message)["schema"] == "quantfleet.io/calibration-result/v1"


# ---------------------------------------------------------------- lifecycle


def test_second_up_reuses_the_running_processes(sandbox: Sandbox) -> None:
    before = cluster.status()["processes"]
    started = time.monotonic()
    cluster.up(log=lambda _m: None)
    assert cluster.status()["processes"] == before
    assert time.monotonic() - started < 60


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_second_sandbox_restarts_warm_and_down_leaves_no_process(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an independent sandbox next to the session's one: own state dir, own ports
    state = tmp_path / "sb"
    monkeypatch.setenv("QUANTFLEET_SANDBOX_DIR", str(state))
    monkeypatch.setenv("QUANTFLEET_SANDBOX_PORT_BASE", "36000")
    try:
        layout = cluster.up(log=lambda _m: None)
        assert layout.ports.apiserver == 36443
        core = cluster.api_client(layout)
        from kubernetes import client

        first = client.CoreV1Api(core).read_node("b200-0").metadata.creation_timestamp
        core.close()
        assert cluster.down(log=lambda _m: None) == [
            "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"
        ]  # fmt: skip
        assert _processes_mentioning(str(state)) == []

        started = time.monotonic()
        layout = cluster.up(log=lambda _m: None)  # warm: same PKI, same etcd data
        warm = time.monotonic() - started
        core = cluster.api_client(layout)
        assert client.CoreV1Api(core).read_node("b200-0").metadata.creation_timestamp == first
        assert warm < 90

        # a smaller fleet file prunes the pools it drops, never nodes a test added itself
        client.CoreV1Api(core).create_node(fleet.make_gpu_node("H200", name="extra-h200"))
        doc = yaml.safe_load(fleet.paths.DEFAULT_FLEET.read_text())
        doc["pools"] = [p for p in doc["pools"] if p["name"] == "cpu"]
        small = tmp_path / "fleet.yaml"
        small.write_text(yaml.safe_dump(doc))
        cluster.up(fleet_file=small, log=lambda _m: None)
        names = {n.metadata.name for n in client.CoreV1Api(core).list_node().items}
        assert {"cpu-0", "cpu-1", "extra-h200"} <= names
        assert not names & {"h100-0", "b200-0", "mi300x-0"}
        core.close()
    finally:
        cluster.down(log=lambda _m: None)
    assert _processes_mentioning(str(state)) == []

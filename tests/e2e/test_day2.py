"""Day-2 operations on the real control plane: the autoscaler owns replicas (across reconciles and operator restarts),
turning autoscaling on keeps the running replica count (server-side apply hand-over), and a rollout whose new pods
never become Ready is reported with the pod's reason and does not spread to the next pool."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from qf import apply, get, isvc, merge_patch, model_config, wait_cond

from quantfleet_dev.testing import Sandbox, operator_process, wait_for

H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
L40S = {"nvidia.com/gpu.product": "NVIDIA-L40S"}
LLAMA = {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main", "configRef": {"name": "llama-3.1-8b-config"}}


def kubectl_json(sb: Sandbox, *args: str) -> dict[str, Any]:
    return json.loads(sb.kubectl(*args, "-o", "json").stdout)


def replicas(sb: Sandbox, ns: str, name: str) -> int:
    return int(sb.apps.read_namespaced_deployment(name, ns).spec.replicas)


def deployment_writes(log: Path, name: str) -> list[str]:
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "kind=Deployment" in line and f"/{name} " in line and ("apply " in line or "hand over" in line)
    ]


def test_the_autoscaler_owns_replicas_across_reconciles_and_restarts(
    sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    model_config(sandbox, ns, "llama-3.1-8b")
    svc = isvc(
        "scaled",
        model=LLAMA,
        pools=[{"name": "h100", "nodeSelector": H100}],
        autoscaling={"minReplicas": 1, "maxReplicas": 4, "autoscaler": "HPA"},
    )
    first_log = tmp_path / "first.log"
    with operator_process(sandbox.kubeconfig, ns, log_path=first_log):
        apply(sandbox, ns, svc)
        wait_cond(sandbox, ns, "inferenceservices", "scaled", "Ready", "True", timeout=120)
        hpa = kubectl_json(sandbox, "get", "hpa", "scaled-h100", "-n", ns)
        assert hpa["spec"]["scaleTargetRef"]["name"] == "scaled-h100"
        assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
        # what the HPA controller does: a write to the Deployment's scale subresource
        sandbox.kubectl("scale", "deployment", "scaled-h100", "-n", ns, "--replicas=3")
        wait_for(
            lambda: (get(sandbox, ns, "inferenceservices", "scaled").get("status") or {}).get("readyReplicas") == 3,
            60,
            "status follows the autoscaler's 3 replicas",
        )
        before = len(deployment_writes(first_log, "scaled-h100"))
        merge_patch(sandbox, ns, "inferenceservices", "scaled", {"metadata": {"annotations": {"touched": "1"}}})
        time.sleep(5)
        assert replicas(sandbox, ns, "scaled-h100") == 3
        assert len(deployment_writes(first_log, "scaled-h100")) == before, "a reconcile wrote the Deployment"
    second_log = tmp_path / "second.log"
    with operator_process(sandbox.kubeconfig, ns, log_path=second_log):
        wait_for(lambda: "caches synced" in second_log.read_text(errors="replace"), 60, "operator restarted")
        time.sleep(5)
        assert replicas(sandbox, ns, "scaled-h100") == 3
        assert deployment_writes(second_log, "scaled-h100") == [], "the restarted operator wrote the Deployment"
        obj = wait_cond(sandbox, ns, "inferenceservices", "scaled", "Ready", "True", timeout=60)
        decision = obj["status"]["decisions"][0]
        assert decision["replicas"] == 3 and decision["autoscaler"] == "HorizontalPodAutoscaler/scaled-h100"
        assert decision["maxReplicas"] == 4 and "fit 32" in decision["scaling"]  # 4 H100 nodes x 8 GPUs, TP 1


def test_turning_autoscaling_on_keeps_the_running_replica_count(sandbox: Sandbox, namespace: str) -> None:
    ns = namespace
    model_config(sandbox, ns, "llama-3.1-8b")
    svc = isvc("handover", model=LLAMA, pools=[{"name": "h100", "nodeSelector": H100, "replicas": 2}])
    with operator_process(sandbox.kubeconfig, ns):
        apply(sandbox, ns, svc)
        wait_cond(sandbox, ns, "inferenceservices", "handover", "Ready", "True", timeout=120)
        assert replicas(sandbox, ns, "handover-h100") == 2
        merge_patch(
            sandbox,
            ns,
            "inferenceservices",
            "handover",
            {"spec": {"autoscaling": {"maxReplicas": 4, "autoscaler": "HPA"}}},
        )
        wait_for(
            lambda: sandbox.kubectl("get", "hpa", "handover-h100", "-n", ns, check=False).returncode == 0,
            60,
            "HPA created",
        )
        seen = set()
        for _ in range(20):  # the API server would reset a field its only manager dropped to the default (1)
            seen.add(replicas(sandbox, ns, "handover-h100"))
            time.sleep(0.25)
        assert seen == {2}, f"replicas went through {sorted(seen)}"
        dep = kubectl_json(sandbox, "get", "deployment", "handover-h100", "-n", ns, "--show-managed-fields")
        owners = {
            m["manager"]
            for m in dep["metadata"]["managedFields"]
            if "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})
        }
        assert "quantfleet-handover" in owners and "quantfleet" not in owners, owners
        wait_cond(sandbox, ns, "inferenceservices", "handover", "Ready", "True", timeout=60)


def test_a_stuck_rollout_is_reported_and_does_not_spread(sandbox: Sandbox, namespace: str) -> None:
    ns = namespace
    model_config(sandbox, ns, "llama-3.1-8b")
    svc = isvc(
        "stuck",
        model=LLAMA,
        pools=[{"name": "h100", "nodeSelector": H100}, {"name": "l40s", "nodeSelector": L40S}],
        rollout={"progressDeadlineSeconds": 30},
    )
    with operator_process(sandbox.kubeconfig, ns):
        apply(sandbox, ns, svc)
        wait_cond(sandbox, ns, "inferenceservices", "stuck", "Ready", "True", timeout=120)
        l40s_before = sandbox.apps.read_namespaced_deployment("stuck-l40s", ns).metadata.generation
        # the new template's pods start but never pass readiness (the sandbox's pod-unready stage)
        merge_patch(
            sandbox,
            ns,
            "inferenceservices",
            "stuck",
            {"spec": {"podMetadata": {"labels": {"sandbox.quantfleet.io/readiness": "fail"}}}},
        )
        obj = wait_cond(sandbox, ns, "inferenceservices", "stuck", "Degraded", "True", "RolloutStuck", timeout=120)
        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert "pool h100" in degraded["message"] and "ContainersNotReady" in degraded["message"], degraded
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "RolloutStuck"
        by_pool = {d["pool"]: d for d in obj["status"]["decisions"]}
        assert by_pool["l40s"]["rollout"].startswith("Waiting: pool h100"), by_pool["l40s"]
        # the h100 pool had free GPUs: the new pod surged beside the old one, which kept serving
        h100 = sandbox.apps.read_namespaced_deployment("stuck-h100", ns)
        assert h100.spec.strategy.rolling_update.max_unavailable == 0
        assert h100.status.available_replicas == 1
        l40s = sandbox.apps.read_namespaced_deployment("stuck-l40s", ns)
        assert l40s.metadata.generation == l40s_before, "the stuck change spread to the next pool"
        assert "sandbox.quantfleet.io/readiness" not in (l40s.spec.template.metadata.labels or {})
        # undo: the pool rolls back, the other never moved, the service is Ready again
        merge_patch(sandbox, ns, "inferenceservices", "stuck", {"spec": {"podMetadata": None}})
        wait_cond(sandbox, ns, "inferenceservices", "stuck", "Ready", "True", timeout=120)
        wait_cond(sandbox, ns, "inferenceservices", "stuck", "Degraded", "False", timeout=60)

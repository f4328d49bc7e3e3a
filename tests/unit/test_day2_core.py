"""Day-2 behaviour of the InferenceService core, pass after pass over a world the test keeps: autoscalers own the
replica count, autoscaler kinds switch without overlap, pools roll out one at a time with a strategy sized to free
GPUs, Ready waits for the new template's pods, and a stuck rollout says why."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_reconcile_golden import run_case, served

from quantfleet.inferenceservice import rollout as ro
from quantfleet.inferenceservice.decide import conditions_of
from quantfleet.kube.writer import drifted
from quantfleet.render.outcome import Outcome

Obj = dict[str, Any]
UID = "00000000-0000-0000-0000-0000000000a1"


def case(autoscaling: Obj | None = None, pools: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {
        "model": {
            "uri": "hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659",
            "configRef": {"name": "llama-config"},
        },
        "pools": pools
        or [
            {"name": "h100", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "replicas": 2},
            {"name": "l40s", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"}},
        ],
        **spec,
    }
    if autoscaling is not None:
        body["autoscaling"] = autoscaling
    return {
        "object": {
            "apiVersion": "quantfleet.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "llama-8b", "namespace": "team-a", "uid": UID, "generation": 1},
            "spec": body,
        },
        "facts": {
            "nodes": [{"name": "h100", "gpu": "H100-SXM", "count": 2}, {"name": "l40s", "gpu": "L40S", "count": 2}],
            "configmaps": {"llama-config": "llama-3.1-8b"},
        },
    }


def converge(c: Obj, passes: int = 2) -> tuple[Obj, Outcome]:
    """Run passes, each over the world the previous one produced (children served and rolled out)."""
    out = run_case(c)
    for _ in range(passes):
        c = advance(c, out)
        out = run_case(c)
    return c, out


def advance(c: Obj, out: Outcome) -> Obj:
    """The world after `out` was executed: status written, applied children served, deleted ones gone."""
    c = copy.deepcopy(c)
    c["object"]["status"] = out.status
    facts = c["facts"]
    world = {(o["kind"], o["metadata"]["name"]): o for o in facts.get("deployments", []) + facts.get("children", [])}
    for obj in out.delete:
        world.pop((obj["kind"], obj["metadata"]["name"]), None)
    for obj in out.hand_over:
        live = world[(obj["kind"], obj["metadata"]["name"])]
        live["spec"]["replicas"] = obj["spec"]["replicas"]
    for obj in out.apply:
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["kind"] in ("Service", "PodDisruptionBudget"):
            continue
        previous = world.get(key)
        live = served(obj)
        if previous is not None and "replicas" not in obj["spec"] and obj["kind"] == "Deployment":
            live["spec"]["replicas"] = previous["spec"]["replicas"]  # owned by the autoscaler (or the hand-over)
            n = live["spec"]["replicas"]
            live["status"].update(replicas=n, updatedReplicas=n, readyReplicas=n, availableReplicas=n)
        world[key] = live
    facts["deployments"] = [o for (kind, _), o in world.items() if kind == "Deployment"]
    facts["children"] = [o for (kind, _), o in world.items() if kind != "Deployment"]
    return c


def deployment(out: Outcome, pool: str) -> Obj | None:
    return next(
        (o for o in out.apply if o["kind"] == "Deployment" and o["metadata"]["name"] == f"llama-8b-{pool}"), None
    )


def live_deployment(c: Obj, pool: str) -> Obj:
    return next(d for d in c["facts"]["deployments"] if d["metadata"]["name"] == f"llama-8b-{pool}")


def decision(out: Outcome, pool: str) -> Obj:
    assert out.status is not None
    return next(d for d in out.status["decisions"] if d["pool"] == pool)


# ------------------------------------------------------------------------------------------------ autoscaling


def test_replicas_the_hpa_set_are_left_alone() -> None:
    c, out = converge(case({"maxReplicas": 4}))
    live = live_deployment(c, "h100")
    live["spec"]["replicas"] = 3  # the HPA scaled up (through the scale subresource)
    live["status"].update(replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3)
    out = run_case(c)
    desired = deployment(out, "h100")
    assert desired is not None and "replicas" not in desired["spec"]
    assert not drifted(desired, live), "an HPA's replica count must never look like drift"
    assert not out.hand_over
    assert decision(out, "h100")["replicas"] == 3
    assert conditions_of(out)["Ready"].status == "True"


def test_enabling_autoscaling_hands_the_replica_count_over_without_a_replan() -> None:
    c, out = converge(case())
    assert live_deployment(c, "h100")["spec"]["replicas"] == 2
    c["object"]["spec"]["autoscaling"] = {"maxReplicas": 6}
    c["object"]["metadata"]["generation"] = 2
    out = run_case(c)
    assert not [e for e in out.events if e.reason == "DecisionMade"], "autoscaling must not re-plan precision"
    handed = {o["metadata"]["name"]: o["spec"]["replicas"] for o in out.hand_over}
    assert handed == {"llama-8b-h100": 2, "llama-8b-l40s": 1}
    assert {o["kind"] for o in out.apply} >= {"HorizontalPodAutoscaler"}
    # after the hand-over and the apply, the next pass hands nothing over and keeps the counts
    c = advance(c, out)
    out = run_case(c)
    assert not out.hand_over
    assert decision(out, "h100")["replicas"] == 2


def test_disabling_autoscaling_deletes_the_hpa_and_writes_replicas_again() -> None:
    c, out = converge(case({"maxReplicas": 4}))
    assert any(o["kind"] == "HorizontalPodAutoscaler" for o in c["facts"]["children"])
    del c["object"]["spec"]["autoscaling"]
    out = run_case(c)
    assert sorted(f"{o['kind']}/{o['metadata']['name']}" for o in out.delete) == [
        "HorizontalPodAutoscaler/llama-8b-h100",
        "HorizontalPodAutoscaler/llama-8b-l40s",
    ]
    desired = deployment(out, "h100")
    assert desired is not None and desired["spec"]["replicas"] == 2


def test_keda_installed_later_replaces_the_hpa_without_overlap() -> None:
    c, out = converge(case({"maxReplicas": 4}))
    c["facts"]["optional"] = ["ScaledObject"]
    out = run_case(c)
    assert {o["kind"] for o in out.delete} == {"HorizontalPodAutoscaler"}
    assert not [o for o in out.apply if o["kind"] == "ScaledObject"], "the HPA goes first"
    c = advance(c, out)
    out = run_case(c)
    assert not out.delete
    assert sorted(o["metadata"]["name"] for o in out.apply if o["kind"] == "ScaledObject") == [
        "llama-8b-h100",
        "llama-8b-l40s",
    ]
    assert decision(out, "h100")["autoscaler"] == "ScaledObject/llama-8b-h100"


def test_kedas_own_hpa_is_never_touched() -> None:
    c = case({"maxReplicas": 4})
    c["facts"]["optional"] = ["ScaledObject"]
    c, out = converge(c)
    keda_hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": "keda-hpa-llama-8b-h100",
            "namespace": "team-a",
            "labels": {"quantfleet.io/inferenceservice": "llama-8b"},  # KEDA copies the ScaledObject's labels
            "ownerReferences": [{"kind": "ScaledObject", "name": "llama-8b-h100", "uid": "so-uid", "controller": True}],
        },
    }
    c["facts"]["children"].append(keda_hpa)
    out = run_case(c)
    assert not out.delete


def test_pod_monitor_follows_its_crd() -> None:
    c, out = converge(case())
    assert not [o for o in out.apply if o["kind"] == "PodMonitor"]
    c["facts"]["optional"] = ["PodMonitor"]
    out = run_case(c)
    monitors = [o for o in out.apply if o["kind"] == "PodMonitor"]
    assert [m["metadata"]["name"] for m in monitors] == ["llama-8b"]


def test_capacity_bounds_max_replicas() -> None:
    cap = ro.PoolCapacity(replicas=3, gpus=12, detail="pool x: 3 usable node(s), 12 GPUs at TP 4")
    assert ro.bounded_max(1, 8, cap)[:2] == (1, 3)
    assert ro.bounded_max(1, 2, cap)[:2] == (1, 2)
    low, high, why = ro.bounded_max(5, 8, cap)
    assert (low, high) == (5, 5) and "fewer than minReplicas 5" in why


def test_tp_shapes_the_gpu_bound() -> None:
    c = case(
        {"maxReplicas": 50},
        pools=[{"name": "h100", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}],
        precision="bf16",
    )
    c["facts"]["configmaps"] = {"llama-config": "llama-3.1-70b"}  # 140 GB of BF16 weights: TP > 1 on 80 GB GPUs
    out = run_case(c)
    d = decision(out, "h100")
    tp = d["tensorParallelSize"]
    assert tp > 1, "the test needs a multi-GPU plan"
    assert d["maxReplicas"] == 2 * (8 // tp), d["scaling"]


# ------------------------------------------------------------------------------------------------ rollouts


def test_pools_roll_out_one_at_a_time() -> None:
    c, _ = converge(case())
    c["object"]["spec"]["vllm"] = {"image": "vllm/vllm-openai:v0.33.1"}
    c["object"]["metadata"]["generation"] = 2
    out = run_case(c)
    first, second = deployment(out, "h100"), deployment(out, "l40s")
    assert first is not None and second is None, "only the first pool gets the new template"
    assert decision(out, "l40s")["rollout"].startswith("Waiting: pool h100")
    assert conditions_of(out)["Ready"].status == "False"
    # h100 is rolling out (1 of 2 pods updated): l40s keeps waiting
    c = advance(c, out)
    h100 = live_deployment(c, "h100")
    h100["status"].update(updatedReplicas=1, availableReplicas=1, readyReplicas=1)
    out = run_case(c)
    assert deployment(out, "l40s") is None
    assert decision(out, "h100")["rollout"].startswith("RollingOut: 1/2 updated")
    # h100 done: now l40s
    h100["status"].update(updatedReplicas=2, availableReplicas=2, readyReplicas=2)
    out = run_case(c)
    l40s = deployment(out, "l40s")
    assert l40s is not None
    assert l40s["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.33.1"


def test_surge_is_sized_to_free_gpus_when_a_rollout_starts() -> None:
    c, _ = converge(case())
    c["object"]["spec"]["vllm"] = {"image": "vllm/vllm-openai:v0.33.1"}
    key = '{"nvidia.com/gpu.product":"NVIDIA-H100-80GB-HBM3"}'
    c["facts"]["gpusClaimed"] = {key: 2}  # 16 GPUs, our 2 replicas x 1 GPU claimed
    out = run_case(c)
    h100 = deployment(out, "h100")
    assert h100 is not None
    assert h100["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}
    c["facts"]["gpusClaimed"] = {key: 16}  # full pool: replace one at a time
    out = run_case(c)
    h100 = deployment(out, "h100")
    assert h100 is not None
    assert h100["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_strategy_is_not_rewritten_at_rest() -> None:
    c, _ = converge(case())
    live = live_deployment(c, "h100")
    live["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}
    out = run_case(c)
    desired = deployment(out, "h100")
    assert desired is not None and desired["spec"]["strategy"] == live["spec"]["strategy"]


def test_ready_waits_for_the_new_templates_pods() -> None:
    c, out = converge(case())
    assert conditions_of(out)["Ready"].status == "True"
    live = live_deployment(c, "h100")
    # two pods available, but one of them is still the old template
    live["status"].update(replicas=2, updatedReplicas=1, availableReplicas=2, readyReplicas=2)
    out = run_case(c)
    assert conditions_of(out)["Ready"].status == "False"
    assert decision(out, "h100")["readyReplicas"] == 1


UNREADY_POD = {
    "metadata": {
        "name": "llama-8b-h100-7d9-abcde",
        "labels": {"app.kubernetes.io/component": "vllm", "quantfleet.io/pool": "h100"},
        "creationTimestamp": "2026-12-02T11:50:00Z",
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
        ],
        "containerStatuses": [
            {
                "name": "vllm",
                "ready": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting"}},
            }
        ],
    },
}


def test_stuck_rollout_is_degraded_with_the_pods_reason() -> None:
    c, _ = converge(case())
    live = live_deployment(c, "h100")
    live["status"].update(updatedReplicas=1, availableReplicas=1, readyReplicas=1)
    live["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
    ]
    c["facts"]["pods"] = [UNREADY_POD]
    out = run_case(c)
    conds = conditions_of(out)
    assert conds["Degraded"].status == "True" and conds["Degraded"].reason == "RolloutStuck"
    assert "CrashLoopBackOff" in conds["Degraded"].message and "llama-8b-h100-7d9-abcde" in conds["Degraded"].message
    assert conds["Ready"].reason == "RolloutStuck"
    assert any(e.type == "Warning" and e.reason == "RolloutStuck" for e in out.events)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"containerStatuses": [{"name": "vllm", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}, "ImagePull"),
        (
            {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3"}]},
            "PodScheduled Unschedulable: 0/3",
        ),
        (
            {"containerStatuses": [{"name": "vllm", "lastState": {"terminated": {"reason": "OOMKilled"}}}]},
            "restarted (OOMKilled",
        ),
        ({"conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}, "ContainersNotReady"),
    ],
)
def test_pod_problem(status: Obj, expected: str) -> None:
    pod = {"metadata": {"name": "p"}, "status": status}
    assert expected in ro.pod_problem([pod])


def test_pod_problem_empty_when_all_ready() -> None:
    ready = {"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert ro.pod_problem([ready]) == ""


def test_only_a_rollout_marked_stuck_makes_gather_read_pods() -> None:
    dep: Obj = {
        "metadata": {"generation": 2},
        "spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}}},
        "status": {"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "True"}]},
    }
    assert not ro.rollout_stuck(dep)
    dep["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    assert ro.rollout_stuck(dep)
    dep["metadata"]["generation"] = 3  # a newer spec the controller has not seen: not stuck (yet)
    assert not ro.rollout_stuck(dep)
    assert ro.match_labels(dep) == "a=1,b=2"

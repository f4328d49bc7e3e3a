"""Day-2, pure: how many replicas a pool may scale to, how a change reaches a running pool, and how a rollout stands.

- **Capacity.** An autoscaled pool's maxReplicas is bounded by what its usable nodes hold at the planned tensor
  parallelism (whole replicas per node: TP 4 on an 8-GPU node fits 2); a CPU pool holds one replica per usable node.
- **Strategy.** Sized to the pool's free GPUs when a rollout starts: surge as many new pods as the free GPUs hold,
  else `maxSurge: 0, maxUnavailable: 1` (a full pool cannot surge; the Deployment default of 25% surge would leave
  new pods Pending). Free = the usable nodes' allocatable GPUs minus what the operator's own vLLM Deployments on the
  same pool claim (replicas x GPUs per pod); other workloads' GPUs are not counted, so the surge is an upper bound
  that the scheduler settles. A pool that is not rolling out keeps the strategy it has: at rest other services
  scaling never turns into writes here.
- **One pool at a time.** A service whose pod template changes on several pools rolls them one after another: a
  pool's new template is applied only when no other pool of the service is mid-rollout.
- **Rollout state.** Complete only when the Deployment controller saw the latest spec, every pod runs the new
  template (no old ReplicaSet pods left) and they are all available: Ready never counts old pods. A rollout the
  Deployment controller marked ProgressDeadlineExceeded is Stuck, with the reason of the pod that is not Ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantfleet.api.conditions import condition, is_true
from quantfleet.hardware import LabelError
from quantfleet.hardware.pools import ClusterGpus, CpuPool, pool_for_selector
from quantfleet.render.compare import is_subset

Obj = dict[str, Any]


# ------------------------------------------------------------------------------------------------ capacity


@dataclass(frozen=True)
class PoolCapacity:
    replicas: int  # whole replicas the usable nodes hold
    gpus: int  # allocatable GPUs on the usable nodes (0 on a CPU pool)
    detail: str


def pool_capacity(cluster: ClusterGpus, decision: Mapping[str, Any]) -> PoolCapacity | None:
    """What the pool a decision is pinned to holds now (None: its nodes are gone or its selector is ambiguous)."""
    try:
        pool = pool_for_selector(cluster, decision["nodeSelector"])
    except LabelError:
        return None
    usable = set(pool.usable_nodes)
    if isinstance(pool, CpuPool):
        return PoolCapacity(len(usable), 0, f"pool {decision['pool']}: {len(usable)} usable CPU node(s), one each")
    tp = max(1, int(decision["tensorParallelSize"]))
    members = [n for n in pool.members if n.name in usable]
    gpus = sum(n.allocatable_gpus for n in members)
    fit = sum(n.allocatable_gpus // tp for n in members)
    return PoolCapacity(fit, gpus, f"pool {decision['pool']}: {len(members)} usable node(s), {gpus} GPUs at TP {tp}")


def bounded_max(want_min: int, want_max: int, capacity: PoolCapacity | None) -> tuple[int, int, str]:
    """(minReplicas, maxReplicas, why): the spec's bounds, maxReplicas cut to the pool's capacity."""
    if capacity is None:
        return want_min, want_max, f"{want_min}-{want_max} replicas (pool capacity unknown: no usable nodes match)"
    if capacity.replicas >= want_max:
        return want_min, want_max, f"{want_min}-{want_max} replicas ({capacity.detail} fit {capacity.replicas})"
    top = max(want_min, capacity.replicas)
    short = "" if capacity.replicas >= want_min else f"; fewer than minReplicas {want_min}: some stay Pending"
    return (
        want_min,
        top,
        f"{want_min}-{top} replicas: maxReplicas {want_max} bounded by {capacity.detail}"
        f" (fit {capacity.replicas}){short}",
    )


# ------------------------------------------------------------------------------------------------ strategy


def gpus_per_pod(deployment: Mapping[str, Any]) -> int:
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    total = 0
    for c in containers:
        limits = (c.get("resources") or {}).get("limits") or {}
        total += sum(int(v) for k, v in limits.items() if k.endswith("/gpu") and str(v).isdigit())
    return total


def gpus_claimed(deployments: Iterable[Mapping[str, Any]]) -> int:
    """GPUs the given Deployments claim at their current replica counts."""
    return sum(int((d.get("spec") or {}).get("replicas") or 0) * gpus_per_pod(d) for d in deployments)


def max_surge(free_gpus: int, tensor_parallel_size: int, replicas: int) -> int:
    """New pods a rollout may add on top of the replica count: as many as the free GPUs hold, at most a full set."""
    if tensor_parallel_size <= 0:
        return 0
    return max(0, min(free_gpus // tensor_parallel_size, replicas))


def live_strategy(live: Mapping[str, Any] | None) -> Obj | None:
    return ((live or {}).get("spec") or {}).get("strategy")


def template_changed(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Applying `desired` would start a rollout: its pod template differs from the live one."""
    if live is None:
        return False
    want = (desired.get("spec") or {}).get("template") or {}
    return not is_subset(want, (live.get("spec") or {}).get("template") or {})


# ------------------------------------------------------------------------------------------------ rollout state


@dataclass(frozen=True)
class RolloutState:
    complete: bool
    available: int  # available pods of the current template (0 while old pods remain)
    stuck: str  # why the rollout is stuck ("" when it is not)
    summary: str


def _deadline_exceeded(status: Mapping[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "no progress")
    return None


def _seen(deployment: Mapping[str, Any]) -> bool:
    """The Deployment controller has observed the latest spec (its status speaks of the current template)."""
    status = deployment.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)


def rollout_stuck(deployment: Mapping[str, Any]) -> bool:
    """The Deployment controller marked the latest rollout ProgressDeadlineExceeded (gather then reads its pods)."""
    return _seen(deployment) and _deadline_exceeded(deployment.get("status") or {}) is not None


def match_labels(deployment: Mapping[str, Any]) -> str:
    """The Deployment's pod selector as a label selector string."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def rollout_state(
    deployment: Mapping[str, Any] | None, replicas: int, pods: Sequence[Mapping[str, Any]]
) -> RolloutState:
    """How a pool's Deployment stands against `replicas` desired pods of its current template."""
    if deployment is None:
        return RolloutState(replicas == 0, 0, "", "Pending (Deployment not created yet)")
    status = deployment.get("status") or {}
    seen = _seen(deployment)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    new_available = available if seen and updated >= total else min(available, updated) if seen else 0
    complete = seen and updated >= replicas and total <= updated and available >= replicas
    exceeded = _deadline_exceeded(status) if seen else None
    if exceeded is not None and not complete:
        why = pod_problem(pods) or exceeded
        return RolloutState(False, new_available, why, f"Stuck: {why}")
    if complete:
        return RolloutState(True, min(available, replicas), "", "Complete")
    old = max(0, total - updated)
    return RolloutState(
        False,
        new_available,
        "",
        f"RollingOut: {updated}/{replicas} updated, {new_available} available" + (f", {old} old" if old else ""),
    )


def pod_problem(pods: Sequence[Mapping[str, Any]]) -> str:
    """Why the newest pod that is not Ready is not: a container's waiting/terminated reason, its scheduling
    failure, or its Ready condition ("" when every pod is Ready)."""
    unready = [
        p
        for p in pods
        if not is_true((p.get("status") or {}).get("conditions"), "Ready")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    if not unready:
        return ""
    pod = max(unready, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        for state in ("waiting", "terminated"):
            s = (cs.get("state") or {}).get(state) or {}
            if s.get("reason") and s.get("reason") != "Completed":
                return f"pod {name}: container {cs.get('name')} {s['reason']}" + _msg(s)
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("reason"):
            return f"pod {name}: container {cs.get('name')} restarted ({last['reason']}" + (
                f", exit code {last.get('exitCode')})" if last.get("exitCode") is not None else ")"
            )
    for ctype in ("PodScheduled", "ContainersReady", "Ready"):
        c = condition(status.get("conditions"), ctype)
        if c is not None and c.get("status") != "True":
            return f"pod {name}: {ctype} {c.get('reason') or 'False'}" + _msg(c)
    return f"pod {name}: {status.get('phase') or 'Pending'}, not Ready"


def _msg(obj: Mapping[str, Any]) -> str:
    text = str(obj.get("message") or "").strip()
    return f": {text[:300]}" if text else ""

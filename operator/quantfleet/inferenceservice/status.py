"""InferenceService status, pure: named conditions from decisions and observed Deployments; Ready their conjunction.

Conditions:
  ModelReady   the model resolved (its QuantizedModel Ready, its config.json readable)
  Planned      every pool has a decision (pinned, or made this pass); False says why none could be made
  Available    every pool has its desired replicas of the *current* pod template available (old pods do not count)
  Progressing  a rollout is under way (new ReplicaSet not fully updated / available, or a pool waiting its turn);
               reason RolloutStuck when the Deployment controller gave up on it (ProgressDeadlineExceeded)
  Degraded     a pinned pool lost its nodes or GPUs (a CPU pool: its nodes or the memory it was sized for); the
               decision is kept (never a silent re-plan). Also a stuck rollout (with the pod's reason) and an
               autoscaler that was asked for but is not installed.
Ready = ModelReady ∧ Planned ∧ Available ∧ ¬Progressing. Degraded is reported beside it: a pool whose nodes went
NotReady may still be serving, and flipping Ready on every node blip would page people for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api.conditions import Cond, Requirement, condition
from quantfleet.api.inferenceservice import InferenceServiceStatus
from quantfleet.api.status import build_status
from quantfleet.hardware import LabelError
from quantfleet.hardware.cpu import memory_quantity_bytes
from quantfleet.hardware.pools import ClusterGpus, CpuPool, pool_for_selector
from quantfleet.inferenceservice.rollout import RolloutState, rollout_state
from quantfleet.render.outcome import Event, Outcome
from quantfleet.render.vllm import endpoint

Obj = dict[str, Any]
REPLAN_HINT = "set annotation quantfleet.io/replan to re-plan"

QUIET_REASONS = frozenset({"RollingOut", "WaitingForQuantizedModel"})
READY_REQUIRES = (
    Requirement("ModelReady"),
    Requirement("Planned"),
    Requirement("Available"),
    Requirement("Progressing", "False"),
)
# Decision fields rebuilt every pass from the world and the spec (never part of the pinned plan).
PER_PASS_FIELDS = frozenset({"readyReplicas", "autoscaler", "minReplicas", "maxReplicas", "scaling", "rollout"})


@dataclass(frozen=True)
class Progress:
    """What this pass saw of the rollout, beside the decisions."""

    plan_hash: str
    plan_generation: int | None
    states: Mapping[str, RolloutState] = field(default_factory=dict)  # pool -> its Deployment's rollout
    waiting: Mapping[str, str] = field(default_factory=dict)  # pool -> why its new template waits its turn
    autoscaling_problem: str = ""


def _finish(isvc: Obj, fields: Obj, conds: list[Cond], now: str, ready_message: str = "") -> tuple[Obj, list[Event]]:
    meta = isvc["metadata"]
    status, changed = build_status(
        InferenceServiceStatus,
        isvc.get("status"),
        fields,
        conds,
        READY_REQUIRES,
        now,
        meta.get("generation"),
        ("Serving", ready_message),
    )
    # Events record what went wrong and what recovered; routine progress (a first rollout, waiting for a model's
    # calibration) lives in the conditions only: at fleet scale an Event per service per rollout is a write apiece.
    before = condition((isvc.get("status") or {}).get("conditions"), "Ready") or {}
    was_failing = before.get("status") == "False" and before.get("reason") not in QUIET_REASONS
    events = []
    for cond in changed:
        failing = cond["type"] == "Ready" and cond["status"] == "False" and cond["reason"] not in QUIET_REASONS
        if failing or (cond["type"] == "Degraded" and cond["status"] == "True"):
            events.append(Event("Warning", cond["reason"], cond.get("message") or cond["reason"]))
        elif cond["type"] == "Ready" and cond["status"] == "True" and was_failing:
            events.append(Event("Normal", "Serving", f"recovered from {before.get('reason')}: {cond.get('message')}"))
    return status, events


def observe(decisions: Sequence[Obj], deployments: Mapping[str, Obj]) -> list[Obj]:
    """Pinned decisions with the available replicas of their live Deployments' current templates."""
    return [
        {**d, "readyReplicas": rollout_state(deployments.get(d["deployment"]), d["replicas"], ()).available}
        for d in decisions
    ]


def _cpu_problem(cluster: ClusterGpus, d: Obj) -> str | None:
    """Why a pinned CPU pool can no longer serve as planned (None: it can)."""
    try:
        pool = pool_for_selector(cluster, d["nodeSelector"])
    except LabelError:
        return f"pool {d['pool']} has no GPU-less nodes any more"
    if not isinstance(pool, CpuPool):
        return f"pool {d['pool']}: its nodeSelector now matches GPU nodes"
    if not pool.usable:
        return f"pool {d['pool']}: no Ready, schedulable node (cordoned or NotReady)"
    need = memory_quantity_bytes(d.get("memory"))
    if need > pool.memory_bytes:
        have = f"{pool.memory_bytes // 2**20}Mi"
        return f"pool {d['pool']}: the smallest node's allocatable memory {have} < the pinned {d['memory']}"
    return None


def degraded(cluster: ClusterGpus, decisions: Sequence[Obj]) -> str:
    problems = []
    for d in decisions:
        if d.get("device") == "cpu":
            problem = _cpu_problem(cluster, d)
            if problem:
                problems.append(problem)
            continue
        pool = next((p for p in cluster.pools if dict(p.node_selector).items() <= d["nodeSelector"].items()), None)
        if pool is None:
            problems.append(f"pool {d['pool']} has no GPU nodes any more")
        elif not pool.usable:
            problems.append(f"pool {d['pool']}: no Ready, schedulable node (cordoned or NotReady)")
        elif pool.gpus_per_node < d["tensorParallelSize"]:
            problems.append(
                f"pool {d['pool']}: {pool.gpus_per_node} allocatable GPUs per node < TP {d['tensorParallelSize']}"
            )
    return "; ".join(problems) + f". The pinned decision is kept; {REPLAN_HINT}" if problems else ""


def invalid(isvc: Obj, message: str, now: str) -> Outcome:
    conds = [
        Cond("ModelReady", "Unknown", "SpecInvalid", message),
        Cond("Planned", "False", "SpecInvalid", message),
        Cond("Available", "False", "SpecInvalid"),
        Cond("Progressing", "False", "SpecInvalid"),
        Cond("Degraded", "False", "SpecInvalid"),
    ]
    status, events = _finish(isvc, {}, conds, now)
    return Outcome(status=status, events=tuple(events))


def blocked(
    isvc: Obj,
    reason: str,
    message: str,
    waiting: bool,
    pinned: list[Obj],
    deployments: Mapping[str, Obj],
    now: str,
    degraded: bool = False,
) -> Outcome:
    """Nothing new is rolled out; existing Deployments keep serving and status says why."""
    prev = isvc.get("status") or {}
    observed = observe(pinned, deployments)
    keep = {k: prev[k] for k in ("planHash", "planGeneration") if prev.get(k)}
    conds = [
        Cond("ModelReady", "False", reason, message) if waiting else Cond("ModelReady", "True", "Resolved"),
        Cond("Planned", "False", reason, message),
        Cond("Available", "False", reason, message),
        Cond("Progressing", "False", reason, message),
        Cond("Degraded", "True", reason, message) if degraded else Cond("Degraded", "False", "AsPlanned"),
    ]
    status, events = _finish(isvc, {**keep, **({"decisions": observed} if observed else {})}, conds, now)
    return Outcome(status=status, events=tuple(events))


def serving(
    isvc: Obj, decisions: list[Obj], progress: Progress, cluster: ClusterGpus, now: str
) -> tuple[Obj, list[Event]]:
    meta = isvc["metadata"]
    idle = RolloutState(True, 0, "", "Complete")
    observed = []
    for d in decisions:
        state = progress.states.get(d["pool"], idle)
        observed.append(
            {**d, "readyReplicas": state.available, "rollout": progress.waiting.get(d["pool"]) or state.summary}
        )
    total = sum(d["replicas"] for d in observed)
    ready = sum(d["readyReplicas"] for d in observed)
    stuck = "; ".join(
        f"pool {d['pool']}: rollout stuck: {progress.states[d['pool']].stuck}"
        for d in decisions
        if d["pool"] in progress.states and progress.states[d["pool"]].stuck
    )
    progressing = bool(progress.waiting) or ready < total or not all(s.complete for s in progress.states.values())
    counts = f"{ready}/{total} replicas ready"
    rolling = "RolloutStuck" if stuck else "RollingOut"
    moving = progressing or bool(stuck)
    problems = [
        (reason, text)
        for reason, text in (
            ("PoolUnavailable", degraded(cluster, observed)),
            ("RolloutStuck", stuck),
            ("AutoscalerUnavailable", progress.autoscaling_problem),
        )
        if text
    ]
    conds = [
        Cond("ModelReady", "True", "Resolved", f"serving {', '.join(sorted({d['modelUri'] for d in decisions}))}"),
        Cond("Planned", "True", "Planned", f"{len(decisions)} pool(s): " + ", ".join(d["pool"] for d in decisions)),
        Cond(
            "Available",
            "True" if ready >= total else "False",
            "ReplicasReady" if ready >= total else rolling,
            "; ".join(x for x in (counts, stuck) if x),
        ),
        Cond(
            "Progressing",
            "True" if moving else "False",
            rolling if moving else "Complete",
            "; ".join(x for x in (counts, stuck, *progress.waiting.values()) if x),
        ),
        Cond(
            "Degraded",
            "True" if problems else "False",
            problems[0][0] if problems else "AsPlanned",
            "; ".join(text for _, text in problems) or "every pinned pool is available",
        ),
    ]
    fields = {
        "decisions": observed,
        "planHash": progress.plan_hash,
        "planGeneration": progress.plan_generation,
        "precision": ",".join(dict.fromkeys(d["precision"] for d in decisions)),
        "runtime": ",".join(dict.fromkeys(d.get("runtime") or "vllm" for d in decisions)),
        "checkpointFormat": ",".join(dict.fromkeys(d.get("checkpointFormat") or "bf16" for d in decisions)),
        "compute": "; ".join(f"{d['pool']}: {d['compute']}" for d in decisions if d.get("compute")) or None,
        "kvCacheDtype": ",".join(dict.fromkeys(d["kvCacheDtype"] for d in decisions)),
        "pools": ",".join(d["pool"] for d in decisions),
        "replicas": total,
        "readyReplicas": ready,
        "endpoint": endpoint(meta["name"], meta["namespace"]),
    }
    return _finish(isvc, fields, conds, now, counts)

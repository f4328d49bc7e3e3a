"""QuantizedModel, pure core: {the object, cluster facts} -> calibration Job, checkpoint storage, status, Events.

Level-triggered: status is rebuilt from the world on every pass (the Job and its pods, the validated result
manifest, another QuantizedModel with the same recipe hash to reuse). The pool decision lives on the Job itself
(annotations), so a restart reads it back instead of re-deciding. Deletion honours spec.storage.retention through
a finalizer that only objects with retention Delete carry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from quantfleet.api.common import parse_pvc_uri
from quantfleet.api.conditions import Cond, is_true
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.hardware.pools import ClusterGpus
from quantfleet.planning import weight_bytes
from quantfleet.planning.placement import choose_calibration_pool, choose_gguf_pool
from quantfleet.planning.tools import amd_placement
from quantfleet.quantizedmodel.jobs import observe_job
from quantfleet.quantizedmodel.plan import (
    PLACEMENT_ANNOTATION,
    POOL_ANNOTATION,
    RETRY_ANNOTATION,
    TOOL_REASON_ANNOTATION,
    Invalid,
    Plan,
    make_plan,
)
from quantfleet.quantizedmodel.status import available, finish, gate_conditions, not_available, status_from_job
from quantfleet.render.calibration import (
    CalibrationJobInput,
    StorageTarget,
    default_claim_name,
    expected_cleanup_job,
    expected_job,
    expected_pvc,
)
from quantfleet.render.common import LABEL_COMPONENT, LABEL_QM
from quantfleet.render.outcome import Event, Outcome

FINALIZER = "quantfleet.io/finalizer"
CLEANUP_TIMEOUT = 600.0  # a deletion never waits longer than this for the checkpoint cleanup
Obj = dict[str, Any]


@dataclass(frozen=True)
class ModelFacts:
    """Everything one QuantizedModel's reconcile reads, gathered from the watch caches."""

    configmap: Obj | None  # the spec.source.modelConfigRef ConfigMap, if any
    jobs: Sequence[Obj]  # Jobs labelled for this object (calibration and cleanup)
    pods: Mapping[str, Sequence[Obj]]  # calibration pods by Job name
    claim: Obj | None  # the PVC named like the default checkpoint claim, whoever made it
    donors: Callable[[str], Sequence[Obj]]  # recipe hash -> QuantizedModels whose checkpoint has it
    pools: ClusterGpus
    calibrate_image: str
    now: str  # RFC 3339, for conditions and Events
    now_seconds: float  # the same instant, for the deletion timeout
    deletion_seconds: float | None = None  # when deletionTimestamp was set (seconds, same clock)


def _component(obj: Obj) -> str:
    return str((obj["metadata"].get("labels") or {}).get(LABEL_COMPONENT, ""))


def wanted_finalizers(qm: Obj, spec: QuantizedModelSpec | None) -> tuple[str, ...] | None:
    """The finalizer list: ours only with retention Delete (Retain objects never block namespace deletion)."""
    if spec is None:
        return None
    current = list(qm["metadata"].get("finalizers") or [])
    others = [f for f in current if f != FINALIZER]
    delete = spec.storage is not None and spec.storage.retention == "Delete"
    want = (*others, FINALIZER) if delete else tuple(others)
    return None if list(want) == current else want


def outcome(qm: Obj, facts: ModelFacts) -> Outcome:
    meta = qm["metadata"]
    if meta.get("deletionTimestamp"):
        return finalize(qm, facts)
    try:
        spec: QuantizedModelSpec | None = QuantizedModelSpec.model_validate(qm.get("spec") or {})
    except ValidationError:
        spec = None
    finalizers = wanted_finalizers(qm, spec)
    try:
        plan = make_plan(qm, facts.configmap)
    except Invalid as exc:
        failed = exc.reason == "SpecInvalid"
        status, events = finish(
            qm,
            {"phase": "Failed" if failed else "Pending"},
            not_available(exc.reason, str(exc), failed=failed),
            facts.now,
        )
        return Outcome(status=status, events=tuple(events), finalizers=finalizers)
    return _with(_calibrate(qm, plan, facts), finalizers)


def _with(out: Outcome, finalizers: tuple[str, ...] | None) -> Outcome:
    return Outcome(out.apply, out.create, out.delete, out.status, out.events, finalizers, out.requeue_after)


def _calibrate(qm: Obj, plan: Plan, facts: ModelFacts) -> Outcome:
    meta = qm["metadata"]
    name = meta["name"]
    prev: Obj = qm.get("status") or {}
    base: Obj = {
        "recipeHash": plan.recipe_hash,
        "tool": plan.recipe.tool,
        "toolReason": plan.tool_reason,
        "kvCacheDtype": "fp8_e4m3" if plan.spec.kv_cache_scales else "auto",
    }
    jobs = [j for j in facts.jobs if _component(j) == "calibration" and not j["metadata"].get("deletionTimestamp")]
    # A spec change (or retry) makes every other calibration Job of this object obsolete.
    obsolete = tuple(j for j in jobs if j["metadata"]["name"] != plan.job_name)
    events = [
        Event(
            "Normal",
            "ObsoleteJobDeleted",
            f"deleted calibration Job {j['metadata']['name']}: the recipe changed (now {plan.job_name})",
        )
        for j in obsolete
    ]
    job = next((j for j in jobs if j["metadata"]["name"] == plan.job_name), None)

    def done(fields: Obj, conds: list[Cond], create: tuple[Obj, ...] = ()) -> Outcome:
        status, transitions = finish(qm, fields, conds, facts.now)
        return Outcome(create=create, delete=obsolete, status=status, events=(*events, *transitions))

    prev_ckpt = prev.get("checkpoint") or {}
    if job is None and prev_ckpt.get("recipeHash") == plan.recipe_hash and is_true(prev.get("conditions"), "Ready"):
        # A validated checkpoint for exactly this recipe (its Job may have been cleaned up by TTL).
        return done({**base, **_carry(prev), "phase": "Ready", "checkpoint": prev_ckpt}, _carry_conditions(prev))
    if job is None:
        donor = next(
            (
                d
                for d in facts.donors(plan.recipe_hash)
                if d["metadata"]["name"] != name
                and not ((d.get("status") or {}).get("checkpoint") or {}).get("reusedFrom")
                and is_true((d.get("status") or {}).get("conditions"), "Ready")
                and not d["metadata"].get("deletionTimestamp")
            ),
            None,
        )
        if donor is not None:
            dst = donor["status"]
            ckpt = {**dst["checkpoint"], "reusedFrom": donor["metadata"]["name"]}
            carry = {k: dst[k] for k in ("expertCoverage", "quality", "pool") if dst.get(k)}
            msg = f"reusing checkpoint {ckpt['uri']} of QuantizedModel {donor['metadata']['name']} (same recipe hash)"
            return done(
                {**base, **carry, "phase": "Ready", "checkpoint": ckpt, "placementReason": msg},
                [*available("CheckpointReused", msg, "Reused"), *gate_conditions(plan, carry.get("quality"))],
            )
        if prev.get("jobName") == plan.job_name and is_true(prev.get("conditions"), "Failed"):
            # The failed Job was cleaned up (TTL): stay failed until the spec or the retry annotation changes.
            return done({**base, **_carry(prev), "phase": "Failed", "jobName": plan.job_name}, _carry_conditions(prev))
        created = _new_job(qm, plan, facts)
        if isinstance(created, NotNow):
            return done({**base, **created.fields}, created.conds)
        job, children, started = created
        events.append(started)
        obs = observe_job(job, [])
    else:
        children = ()
        obs = observe_job(job, facts.pods.get(plan.job_name, ()))
    annotations = job["metadata"].get("annotations") or {}
    placed = {
        **base,
        "jobName": plan.job_name,
        "pool": annotations.get(POOL_ANNOTATION),
        "placementReason": annotations.get(PLACEMENT_ANNOTATION),
    }
    fields, conds = status_from_job(plan, obs, placed)
    return done(fields, conds, children)


def _carry(prev: Obj) -> Obj:
    return {k: prev[k] for k in ("pool", "placementReason", "expertCoverage", "quality", "jobName") if prev.get(k)}


def _carry_conditions(prev: Obj) -> list[Cond]:
    """The previous pass's conditions (Ready is derived again); a status an older operator wrote without
    CheckpointAvailable gets it from its Ready."""
    conds = {
        c["type"]: Cond(c["type"], c["status"], c["reason"], c.get("message", "")) for c in prev.get("conditions") or []
    }
    ready = conds.pop("Ready", None)
    if "CheckpointAvailable" not in conds and ready is not None:
        conds["CheckpointAvailable"] = Cond("CheckpointAvailable", ready.status, ready.reason, ready.message)
    return list(conds.values())


@dataclass(frozen=True)
class NotNow:
    """Why the calibration Job cannot be created on this pass: status fields and conditions to report."""

    fields: Obj
    conds: list[Cond]


def _new_job(qm: Obj, plan: Plan, facts: ModelFacts) -> NotNow | tuple[Obj, tuple[Obj, ...], Event]:
    """The calibration Job (and default checkpoint PVC) to create, or why it cannot be created now."""
    meta = qm["metadata"]
    name, ns = meta["name"], meta["namespace"]
    spec = plan.spec
    placement_spec = spec.placement
    bf16 = weight_bytes(plan.arch, "bf16").total if plan.arch else None
    override = placement_spec.gpu_count if placement_spec else None
    resources = spec.resources.wire() if spec.resources else None
    cpu_only = plan.recipe.tool == "llama-cpp"
    gpu_resource: str | None
    if placement_spec and placement_spec.node_selector:
        selector = dict(placement_spec.node_selector)
        gpu_resource = "amd.com/gpu" if amd_placement(selector) else "nvidia.com/gpu"  # the rule the tool choice uses
        pool_name, gpus = "custom", override or 1
        if cpu_only:
            gpu_resource, gpus = None, 0
        reason = f"spec.placement.nodeSelector {selector} (automatic pool choice skipped)"
    elif cpu_only:
        cpu_placement = choose_gguf_pool(facts.pools, bf16)
        if cpu_placement.pool is None:
            return NotNow(
                {"phase": "Pending", "placementReason": cpu_placement.reason},
                not_available("NoSuitablePool", cpu_placement.reason),
            )
        selector = dict(cpu_placement.pool.node_selector)
        gpu_resource, pool_name, gpus, reason = None, cpu_placement.pool.name, 0, cpu_placement.reason
        if cpu_placement.memory_bytes and not (resources or {}).get("requests", {}).get("memory"):
            requests = {
                **((resources or {}).get("requests") or {}),
                "memory": f"{cpu_placement.memory_bytes // 2**20}Mi",
            }
            resources = {**(resources or {}), "requests": requests}
    else:
        placement = choose_calibration_pool(
            facts.pools, spec.scheme, bf16, bool(placement_spec and placement_spec.allow_fallback), override
        )
        if placement.pool is None:
            return NotNow(
                {"phase": "Pending", "placementReason": placement.reason},
                not_available("NoSuitablePool", placement.reason),
            )
        selector = dict(placement.pool.node_selector)
        gpu_resource, pool_name, gpus, reason = (
            placement.pool.gpu_resource,
            placement.pool.name,
            placement.gpu_count,
            placement.reason,
        )
    children: list[Obj] = []
    if plan.storage.claim == default_claim_name(name) and not (spec.storage and spec.storage.destination):
        claim = facts.claim
        if claim is None:
            children.append(
                expected_pvc(
                    name,
                    ns,
                    spec.storage.size if spec.storage else "100Gi",
                    spec.storage.storage_class_name if spec.storage else None,
                )
            )
        elif (claim["metadata"].get("labels") or {}).get(LABEL_QM) != name:
            msg = f"PersistentVolumeClaim {claim['metadata']['name']} exists and is not managed by this QuantizedModel"
            return NotNow({"phase": "Failed"}, not_available("StorageConflict", msg, failed=True))
    source = spec.source.uri or ""
    pod_meta = spec.pod_metadata
    inp = CalibrationJobInput(
        name=name,
        namespace=ns,
        uid=meta["uid"],
        recipe=plan.recipe,
        recipe_hash=plan.recipe_hash,
        checkpoint_format=plan.checkpoint_format,
        storage=plan.storage,
        image=spec.image or facts.calibrate_image,
        node_selector=selector,
        gpu_resource=gpu_resource,
        gpu_count=gpus,
        tolerations=tuple(t.wire() for t in (placement_spec.tolerations or [])) if placement_spec else (),
        resources=resources,
        cpu_only=cpu_only,
        source_claim=parse_pvc_uri(source)[0] if source.startswith("pvc://") else None,
        source_credentials_secret=spec.source.credentials_secret.name if spec.source.credentials_secret else None,
        active_deadline_seconds=spec.active_deadline_seconds,
        retry_token=(meta.get("annotations") or {}).get(RETRY_ANNOTATION),
        pod_labels=(pod_meta.labels or {}) if pod_meta else {},
        pod_annotations=(pod_meta.annotations or {}) if pod_meta else {},
    )
    job = expected_job(inp)
    job["metadata"]["annotations"].update(
        {POOL_ANNOTATION: pool_name, PLACEMENT_ANNOTATION: reason, TOOL_REASON_ANNOTATION: plan.tool_reason}
    )
    started = Event(
        "Normal",
        "CalibrationStarted",
        f"created Job {plan.job_name} on pool {pool_name} ({f'{gpus} GPU' if gpus else 'CPU only'}): {reason}",
    )
    return job, (*children, job), started


# ------------------------------------------------------------------------------------------------ deletion


def finalize(qm: Obj, facts: ModelFacts) -> Outcome:
    """Honour the retention policy, then release the object; never blocks for more than CLEANUP_TIMEOUT."""
    meta = qm["metadata"]
    name, ns = meta["name"], meta["namespace"]
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER not in finalizers:
        return Outcome()
    release = tuple(f for f in finalizers if f != FINALIZER)
    try:
        spec = QuantizedModelSpec.model_validate(qm.get("spec") or {})
    except ValidationError:
        return Outcome(finalizers=release)
    retention = spec.storage.retention if spec.storage else "Retain"
    ckpt = (qm.get("status") or {}).get("checkpoint") or {}
    if retention == "Retain":
        if ckpt.get("uri") and not ckpt.get("reusedFrom"):
            retained = Event("Normal", "CheckpointRetained", f"checkpoint {ckpt['uri']} retained (retention: Retain)")
            return Outcome(finalizers=release, events=(retained,))
        return Outcome(finalizers=release)
    if ckpt.get("reusedFrom"):
        return Outcome(finalizers=release)  # the donor owns the files
    destination = spec.storage.destination if spec.storage else None
    if not destination:
        claim = facts.claim
        if claim is not None and (claim["metadata"].get("labels") or {}).get(LABEL_QM) == name:
            gone = Event("Normal", "CheckpointDeleted", f"deleted PVC {default_claim_name(name)} (retention: Delete)")
            return Outcome(delete=(claim,), finalizers=release, events=(gone,))
        return Outcome(finalizers=release)
    if not destination.startswith("pvc://") or not ckpt.get("uri"):
        events: tuple[Event, ...] = ()
        if destination.startswith("s3://"):
            events = (
                Event(
                    "Warning",
                    "CheckpointNotDeleted",
                    f"retention Delete for {ckpt.get('uri', destination)}: s3 objects are not deleted by the operator",
                ),
            )
        return Outcome(finalizers=release, events=events)
    claim_name, sub = parse_pvc_uri(ckpt["uri"])
    cleanup = expected_cleanup_job(
        name, ns, meta["uid"], StorageTarget(ckpt["uri"], claim_name, sub), spec.image or facts.calibrate_image
    )
    live = next((j for j in facts.jobs if j["metadata"]["name"] == cleanup["metadata"]["name"]), None)
    elapsed = facts.now_seconds - (facts.deletion_seconds or facts.now_seconds)
    if live is None and elapsed <= CLEANUP_TIMEOUT:
        return Outcome(create=(cleanup,), requeue_after=CLEANUP_TIMEOUT - elapsed + 1)
    obs = observe_job(live, [])
    if obs.state == "succeeded":
        return Outcome(
            finalizers=release,
            events=(Event("Normal", "CheckpointDeleted", f"deleted {ckpt['uri']} (retention: Delete)"),),
        )
    if obs.state == "failed" or elapsed > CLEANUP_TIMEOUT:
        why = obs.detail or "timed out"
        return Outcome(
            finalizers=release,
            events=(
                Event(
                    "Warning",
                    "CheckpointNotDeleted",
                    f"could not delete {ckpt['uri']} ({why}); releasing the object anyway",
                ),
            ),
        )
    return Outcome(requeue_after=CLEANUP_TIMEOUT - elapsed + 1)

"""QuantizedModel reconcile: spec -> recipe -> placement -> immutable calibration Job -> status.

One level-triggered function serves create, update, resume, the resync timer and child Job
events. Status is rebuilt from the world on every pass: the Job and its pods, the validated
result manifest, other QuantizedModels with the same recipe hash (reuse). Decisions that would
move work (the pool) live on the Job itself, so a restart reads them back instead of re-deciding.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from quantfleet import versions
from quantfleet.api.common import first_error, parse_pvc_uri
from quantfleet.api.conditions import Cond, is_true
from quantfleet.api.manifest import ManifestError, ResultManifest, parse_manifest
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.controllers import context
from quantfleet.controllers.context import Context
from quantfleet.hardware.pools import group_pools
from quantfleet.planning import ConfigError, ModelArch, PlanError, parse_model_config, weight_bytes
from quantfleet.planning.placement import choose_calibration_pool
from quantfleet.planning.tools import choose_tool
from quantfleet.quantizedmodel.jobs import JobObservation, observe_job
from quantfleet.render.calibration import (
    CalibrationJobInput,
    StorageTarget,
    default_claim_name,
    expected_cleanup_job,
    expected_job,
    expected_pvc,
    job_name,
    selector_labels,
    storage_target,
)
from quantfleet.render.common import LABEL_COMPONENT

log = logging.getLogger("quantfleet.quantizedmodel")
RETRY_ANNOTATION = "quantfleet.io/retry"
POOL_ANNOTATION = "quantfleet.io/pool"
PLACEMENT_ANNOTATION = "quantfleet.io/placement-reason"
TOOL_REASON_ANNOTATION = "quantfleet.io/tool-reason"
Obj = dict[str, Any]
# Stand-in architecture for tool choice when the spec gives no config.json (sizes are never used from it).
UNKNOWN_DENSE = parse_model_config(
    {
        "model_type": "unknown",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
        "max_position_embeddings": 8192,
    }
)


class Invalid(Exception):
    """The spec (or what it references) cannot be turned into a recipe; not retried until it changes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    spec: QuantizedModelSpec
    arch: ModelArch | None
    recipe: CalibrationRecipe
    recipe_hash: str
    checkpoint_format: str
    storage: StorageTarget
    tool_reason: str
    job_name: str


def tool_version(tool: str) -> str:
    return versions.get("python.llmcompressor" if tool == "llm-compressor" else "python.nvidia-modelopt")


def source_uri(spec: QuantizedModelSpec) -> str:
    src = spec.source
    if src.hugging_face is not None:
        return f"hf://{src.hugging_face.repo}@{src.hugging_face.revision}"
    assert src.uri is not None
    return src.uri


def load_arch(ctx: Context, namespace: str, spec: QuantizedModelSpec) -> ModelArch | None:
    ref = spec.source.model_config_ref
    if ref is None:
        return None
    cm = ctx.kube.get("ConfigMap", ref.name, namespace)
    if cm is None:
        raise Invalid("ModelConfigMissing", f"ConfigMap {ref.name} (spec.source.modelConfigRef) not found")
    raw = (cm.get("data") or {}).get(ref.key)
    if raw is None:
        raise Invalid("ModelConfigMissing", f"ConfigMap {ref.name} has no key {ref.key!r}")
    try:
        return parse_model_config(json.loads(raw))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise Invalid("SpecInvalid", f"ConfigMap {ref.name}/{ref.key} is not a usable config.json: {exc}") from exc


def make_plan(ctx: Context, body: Obj) -> Plan:
    meta = body["metadata"]
    try:
        spec = QuantizedModelSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise Invalid("SpecInvalid", first_error(exc, "spec")) from exc
    arch = load_arch(ctx, meta["namespace"], spec)
    try:
        choice = choose_tool(spec.scheme, spec.tool, arch or UNKNOWN_DENSE, algorithm=spec.algorithm)
    except PlanError as exc:
        raise Invalid("SpecInvalid", str(exc)) from exc
    if arch is None:
        choice = replace(
            choice,
            reason=choice.reason + "; model config unknown (no spec.source.modelConfigRef): treated"
            " as dense, MoE routers are guarded by the calibration program from the loaded config",
        )
    if spec.storage and spec.storage.destination and spec.storage.destination.startswith("pvc://"):
        try:
            parse_pvc_uri(spec.storage.destination)
        except ValueError as exc:
            raise Invalid("SpecInvalid", str(exc)) from exc
    moe = spec.moe
    cal = spec.calibration
    ignore = tuple(dict.fromkeys((*choice.ignore, *((moe.extra_ignore or []) if moe else []))))
    recipe = CalibrationRecipe(
        source_uri=source_uri(spec),
        scheme=spec.scheme,
        algorithm=spec.algorithm,
        tool=choice.tool,
        tool_version=tool_version(choice.tool),
        ignore=ignore,
        calibrate_all_experts=moe.calibrate_all_experts if moe else True,
        min_tokens_per_expert=moe.min_tokens_per_expert if moe else 0,
        kv_cache_fp8=spec.kv_cache_scales,
        dataset=cal.dataset if cal else "builtin:python-stdlib",
        num_samples=cal.samples if cal else 512,
        max_seq_length=cal.sequence_length if cal else 2048,
        seed=cal.seed if cal else 0,
        output_uri="",
        max_perplexity_delta=spec.quality_gate.max_perplexity_delta if spec.quality_gate else None,
    )
    recipe_hash = recipe.content_hash()
    storage = spec.storage
    target = storage_target(
        meta["name"],
        storage.destination if storage else None,
        recipe_hash,
        storage.credentials_secret.name if storage and storage.credentials_secret else None,
    )
    recipe = recipe.model_copy(update={"output_uri": target.uri})
    retry = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    fmt = "modelopt" if choice.tool == "modelopt" else "compressed-tensors"
    return Plan(spec, arch, recipe, recipe_hash, fmt, target, choice.reason, job_name(meta["name"], recipe_hash, retry))


# ------------------------------------------------------------------------------------------------ reconcile


def reconcile(ctx: Context, body: Obj) -> None:
    context.reconcile_live(ctx, "QuantizedModel", body, _reconcile)


def _reconcile(ctx: Context, body: Obj) -> None:
    meta = body["metadata"]
    name, ns = meta["name"], meta["namespace"]
    prev: Obj = body.get("status") or {}
    try:
        plan = make_plan(ctx, body)
    except Invalid as exc:
        log.warning("quantizedmodel spec rejected object=%s/%s reason=%s message=%s", ns, name, exc.reason, exc)
        write_status(
            ctx,
            body,
            {"phase": "Failed" if exc.reason == "SpecInvalid" else "Pending"},
            [
                Cond("Ready", "False", exc.reason, str(exc)),
                Cond("Calibrating", "False", exc.reason),
                Cond("Failed", "True" if exc.reason == "SpecInvalid" else "False", exc.reason, str(exc)),
            ],
        )
        return

    base: Obj = {
        "recipeHash": plan.recipe_hash,
        "tool": plan.recipe.tool,
        "toolReason": plan.tool_reason,
        "kvCacheDtype": "fp8_e4m3" if plan.spec.kv_cache_scales else "auto",
    }
    jobs = ctx.kube.list("Job", ns, {**selector_labels(name), LABEL_COMPONENT: "calibration"})
    # A spec change (or retry) makes every other calibration Job of this object obsolete.
    for old in jobs:
        if old["metadata"]["name"] != plan.job_name and not old["metadata"].get("deletionTimestamp"):
            ctx.kube.delete("Job", old["metadata"]["name"], ns)
            ctx.event(
                body,
                "Normal",
                "ObsoleteJobDeleted",
                f"deleted calibration Job {old['metadata']['name']}: the recipe changed (now {plan.job_name})",
            )
    job: Obj | None = next((j for j in jobs if j["metadata"]["name"] == plan.job_name), None)

    # Already have a validated checkpoint for exactly this recipe (the Job may have been cleaned up by TTL).
    prev_ckpt = prev.get("checkpoint") or {}
    if job is None and prev_ckpt.get("recipeHash") == plan.recipe_hash and is_true(prev.get("conditions"), "Ready"):
        write_status(
            ctx,
            body,
            {**base, **_carry(prev), "phase": "Ready", "checkpoint": prev_ckpt},
            _carry_conditions(prev),  # as validated (CheckpointReady or CheckpointReused)
        )
        return
    if job is None:
        donor = _find_donor(ctx, ns, name, plan.recipe_hash)
        if donor is not None:
            ckpt = {**donor["status"]["checkpoint"], "reusedFrom": donor["metadata"]["name"]}
            carry = {k: donor["status"][k] for k in ("expertCoverage", "quality", "pool") if donor["status"].get(k)}
            msg = f"reusing checkpoint {ckpt['uri']} of QuantizedModel {donor['metadata']['name']} (same recipe hash)"
            write_status(
                ctx,
                body,
                {**base, **carry, "phase": "Ready", "checkpoint": ckpt, "placementReason": msg},
                [
                    Cond("Ready", "True", "CheckpointReused", msg),
                    Cond("Calibrating", "False", "Reused"),
                    Cond("Failed", "False", "Reused"),
                    *_gate_conditions(plan, carry.get("quality")),
                ],
            )
            return
        if prev.get("jobName") == plan.job_name and is_true(prev.get("conditions"), "Failed"):
            # The failed Job was cleaned up (TTL): stay failed until the spec or the retry annotation changes.
            write_status(
                ctx,
                body,
                {**base, **_carry(prev), "phase": "Failed", "jobName": plan.job_name},
                _carry_conditions(prev),
            )
            return
        job = _create_job(ctx, body, plan, base)
        if job is None:
            return

    pods = ctx.kube.list("Pod", ns, {"job-name": plan.job_name})
    obs = observe_job(job, pods)
    annotations = job["metadata"].get("annotations") or {}
    placed = {
        **base,
        "jobName": plan.job_name,
        "pool": annotations.get(POOL_ANNOTATION),
        "placementReason": annotations.get(PLACEMENT_ANNOTATION),
    }
    write_status(ctx, body, *status_from_job(plan, obs, placed))


def _carry(prev: Obj) -> Obj:
    return {k: prev[k] for k in ("pool", "placementReason", "expertCoverage", "quality", "jobName") if prev.get(k)}


def _carry_conditions(prev: Obj) -> list[Cond]:
    return [Cond(c["type"], c["status"], c["reason"], c.get("message", "")) for c in prev.get("conditions") or []]


def _find_donor(ctx: Context, ns: str, name: str, recipe_hash: str) -> Obj | None:
    for other in ctx.kube.list("QuantizedModel", ns):
        st = other.get("status") or {}
        if (
            other["metadata"]["name"] != name
            and (st.get("checkpoint") or {}).get("recipeHash") == recipe_hash
            and not (st.get("checkpoint") or {}).get("reusedFrom")
            and is_true(st.get("conditions"), "Ready")
            and not other["metadata"].get("deletionTimestamp")
        ):
            return other
    return None


def _create_job(ctx: Context, body: Obj, plan: Plan, base: Obj) -> Obj | None:
    meta = body["metadata"]
    name, ns = meta["name"], meta["namespace"]
    spec = plan.spec
    placement_spec = spec.placement
    cluster = group_pools(ctx.nodes())
    bf16 = weight_bytes(plan.arch, "bf16").total if plan.arch else None
    override = placement_spec.gpu_count if placement_spec else None
    if placement_spec and placement_spec.node_selector:
        selector = dict(placement_spec.node_selector)
        vendor_amd = any(k.startswith("amd.com/") for k in selector)
        gpu_resource = "amd.com/gpu" if vendor_amd else "nvidia.com/gpu"
        pool_name, gpus = "custom", override or 1
        reason = f"spec.placement.nodeSelector {selector} (automatic pool choice skipped)"
    else:
        placement = choose_calibration_pool(
            cluster, spec.scheme, bf16, bool(placement_spec and placement_spec.allow_fallback), override
        )
        if placement.pool is None:
            write_status(
                ctx,
                body,
                {**base, "phase": "Pending", "placementReason": placement.reason},
                [
                    Cond("Ready", "False", "NoSuitablePool", placement.reason),
                    Cond("Calibrating", "False", "NoSuitablePool", placement.reason),
                    Cond("Failed", "False", "NoSuitablePool"),
                ],
            )
            return None
        selector = dict(placement.pool.node_selector)
        gpu_resource, pool_name, gpus, reason = (
            placement.pool.gpu_resource,
            placement.pool.name,
            placement.gpu_count,
            placement.reason,
        )
    src_claim = None
    source = spec.source.uri or ""
    if source.startswith("pvc://"):
        src_claim, _ = parse_pvc_uri(source)
    pod_meta = spec.pod_metadata
    inp = CalibrationJobInput(
        name=name,
        namespace=ns,
        uid=meta["uid"],
        recipe=plan.recipe,
        recipe_hash=plan.recipe_hash,
        checkpoint_format=plan.checkpoint_format,
        storage=plan.storage,
        image=spec.image or versions.get("images.calibrate"),
        node_selector=selector,
        gpu_resource=gpu_resource,
        gpu_count=gpus,
        tolerations=tuple(t.wire() for t in (placement_spec.tolerations or [])) if placement_spec else (),
        resources=spec.resources.wire() if spec.resources else None,
        source_claim=src_claim,
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
    if plan.storage.claim == default_claim_name(name) and not (spec.storage and spec.storage.destination):
        pvc = expected_pvc(
            name,
            ns,
            spec.storage.size if spec.storage else "100Gi",
            spec.storage.storage_class_name if spec.storage else None,
        )
        existing = ctx.kube.get("PersistentVolumeClaim", pvc["metadata"]["name"], ns)
        if existing is None:
            ctx.kube.apply(pvc)
        elif (existing["metadata"].get("labels") or {}).get("quantfleet.io/quantizedmodel") != name:
            msg = f"PersistentVolumeClaim {pvc['metadata']['name']} exists and is not managed by this QuantizedModel"
            write_status(
                ctx,
                body,
                {**base, "phase": "Failed"},
                [
                    Cond("Ready", "False", "StorageConflict", msg),
                    Cond("Calibrating", "False", "StorageConflict"),
                    Cond("Failed", "True", "StorageConflict", msg),
                ],
            )
            return None
    created = ctx.kube.create(job)
    if created is not None:
        ctx.event(
            body,
            "Normal",
            "CalibrationStarted",
            f"created Job {plan.job_name} on pool {pool_name} ({gpus} GPU): {reason}",
        )
        log.info("calibration job created object=%s/%s job=%s pool=%s", ns, name, plan.job_name, pool_name)
        return created
    return ctx.kube.get("Job", plan.job_name, ns)


# ------------------------------------------------------------------------------------------------ status (pure)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


def _gate_conditions(plan: Plan, quality: Obj | None) -> list[Cond]:
    gate = plan.spec.quality_gate
    if gate is None:
        return []
    if not quality:
        return [Cond("QualityGate", "Unknown", "NotMeasured", "no quality metrics yet")]
    ok = quality.get("gate") == "Passed"
    return [
        Cond(
            "QualityGate",
            "True" if ok else "False",
            "Passed" if ok else "ThresholdExceeded",
            f"perplexity delta {quality.get('delta')} (max {gate.max_perplexity_delta})",
        )
    ]


def checkpoint_from_manifest(plan: Plan, manifest: ResultManifest) -> tuple[Obj, Obj | None, Obj | None]:
    ckpt: Obj = {
        "uri": plan.storage.uri,
        "format": manifest.format,
        "bytes": manifest.bytes,
        "size": human_bytes(manifest.bytes),
        "sha256": manifest.sha256,
        "tool": manifest.tool,
        "toolVersion": manifest.tool_version,
        "recipeHash": manifest.recipe_hash,
    }
    if manifest.simulated:
        ckpt["simulated"] = True
    cov = manifest.expert_coverage
    coverage = (
        {
            "numExperts": cov.num_experts,
            "routedMin": cov.routed_min,
            "calibratedMin": cov.calibrated_min,
            "allExperts": cov.all_experts,
        }
        if cov
        else None
    )
    quality = None
    if manifest.quality is not None:
        q = manifest.quality
        gate = plan.spec.quality_gate
        quality = {
            "perplexityBase": f"{q.perplexity_base:.4f}",
            "perplexityQuantized": f"{q.perplexity_quantized:.4f}",
            "delta": f"{q.delta:.4f}",
        }
        if gate is not None:
            quality["gate"] = "Passed" if q.delta <= gate.max_perplexity_delta else "Failed"
    return ckpt, coverage, quality


def status_from_job(plan: Plan, obs: JobObservation, base: Obj) -> tuple[Obj, list[Cond]]:
    if obs.state in ("pending", "active"):
        msg = f"Job {obs.name}: {obs.detail}"
        return (
            {**base, "phase": "Calibrating"},
            [
                Cond("Ready", "False", "Calibrating", msg),
                Cond("Calibrating", "True", obs.state.capitalize(), msg),
                Cond("Failed", "False", "Calibrating"),
                *_gate_conditions(plan, None),
            ],
        )
    if obs.state == "failed":
        term = obs.termination
        detail = obs.detail
        if term is not None:
            detail = f"pod exited with code {term.exit_code} ({term.reason or 'Error'}): {term.message or 'no message'}"
            if obs.detail:
                detail += f" [{obs.detail}]"
        msg = f"calibration Job {obs.name} failed: {detail}. Change the spec or set annotation {RETRY_ANNOTATION}"
        return (
            {**base, "phase": "Failed"},
            [
                Cond("Ready", "False", "CalibrationFailed", msg),
                Cond("Calibrating", "False", "CalibrationFailed"),
                Cond("Failed", "True", "CalibrationFailed", msg),
                *_gate_conditions(plan, None),
            ],
        )
    # succeeded
    text = obs.termination.message if obs.termination else ""
    try:
        if not text:
            raise ManifestError("the calibration pod wrote no result manifest to its termination message")
        manifest = parse_manifest(text)
        if manifest.recipe_hash != plan.recipe_hash:
            raise ManifestError(f"manifest is for recipe {manifest.recipe_hash[:12]}, expected {plan.recipe_hash[:12]}")
        if manifest.scheme != plan.recipe.scheme or manifest.tool != plan.recipe.tool:
            raise ManifestError(
                f"manifest reports {manifest.scheme}/{manifest.tool}, expected {plan.recipe.scheme}/{plan.recipe.tool}"
            )
    except ManifestError as exc:
        msg = f"Job {obs.name} completed but its checkpoint cannot be trusted: {exc}"
        return (
            {**base, "phase": "Failed"},
            [
                Cond("Ready", "False", "InvalidManifest", msg),
                Cond("Calibrating", "False", "InvalidManifest"),
                Cond("Failed", "True", "InvalidManifest", msg),
                *_gate_conditions(plan, None),
            ],
        )
    ckpt, coverage, quality = checkpoint_from_manifest(plan, manifest)
    status = {**base, "checkpoint": ckpt}
    if coverage:
        status["expertCoverage"] = coverage
    if quality:
        status["quality"] = quality
    gate = plan.spec.quality_gate
    if gate is not None and (quality is None or quality.get("gate") != "Passed"):
        why = (
            "the manifest carries no perplexity measurement"
            if quality is None
            else f"perplexity delta {quality['delta']} exceeds {gate.max_perplexity_delta}"
        )
        msg = f"quality gate failed: {why}"
        return (
            {**status, "phase": "Failed"},
            [
                Cond("Ready", "False", "QualityGateFailed", msg),
                Cond("Calibrating", "False", "Done"),
                Cond("Failed", "True", "QualityGateFailed", msg),
                Cond("QualityGate", "False", "ThresholdExceeded" if quality else "NotMeasured", msg),
            ],
        )
    sim = " (simulated by the sandbox)" if manifest.simulated else ""
    return (
        {**status, "phase": "Ready"},
        [
            Cond("Ready", "True", "CheckpointReady", f"checkpoint {ckpt['uri']} validated{sim}, {ckpt['size']}"),
            Cond("Calibrating", "False", "Done"),
            Cond("Failed", "False", "Done"),
            *_gate_conditions(plan, quality),
        ],
    )


def write_status(ctx: Context, body: Obj, fields: Obj, conds: list[Cond]) -> None:
    for cond in context.write_status(ctx, "QuantizedModel", body, fields, conds):
        if cond["type"] == "Failed" and cond["status"] == "True":
            ctx.event(body, "Warning", cond["reason"], cond.get("message") or cond["reason"])
        elif cond["type"] == "Ready" and (
            cond["status"] == "True" or cond["reason"] in ("NoSuitablePool", "ModelConfigMissing")
        ):
            etype = "Normal" if cond["status"] == "True" else "Warning"
            ctx.event(body, etype, cond["reason"], cond.get("message") or cond["reason"])


# ------------------------------------------------------------------------------------------------ deletion


def finalize(ctx: Context, body: Obj, started: float, now: float) -> bool:
    """Honour the retention policy. Returns True when deletion may proceed; never blocks past 10 minutes."""
    meta = body["metadata"]
    name, ns = meta["name"], meta["namespace"]
    try:
        spec = QuantizedModelSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return True
    retention = spec.storage.retention if spec.storage else "Retain"
    ckpt = (body.get("status") or {}).get("checkpoint") or {}
    if retention == "Retain":
        if ckpt.get("uri") and not ckpt.get("reusedFrom"):
            ctx.event(body, "Normal", "CheckpointRetained", f"checkpoint {ckpt['uri']} retained (retention: Retain)")
        return True
    if ckpt.get("reusedFrom"):
        return True  # the donor owns the files
    if not (spec.storage and spec.storage.destination):
        deleted = ctx.kube.delete("PersistentVolumeClaim", default_claim_name(name), ns)
        if deleted:
            ctx.event(
                body, "Normal", "CheckpointDeleted", f"deleted PVC {default_claim_name(name)} (retention: Delete)"
            )
        return True
    destination = spec.storage.destination
    if not destination.startswith("pvc://") or not ckpt.get("uri"):
        if destination.startswith("s3://"):
            ctx.event(
                body,
                "Warning",
                "CheckpointNotDeleted",
                f"retention Delete for {ckpt.get('uri', destination)}: s3 objects are not deleted by the operator",
            )
        return True
    claim, sub = parse_pvc_uri(ckpt["uri"])
    target = StorageTarget(ckpt["uri"], claim, sub)
    job = expected_cleanup_job(name, ns, meta["uid"], target, spec.image or versions.get("images.calibrate"))
    ctx.kube.create(job)
    live = ctx.kube.get("Job", job["metadata"]["name"], ns)
    obs = observe_job(live, [])
    if obs.state == "succeeded":
        ctx.event(body, "Normal", "CheckpointDeleted", f"deleted {ckpt['uri']} (retention: Delete)")
        return True
    if obs.state == "failed" or now - started > 600:
        ctx.event(
            body,
            "Warning",
            "CheckpointNotDeleted",
            f"could not delete {ckpt['uri']} ({obs.detail or 'timed out'}); releasing the object anyway",
        )
        return True
    return False


__all__ = ["finalize", "reconcile"]

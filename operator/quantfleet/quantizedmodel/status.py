"""QuantizedModel status, pure: what the calibration Job and its result manifest say, as named conditions.

Conditions:
  CheckpointAvailable  a validated checkpoint exists for the current recipe (made here or reused); False says why
                       not yet (Calibrating, NoSuitablePool, ...) or why not at all (CalibrationFailed, ...)
  Calibrating          the Job is pending or running
  Failed               terminal until the spec or the retry annotation changes
  QualityGate          only with spec.qualityGate: the perplexity delta is within bounds (non-finite always fails)
Ready = CheckpointAvailable ∧ QualityGate (when a gate is configured).
"""

from __future__ import annotations

from typing import Any

from quantfleet.api.conditions import Cond, Requirement, ready_from
from quantfleet.api.manifest import ManifestError, ResultManifest, parse_manifest
from quantfleet.api.quantizedmodel import QuantizedModelStatus
from quantfleet.api.status import build_status
from quantfleet.quantizedmodel.jobs import JobObservation
from quantfleet.quantizedmodel.plan import RETRY_ANNOTATION, Plan
from quantfleet.render.outcome import Event

Obj = dict[str, Any]

READY_REQUIRES = (
    Requirement("CheckpointAvailable"),
    Requirement("QualityGate", optional=True, reason="QualityGateFailed"),
)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


def not_available(reason: str, message: str, *, failed: bool = False, calibrating: str | None = None) -> list[Cond]:
    """Conditions of a QuantizedModel without a usable checkpoint."""
    return [
        Cond("CheckpointAvailable", "False", reason, message),
        Cond("Calibrating", "True" if calibrating else "False", calibrating or reason, message if calibrating else ""),
        Cond("Failed", "True" if failed else "False", reason, message if failed else ""),
    ]


def available(reason: str, message: str, done: str = "Done") -> list[Cond]:
    return [
        Cond("CheckpointAvailable", "True", reason, message),
        Cond("Calibrating", "False", done),
        Cond("Failed", "False", done),
    ]


def gate_conditions(plan: Plan, quality: Obj | None) -> list[Cond]:
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
    """Status fields and conditions from the calibration Job of the current recipe."""
    if obs.state in ("pending", "active"):
        msg = f"Job {obs.name}: {obs.detail}"
        return (
            {**base, "phase": "Calibrating"},
            [*not_available("Calibrating", msg, calibrating=obs.state.capitalize()), *gate_conditions(plan, None)],
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
            [*not_available("CalibrationFailed", msg, failed=True), *gate_conditions(plan, None)],
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
            [*not_available("InvalidManifest", msg, failed=True), *gate_conditions(plan, None)],
        )
    ckpt, coverage, quality = checkpoint_from_manifest(plan, manifest)
    status = {**base, "checkpoint": ckpt, "expertCoverage": coverage, "quality": quality}
    gate = plan.spec.quality_gate
    sim = " (simulated by the sandbox)" if manifest.simulated else ""
    ready = available("CheckpointReady", f"checkpoint {ckpt['uri']} validated{sim}, {ckpt['size']}")
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
                ready[0],
                Cond("Calibrating", "False", "Done"),
                Cond("Failed", "True", "QualityGateFailed", msg),
                Cond("QualityGate", "False", "ThresholdExceeded" if quality else "NotMeasured", msg),
            ],
        )
    return {**status, "phase": "Ready"}, [*ready, *gate_conditions(plan, quality)]


def _ready_text(conds: list[Cond]) -> tuple[str, str]:
    """Ready's reason and message when it holds: the checkpoint's (CheckpointReady or CheckpointReused)."""
    cond = next((c for c in conds if c.type == "CheckpointAvailable"), None)
    return (cond.reason, cond.message) if cond else ("Ready", "")


def ready_condition(conds: list[Cond]) -> Cond:
    return ready_from(conds, READY_REQUIRES, *_ready_text(conds))


def finish(qm: Obj, fields: Obj, conds: list[Cond], now: str) -> tuple[Obj, list[Event]]:
    """The typed status, Ready derived from READY_REQUIRES, and the Events its transitions deserve."""
    ready = _ready_text(conds)
    status, changed = build_status(
        QuantizedModelStatus,
        qm.get("status"),
        fields,
        conds,
        READY_REQUIRES,
        now,
        qm["metadata"].get("generation"),
        ready,
    )
    events = []
    for cond in changed:
        if cond["type"] == "Failed" and cond["status"] == "True":
            events.append(Event("Warning", cond["reason"], cond.get("message") or cond["reason"]))
        elif cond["type"] == "Ready" and (
            cond["status"] == "True" or cond["reason"] in ("NoSuitablePool", "ModelConfigMissing")
        ):
            etype = "Normal" if cond["status"] == "True" else "Warning"
            events.append(Event(etype, cond["reason"], cond.get("message") or cond["reason"]))
    return status, events

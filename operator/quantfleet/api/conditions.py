"""Kubernetes-style conditions: `Ready` is the conjunction of named conditions; lastTransitionTime is
kept when a condition's status does not change, so rebuilding status every pass is not noisy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Cond:
    type: str
    status: Status
    reason: str
    message: str = ""


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None, desired: Iterable[Cond], now: str, generation: int | None
) -> list[dict[str, Any]]:
    """The new condition list: desired conditions, keeping lastTransitionTime where status is unchanged."""
    old = {c.get("type"): c for c in previous or []}
    out = []
    for cond in desired:
        prior = old.get(cond.type)
        since = prior.get("lastTransitionTime") if prior and prior.get("status") == cond.status else None
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    return out


def condition(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def is_true(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> bool:
    c = condition(conditions, ctype)
    return c is not None and c.get("status") == "True"


def transitions(
    previous: Iterable[Mapping[str, Any]] | None, current: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions whose status or reason changed: each is worth an Event."""
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous or []}
    return [c for c in current if old.get(c.get("type")) != (c.get("status"), c.get("reason"))]


@dataclass(frozen=True)
class Requirement:
    """One term of a Ready conjunction: condition `type` must have `status`.

    `optional`: an absent condition satisfies it (e.g. QualityGate when no gate is configured).
    `reason`: Ready's reason when this term fails (default: the failing condition's own reason).
    """

    type: str
    status: Status = "True"
    optional: bool = False
    reason: str | None = None


def ready_from(
    conds: Iterable[Cond], requires: Iterable[Requirement], reason: str = "Ready", message: str = ""
) -> Cond:
    """`Ready` as the declared conjunction: True (with `reason`, `message`) when every requirement holds, else
    False with the first failing requirement's reason and message."""
    by_type = {c.type: c for c in conds}
    terms = list(requires)
    for req in terms:
        cond = by_type.get(req.type)
        if cond is None:
            if req.optional:
                continue
            return Cond("Ready", "False", req.reason or f"{req.type}Unknown", f"condition {req.type} not reported")
        if cond.status != req.status:
            return Cond("Ready", "False", req.reason or cond.reason, cond.message)
    return Cond("Ready", "True", reason, message)

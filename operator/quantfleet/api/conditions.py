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

"""What a calibration Job and its pods say: running, succeeded with a manifest, or failed and why.

Pure: reads Job and Pod dicts, returns a frozen `JobObservation`. The failure reason, exit code
and message come from the pod's terminated container state (the Job's own condition only says
"BackoffLimitExceeded" or "DeadlineExceeded").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

JobState = Literal["missing", "pending", "active", "succeeded", "failed"]


@dataclass(frozen=True)
class Termination:
    exit_code: int | None
    reason: str
    message: str


@dataclass(frozen=True)
class JobObservation:
    name: str | None
    state: JobState
    detail: str = ""
    termination: Termination | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


def _job_condition(job: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


def _terminated(pod: Mapping[str, Any]) -> Termination | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        term = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
        if term:
            return Termination(term.get("exitCode"), term.get("reason") or "", (term.get("message") or "").strip())
    return None


def _newest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", reverse=True)


def observe_job(job: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]) -> JobObservation:
    if job is None:
        return JobObservation(None, "missing")
    name = job.get("metadata", {}).get("name")
    ordered = _newest_first(pods)
    if _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet"):
        for pod in ordered:
            if pod.get("status", {}).get("phase") == "Succeeded":
                return JobObservation(name, "succeeded", "", _terminated(pod))
        return JobObservation(name, "succeeded", "pod already gone", None)
    failed = _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")
    if failed:
        term = next((t for t in (_terminated(p) for p in ordered) if t is not None), None)
        detail = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip(": ")
        return JobObservation(name, "failed", detail, term)
    status = job.get("status", {})
    if status.get("active"):
        running = any(p.get("status", {}).get("phase") == "Running" for p in ordered)
        if running:
            return JobObservation(name, "active", "calibration pod running")
        waiting = _pending_reason(ordered)
        return JobObservation(name, "pending", waiting)
    return JobObservation(name, "pending", "waiting for the Job controller")


def _pending_reason(pods: list[Mapping[str, Any]]) -> str:
    for pod in pods:
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return f"pod {pod['metadata'].get('name')} unschedulable: {cond.get('message', '')}"
    return "calibration pod starting"

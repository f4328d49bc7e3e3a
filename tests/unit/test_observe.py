"""Reading Jobs/pods into observations, and conditions bookkeeping."""

from __future__ import annotations

from quantfleet.api.conditions import Cond, merge_conditions, transitions
from quantfleet.quantizedmodel.jobs import observe_job


def job(conditions: list[dict[str, str]] | None = None, active: int = 0) -> dict:
    return {"metadata": {"name": "j"}, "status": {"conditions": conditions or [], "active": active}}


def pod(phase: str, terminated: dict | None = None, created: str = "2026-01-01T00:00:00Z") -> dict:
    state = {"terminated": terminated} if terminated else {"running": {}}
    return {
        "metadata": {"name": "p", "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


def test_missing_pending_active() -> None:
    assert observe_job(None, []).state == "missing"
    assert observe_job(job(active=1), [pod("Pending")]).state == "pending"
    assert observe_job(job(active=1), [pod("Running")]).state == "active"


def test_succeeded_carries_the_termination_message() -> None:
    obs = observe_job(
        job([{"type": "Complete", "status": "True"}]), [pod("Succeeded", {"exitCode": 0, "message": '{"schema": "x"}'})]
    )
    assert obs.state == "succeeded" and obs.termination is not None and obs.termination.message == '{"schema": "x"}'


def test_failed_reports_exit_code_and_message_of_newest_pod() -> None:
    pods = [
        pod("Failed", {"exitCode": 1, "reason": "Error", "message": "old"}, "2026-01-01T00:00:00Z"),
        pod("Failed", {"exitCode": 3, "reason": "Error", "message": "expert 7 starved"}, "2026-01-02T00:00:00Z"),
    ]
    obs = observe_job(job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]), pods)
    assert obs.state == "failed" and obs.termination is not None
    assert obs.termination.exit_code == 3 and obs.termination.message == "expert 7 starved"
    assert "BackoffLimitExceeded" in obs.detail


def test_unschedulable_pod_is_explained() -> None:
    p = pod("Pending")
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "message": "0/9 nodes: Insufficient gpu"}]
    assert "Insufficient gpu" in observe_job(job(active=1), [p]).detail


def test_last_transition_time_is_kept_while_status_holds() -> None:
    first = merge_conditions(None, [Cond("Ready", "False", "Calibrating")], "t1", 1)
    second = merge_conditions(first, [Cond("Ready", "False", "Calibrating", "still")], "t2", 1)
    assert second[0]["lastTransitionTime"] == "t1"
    third = merge_conditions(second, [Cond("Ready", "True", "CheckpointReady")], "t3", 2)
    assert third[0]["lastTransitionTime"] == "t3" and third[0]["observedGeneration"] == 2
    assert [c["reason"] for c in transitions(second, third)] == ["CheckpointReady"]
    assert transitions(first, second) == []

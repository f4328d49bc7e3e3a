"""Process bookkeeping of the sandbox, exercised with real processes (sh/sleep), no cluster needed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from quantfleet_dev.sandbox import cluster


@pytest.fixture
def layout(tmp_path: Path) -> cluster.Layout:
    return cluster.Layout(tmp_path, cluster.Ports.from_base(40000))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def test_stop_ends_the_whole_process_group(layout: cluster.Layout) -> None:
    # a shell with two children, like a program that forks helpers: all three must go
    comp = cluster.Component("toy", ["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"], healthy=lambda: True)
    pid = cluster._spawn(layout, comp)
    deadline = time.monotonic() + 10
    while len(_group_members(pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_group_members(pid)) == 3
    assert cluster.running_pid(layout, "toy") == pid
    assert cluster.stop(layout, "toy", grace=5) is True
    assert _group_members(pid) == []
    assert cluster.running_pid(layout, "toy") is None
    assert not layout.pidfile("toy").exists()
    assert cluster.stop(layout, "toy") is False  # nothing left to stop


def test_stop_escalates_to_sigkill(layout: cluster.Layout) -> None:
    comp = cluster.Component("stubborn", ["/bin/sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"], lambda: True)
    pid = cluster._spawn(layout, comp)
    time.sleep(0.3)
    started = time.monotonic()
    assert cluster.stop(layout, "stubborn", grace=1) is True
    assert time.monotonic() - started >= 1
    assert _group_members(pid) == []


def test_a_recycled_pid_running_another_program_is_not_ours(layout: cluster.Layout) -> None:
    layout.pidfile("etcd").parent.mkdir(parents=True)
    record = {"pid": os.getpid(), "pgid": os.getpid(), "binary": "/nonexistent/etcd", "argv": []}
    layout.pidfile("etcd").write_text(json.dumps(record))
    assert cluster.running_pid(layout, "etcd") is None
    assert cluster.stop(layout, "etcd") is False  # and above all: did not signal this test process


def test_layout_keeps_the_ports_it_was_first_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_SANDBOX_PORT_BASE", "31000")
    first = cluster.Layout.load(tmp_path)
    assert first.ports.apiserver == 31443
    first.save()
    monkeypatch.setenv("QUANTFLEET_SANDBOX_PORT_BASE", "32000")
    assert cluster.Layout.load(tmp_path).ports == first.ports


def test_the_pid_file_records_the_command_line_up_compares(layout: cluster.Layout) -> None:
    argv = ["/bin/sh", "-c", "sleep 300"]
    cluster._spawn(layout, cluster.Component("toy", argv, healthy=lambda: True))
    try:
        assert cluster.recorded_argv(layout, "toy") == argv
        assert cluster.recorded_argv(layout, "other") is None
    finally:
        cluster.stop(layout, "toy")

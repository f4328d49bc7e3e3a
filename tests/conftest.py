"""Fixtures for the tools `make binaries` builds besides the sandbox (any test directory may use them).

charttemplate   session: path of the chart renderer (quantfleet_dev.chart uses it; hack/gomod/helm/charttemplate)
promtool        session: path of the pinned promtool (`promtool check rules` / `promtool test rules`)

A missing tool fails the test in CI (CI=true: `make test` builds them first) and skips it elsewhere, so
`make test-unit` on a machine without `make binaries` still runs everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantfleet_dev.sandbox import paths


def _built(name: str) -> Path:
    binary = paths.binary(name)
    if not binary.exists():
        why = f"{binary} is not built: run `make binaries` (quantfleet-dev sandbox build)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return binary


@pytest.fixture(scope="session")
def charttemplate() -> Path:
    return _built("charttemplate")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _built("promtool")

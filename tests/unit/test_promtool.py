"""The pinned promtool, built with `remove_all_sd`, still checks and unit-tests alert rules.

Needs promtool (`make binaries`; the `promtool` fixture in tests/conftest.py fails in CI when it is missing).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from quantfleet import versions
from quantfleet_dev.sandbox import build

RULES = """groups:
  - name: quantfleet
    rules:
      - alert: QuantfleetReconcileErrors
        expr: rate(quantfleet_reconcile_errors_total[5m]) > 0
        for: 2m
        labels: {severity: warning}
"""

TEST = """rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'quantfleet_reconcile_errors_total{pod="op-0"}'
        values: '0+1x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: QuantfleetReconcileErrors
        exp_alerts:
          - exp_labels: {severity: warning, pod: op-0}
"""


def promtool_run(promtool: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_version_is_the_pinned_release(promtool: Path, tmp_path: Path) -> None:
    out = promtool_run(promtool, tmp_path, "--version")
    assert f"version {build.prometheus_release(versions.get('prometheus.version'))}" in out.stdout
    assert "remove_all_sd" in out.stdout


def test_check_and_test_rules(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "test.yaml").write_text(TEST)
    checked = promtool_run(promtool, tmp_path, "check", "rules", "rules.yaml")
    assert checked.returncode == 0 and "1 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool_run(promtool, tmp_path, "test", "rules", "test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(
    ("rules", "test"),
    [
        (RULES.replace("[5m]) > 0", "[5m]) >"), None),  # a broken expression
        (RULES, TEST.replace("severity: warning, ", "severity: critical, ")),  # an alert that does not fire as told
    ],
    ids=["bad-expr", "wrong-expectation"],
)
def test_failures_are_reported(promtool: Path, tmp_path: Path, rules: str, test: str | None) -> None:
    (tmp_path / "rules.yaml").write_text(rules)
    if test is None:
        assert promtool_run(promtool, tmp_path, "check", "rules", "rules.yaml").returncode != 0
    else:
        (tmp_path / "test.yaml").write_text(test)
        assert promtool_run(promtool, tmp_path, "test", "rules", "test.yaml").returncode != 0

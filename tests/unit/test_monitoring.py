"""The alerts and the dashboard the chart ships, proven with the real tools (docs/monitoring.md).

- ``promtool check rules`` on charts/quantfleet/files/alerts.yaml;
- ``promtool test rules`` on tests/monitoring/alerts.test.yaml: every alert fires on synthetic series that should fire
  it and stays quiet on near misses;
- every PromQL expression of the dashboard (panels and variables, Grafana variables made concrete) parsed by
  promtool, as recording rules of a rule file written here;
- every ``vllm:`` series the alerts and the dashboard read is defined in the pinned vLLM's source (the wheel the
  contract test reads); tests/serving/test_chain.py checks them on a real vLLM's /metrics;
- the chart (through quantfleet_dev.chart, Helm's own engine) ships both files unchanged, and renders the
  ServiceMonitor and PrometheusRule only with prometheus-operator's API group.

promtool and the chart renderer are the pinned builds under the cache (fixtures in tests/conftest.py): without them
these tests skip, and fail in CI (``CI=true``), which builds them first.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantfleet_dev import chart, monitoring
from quantfleet_dev.vllm_source import load

ALERTS_EXPECTED = {
    "QuantfleetOperatorDown",
    "QuantfleetNoLeader",
    "QuantfleetReconcileErrors",
    "QuantfleetInferenceServiceDegraded",
    "QuantfleetInferenceServiceCannotHonour",
    "QuantfleetCalibrationFailed",
    "QuantfleetQualityGateFailed",
    "VllmKVCacheSaturated",
    "VllmRequestsQueueing",
}


def run(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_alert_rules_pass_promtool_check(promtool: Path) -> None:
    done = run(promtool, "check", "rules", monitoring.ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS_EXPECTED)} rules found" in done.stdout


def test_alert_unit_tests_pass(promtool: Path) -> None:
    done = run(promtool, "test", "rules", monitoring.ALERT_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    rules = yaml.safe_load(monitoring.ALERTS.read_text())
    alerts = {name for name, _ in monitoring.alert_queries(rules)}
    assert alerts == ALERTS_EXPECTED
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(monitoring.ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test") or []:
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fired == alerts, f"never seen firing: {sorted(alerts - fired)}"
    assert quiet == alerts, f"never seen quiet: {sorted(alerts - quiet)}"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for group in yaml.safe_load(monitoring.ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
            assert rule.get("for"), rule["alert"]


def test_a_broken_alert_test_fails(promtool: Path, tmp_path: Path) -> None:
    """`promtool test rules` can fail: the same tests against a rule file whose threshold moved."""
    rules = monitoring.ALERTS.read_text().replace("> 0.9", "> 0.99")
    assert rules != monitoring.ALERTS.read_text()
    (tmp_path / "alerts.yaml").write_text(rules)
    tests = yaml.safe_load(monitoring.ALERT_TESTS.read_text())
    tests["rule_files"] = ["alerts.yaml"]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = run(promtool, "test", "rules", tmp_path / "tests.yaml")
    assert done.returncode != 0 and "VllmKVCacheSaturated" in done.stdout + done.stderr


def test_dashboard_queries_parse_in_promtool(promtool: Path, tmp_path: Path) -> None:
    queries = list(monitoring.dashboard_queries(json.loads(monitoring.DASHBOARD.read_text())))
    assert len(queries) > 30
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(monitoring.as_rule_file(queries)))
    done = run(promtool, "check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_a_dashboard_query_that_does_not_parse_is_caught(promtool: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(monitoring.as_rule_file([("panel", 'sum by (pool (vllm:num_requests_waiting{pool=~"$pool"})')]))
    )
    done = run(promtool, "check", "rules", path)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def test_grafana_variables_become_values_prometheus_accepts() -> None:
    expr = 'rate(vllm:prompt_tokens_total{pool=~"$pool", namespace=~"${namespace:regex}"}[$__rate_interval])'
    assert monitoring.concrete(expr) == 'rate(vllm:prompt_tokens_total{pool=~"x", namespace=~"x"}[5m])'


def test_dashboard_covers_the_fleet_and_serving() -> None:
    """The panels read what the issue lists: fleet mix, replicas, KV capacity, calibration outcomes, the operator's
    reconciles and queue, and vLLM throughput, latency, KV-cache use and queueing."""
    text = " ".join(expr for _, expr in monitoring.dashboard_queries(json.loads(monitoring.DASHBOARD.read_text())))
    for series in (
        "quantfleet_inferenceservice_pool_info",
        "group_left (precision)",
        "group_left (kv_cache_dtype)",
        "quantfleet_inferenceservice_replicas",
        "quantfleet_inferenceservice_ready_replicas",
        "quantfleet_inferenceservice_kv_cache_tokens",
        "quantfleet_inferenceservice_condition",
        "quantfleet_quantizedmodels",
        "quantfleet_quantizedmodel_quality_gates",
        "quantfleet_reconcile_seconds_bucket",
        "quantfleet_reconcile_errors_total",
        "quantfleet_workqueue_depth",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_waiting",
    ):
        assert series in text, series


@pytest.mark.timeout(1800)  # the first run downloads the pinned wheel, as the contract test does
def test_vllm_series_are_defined_by_the_pinned_release() -> None:
    """Each vLLM series the alerts and the dashboard read exists in the pinned vLLM's source (vllm/v1/metrics/
    loggers.py defines them; counters and histograms without the sample suffixes)."""
    used = monitoring.vllm_sample_names(monitoring.shipped_queries())
    assert {"vllm:kv_cache_usage_perc", "vllm:num_requests_waiting", "vllm:generation_tokens_total"} <= used
    defined = load().metric_names
    undefined = sorted(name for name in used if monitoring.defined_as(name, defined) is None)
    assert undefined == [], f"not defined by the pinned vLLM: {undefined}"


def test_sample_names_map_to_their_definitions() -> None:
    defined = {"vllm:generation_tokens", "vllm:time_to_first_token_seconds", "vllm:kv_cache_usage_perc"}
    assert monitoring.defined_as("vllm:generation_tokens_total", defined) == "vllm:generation_tokens"
    assert (
        monitoring.defined_as("vllm:time_to_first_token_seconds_bucket", defined) == "vllm:time_to_first_token_seconds"
    )
    assert monitoring.defined_as("vllm:kv_cache_usage_perc", defined) == "vllm:kv_cache_usage_perc"
    assert monitoring.defined_as("vllm:time_per_output_token_seconds_bucket", defined) is None


API_GROUP = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


def render(set_values: dict[str, object] | None = None, api_versions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The chart as `helm template qf -n ops` renders it, through quantfleet_dev.chart (Helm's own engine)."""
    return chart.render("qf", "ops", set_values, api_versions)


def test_chart_ships_the_files_and_gates_prometheus_operator_objects_on_its_crds(charttemplate: Path) -> None:
    with_crds = render(api_versions=API_GROUP)
    by_kind = {d["kind"]: d for d in with_crds}
    # the PrometheusRule is the rule file, unchanged; the ConfigMap holds the dashboard, unchanged
    assert by_kind["PrometheusRule"]["spec"] == yaml.safe_load(monitoring.ALERTS.read_text())
    dashboard = next(d for d in with_crds if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "qf-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["quantfleet.json"]) == json.loads(monitoring.DASHBOARD.read_text())
    # the ServiceMonitor finds the metrics Service, names the job the alerts select, keeps the objects' namespaces
    monitor, service = by_kind["ServiceMonitor"], by_kind["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "quantfleet"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    # without prometheus-operator's API group: nothing that would fail to apply
    kinds = {d["kind"] for d in render()}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds and "Service" in kinds
    # each object has its flag; the dashboard's label is configurable
    off = render(
        {f"monitoring.{k}.enabled": False for k in ("serviceMonitor", "prometheusRule", "dashboard")}, API_GROUP
    )
    assert not {"ServiceMonitor", "PrometheusRule"} & {d["kind"] for d in off}
    assert not [d for d in off if d["metadata"]["name"] == "qf-dashboard"]
    relabelled = render({"monitoring.dashboard.label": "dashboards", "monitoring.dashboard.labelValue": "quantfleet"})
    cm = next(d for d in relabelled if d["metadata"]["name"] == "qf-dashboard")
    assert (
        cm["metadata"]["labels"]["dashboards"] == "quantfleet" and "grafana_dashboard" not in cm["metadata"]["labels"]
    )

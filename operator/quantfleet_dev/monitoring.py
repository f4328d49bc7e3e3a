"""The chart's monitoring sources, read for the tests that prove them with the real tools.

Two files are the single source of what quantfleet ships for Prometheus and Grafana (docs/monitoring.md):
``charts/quantfleet/files/alerts.yaml`` (a plain Prometheus rule file; the chart wraps it in a PrometheusRule) and
``charts/quantfleet/files/dashboard.json`` (the Grafana dashboard; the chart puts it in a ConfigMap). This module
pulls every PromQL expression out of them, makes Grafana's template variables concrete so Prometheus' own parser
(promtool) can judge them, and names the vLLM metrics they read, so the tests can check those against the pinned
vLLM's source and a real vLLM's /metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import yaml

from quantfleet_dev.sandbox import paths

CHART_FILES = paths.REPO_ROOT / "charts" / "quantfleet" / "files"
ALERTS = CHART_FILES / "alerts.yaml"
DASHBOARD = CHART_FILES / "dashboard.json"
ALERT_TESTS = paths.REPO_ROOT / "tests" / "monitoring" / "alerts.test.yaml"
# A promtool to use instead of the pinned build (e.g. one built by hand while iterating).

# Grafana variables: $name, ${name}, ${name:format}, [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
# Grafana's interval variables stand where PromQL wants a duration; every other variable here is a label value.
_DURATION_VARIABLES = frozenset({"__interval", "__rate_interval", "__range"})
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)
VLLM_METRIC = re.compile(r"vllm:[a-zA-Z_][a-zA-Z0-9_]*")
# What prometheus_client appends to a metric's name in its samples (counter, histogram).
SAMPLE_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def alert_queries(rules: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(alert or record name, expr) of every rule in a Prometheus rule file."""
    for group in rules.get("groups") or []:
        for rule in group.get("rules") or []:
            yield str(rule.get("alert") or rule.get("record")), str(rule["expr"])


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every panel, those inside collapsed rows too (a collapsed row keeps its panels under its own `panels`)."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of a Grafana dashboard.

    A variable's ``label_values(<selector>, label)`` contributes its selector, ``query_result(<expr>)`` its
    expression: the parts Prometheus evaluates.
    """
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield f"panel {panel.get('title')!r} {target.get('refId')}", str(target["expr"])
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = str(query.get("query", "") if isinstance(query, Mapping) else query or "")
        for pattern, group in ((_LABEL_VALUES, "selector"), (_QUERY_RESULT, "expr")):
            found = pattern.match(text)
            if found:
                yield f"variable {variable.get('name')!r}", found.group(group)
                break
        else:
            raise ValueError(f"variable {variable.get('name')!r}: no label_values(...) or query_result(...): {text!r}")


def concrete(expr: str) -> str:
    """The expression as Prometheus would receive it from Grafana: durations for interval variables, a label value
    for every other variable (they only stand inside label matchers)."""

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return "5m" if name in _DURATION_VARIABLES else "x"

    return _VARIABLE.sub(value, expr)


def as_rule_file(queries: list[tuple[str, str]]) -> dict[str, Any]:
    """Recording rules, one per expression, for ``promtool check rules`` (which parses every ``expr``)."""
    rules = [{"record": f"dashboard:expr_{i}", "expr": concrete(expr)} for i, (_, expr) in enumerate(queries)]
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def shipped_queries() -> list[tuple[str, str]]:
    """Every PromQL expression the chart ships: the alerts' and the dashboard's."""
    rules = yaml.safe_load(ALERTS.read_text())
    dashboard = json.loads(DASHBOARD.read_text())
    return [*alert_queries(rules), *dashboard_queries(dashboard)]


def vllm_sample_names(queries: Collection[tuple[str, str]]) -> set[str]:
    """The vLLM series the expressions read, as they appear on /metrics (counters with _total, histograms with
    _bucket/_sum/_count)."""
    return {name for _, expr in queries for name in VLLM_METRIC.findall(expr)}


def defined_as(sample: str, defined: Collection[str]) -> str | None:
    """The metric a sample name belongs to among those vLLM's source defines (counters and histograms are defined
    without the suffixes prometheus_client adds), or None."""
    if sample in defined:
        return sample
    for suffix in SAMPLE_SUFFIXES:
        if sample.endswith(suffix) and sample.removesuffix(suffix) in defined:
            return sample.removesuffix(suffix)
    return None

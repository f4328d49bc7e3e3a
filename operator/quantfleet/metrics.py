"""Prometheus metrics of the operator.

quantfleet_reconcile_seconds{kind}     histogram of reconcile durations
quantfleet_reconcile_errors_total{kind} reconciles that raised
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILE_SECONDS = Histogram("quantfleet_reconcile_seconds", "Reconcile duration", ["kind"])
RECONCILE_ERRORS = Counter("quantfleet_reconcile_errors_total", "Reconciles that raised", ["kind"])

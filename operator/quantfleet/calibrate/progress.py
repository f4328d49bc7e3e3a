"""Progress lines for the calibration Job's log: what is done, how much is left, ETA.

A calibration can run for hours on a large model; `kubectl logs` is the only window
into it. Both tools are driven through forward passes of the decoder layers, so the
unit of progress is one decoder layer processing one calibration sample. llm-compressor
walks layer-major (layer 0 over all samples, then layer 1, ...), ModelOpt sample-major;
the same counter reports both. Lines are throttled (every `every_s` seconds, plus the
first and the last) and written in key=value form.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("quantfleet.calibrate")


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


class Progress:
    """Counts units of work toward a known total and logs throttled progress lines."""

    def __init__(self, phase: str, total: int, unit: str, every_s: float = 10.0) -> None:
        self.phase = phase
        self.total = max(1, total)
        self.unit = unit
        self.every_s = every_s
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def step(self, n: int = 1, **detail: object) -> None:
        self.done += n
        now = time.monotonic()
        if self.done == n or self.done >= self.total or now - self._last >= self.every_s:
            self._last = now
            self.emit(**detail)

    def emit(self, **detail: object) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        extra = " ".join(f"{k}={v}" for k, v in detail.items())
        pct = 100.0 * min(self.done, self.total) / self.total
        log.info(
            "progress phase=%s %s=%d/%d (%.0f%%) elapsed=%s eta=%s %s",
            self.phase,
            self.unit,
            self.done,
            self.total,
            pct,
            _fmt_s(elapsed),
            _fmt_s(eta) if eta == eta else "?",
            extra,
        )

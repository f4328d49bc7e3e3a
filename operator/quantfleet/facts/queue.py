"""A deduplicating, rate-limited work queue with client-go's workqueue semantics.

- `add(key)`: a key is queued at most once however often it is added; a key added while a worker holds it is
  queued again when that worker calls `done` (one worker per object at a time, and no change is lost).
- `add(key, urgent=True)`: the key goes ahead of the ordinary ones (or moves ahead, if already queued). For work
  whose blocker just cleared (a pool became usable, a QuantizedModel became Ready): it must not wait behind a
  thousand routine passes.
- `add_after(key, delay)`: a delayed add (requeue-after, backoff); an earlier immediate `add` wins.
- `add_rate_limited(key)`: exponential backoff per key with jitter (base 0.5 s, doubling, capped at 5 min);
  `forget(key)` resets it after a success.
- `get()` blocks until a key is ready or the queue shuts down (then returns None).
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        self._queue: deque[K] = deque()
        self._urgent: deque[K] = deque()
        self._urgent_keys: set[K] = set()  # keys in _urgent; their entries in _queue are skipped
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []  # heap of (ready_at, seq, key)
        self._seq = 0
        self._failures: dict[K, int] = {}
        self._added_at: dict[K, float] = {}
        self._cond = threading.Condition()
        self._shutdown = False
        self.base_delay = base_delay
        self.max_delay = max_delay

    # -- adding ----------------------------------------------------------------------------------
    def add(self, key: K, urgent: bool = False) -> None:
        with self._cond:
            self._add_locked(key, urgent)

    def _add_locked(self, key: K, urgent: bool = False) -> None:
        if self._shutdown:
            return
        if key in self._dirty:
            if urgent and key not in self._urgent_keys:
                self._urgent_keys.add(key)
                if key not in self._processing:
                    self._urgent.append(key)  # jump ahead; its ordinary entry is skipped when reached
                    self._cond.notify()
            return
        self._dirty.add(key)
        self._added_at.setdefault(key, time.monotonic())
        if key in self._processing:
            if urgent:
                self._urgent_keys.add(key)  # re-queued ahead when its worker is done
            return
        if urgent:
            self._urgent.append(key)
            self._urgent_keys.add(key)
        else:
            self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            self._seq += 1
            heapq.heappush(self._waiting, (time.monotonic() + delay, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay: float = min(self.max_delay, self.base_delay * 2**failures) * random.uniform(0.8, 1.2)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # -- taking ----------------------------------------------------------------------------------
    def _promote_waiting(self, now: float) -> float | None:
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self._add_locked(key)
        return self._waiting[0][0] - now if self._waiting else None

    def get(self) -> tuple[K, float] | None:
        """Block for the next key; returns (key, seconds it waited in the queue), or None after shutdown."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_waiting(time.monotonic())
                key = self._next()
                if key is not None:
                    self._dirty.discard(key)
                    self._processing.add(key)
                    waited = time.monotonic() - self._added_at.pop(key, time.monotonic())
                    return key, waited
                self._cond.wait(timeout=wait)

    def _next(self) -> K | None:
        for lane in (self._urgent, self._queue):
            while lane:
                key = lane.popleft()
                if key in self._dirty and key not in self._processing:
                    self._urgent_keys.discard(key)
                    return key  # else: a stale entry (the key was already taken through the other lane)
        return None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                (self._urgent if key in self._urgent_keys else self._queue).append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._dirty - self._processing)

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

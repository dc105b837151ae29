"""Retry budget: retries may add at most a fraction of the calls, as Finagle, Envoy and gRPC do.

Over a sliding window of ``settings.window`` seconds the budget allows
``ratio * calls + min_per_second * window - retries`` more retries. Calls and retries are counted
in buckets kept in a ring that rotates lazily when the bucket changes: one bucket per second for
windows up to ``MAX_BUCKETS`` seconds, and ``MAX_BUCKETS`` buckets of ``ceil(window /
MAX_BUCKETS)`` whole seconds for longer windows, so memory does not grow with the window.

Hot path and threads. ``deposit`` runs once per successful call, so in the common case (same second
as the previous call) it is one float comparison and one ``+=`` on an int attribute: no lock, no
allocation. Rotating the ring and every withdrawal take a ``threading.Lock``. The unlocked ``+=`` is
a read-modify-write: under the GIL a thread switch in the middle is rare, and on a free-threaded
build two racing increments can lose one, or land in the second that is just being rotated in. These
are statistics that decide whether to allow a retry, so an occasional lost count is accepted in
exchange for a lock-free hot path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..policy._model import RetryBudgetSettings

__all__ = ["RetryBudget"]

# Guard the "one more retry fits" comparison against float error (0.1 * 1000 - 100 etc.).
_EPSILON = 1e-9

MAX_BUCKETS = 120
"""Buckets in one window at most: a one-hour window counts in 30-second buckets."""


class _SecondRing:
    """Two counters (``a`` hot and unlocked, ``b`` locked) per bucket over a window.

    A bucket is ``_width`` whole seconds (1 for windows up to ``MAX_BUCKETS`` seconds); ``_sec``
    is the current bucket's number, ``int(now / _width)``, and ``_next_at`` the time the next one
    starts (the hot paths compare with it: no division). The current bucket's counts live in
    ``_cur_a`` / ``_cur_b``; completed buckets sit in the ring, and ``_past_a`` / ``_past_b``
    hold their sums so a window total costs one addition.
    """

    __slots__ = (
        "_cur_a",
        "_cur_b",
        "_lock",
        "_n",
        "_next_at",
        "_past_a",
        "_past_b",
        "_ring_a",
        "_ring_b",
        "_sec",
        "_width",
    )

    def __init__(self, window: float, now: float) -> None:
        seconds = max(1, math.ceil(window))
        width = math.ceil(seconds / MAX_BUCKETS)
        self._width = float(width)
        self._n = math.ceil(seconds / width)
        self._ring_a = [0] * self._n
        self._ring_b = [0] * self._n
        self._past_a = 0
        self._past_b = 0
        self._cur_a = 0
        self._cur_b = 0
        self._sec = self._bucket(now)
        self._next_at = (self._sec + 1) * self._width
        self._next_at = (self._sec + 1) * self._width
        self._lock = threading.Lock()

    def _bucket(self, now: float) -> int:
        """The number of the bucket ``now`` falls in."""
        return int(now / self._width)

    def _rotate(self, sec: int) -> None:
        """Move the ring forward to bucket ``sec`` (takes the lock)."""
        with self._lock:
            self._advance(sec)

    def _advance(self, sec: int) -> None:
        """Move the ring forward to bucket ``sec``; the caller holds the lock.

        A ``sec`` at or before the current bucket (a racing thread got there first, or a clock
        read a moment earlier) leaves everything as it is: the count lands in the current bucket.
        """
        old = self._sec
        if sec <= old:
            return
        n = self._n
        ring_a = self._ring_a
        ring_b = self._ring_b
        if sec - old >= n:
            for k in range(n):
                ring_a[k] = 0
                ring_b[k] = 0
            self._past_a = 0
            self._past_b = 0
        else:
            slot = old % n
            ring_a[slot] = self._cur_a
            ring_b[slot] = self._cur_b
            past_a = self._past_a + self._cur_a
            past_b = self._past_b + self._cur_b
            # Buckets old-n+1 .. sec-n fall out of the window (this also clears sec's slot).
            for s in range(old - n + 1, sec - n + 1):
                k = s % n
                past_a -= ring_a[k]
                past_b -= ring_b[k]
                ring_a[k] = 0
                ring_b[k] = 0
            self._past_a = past_a
            self._past_b = past_b
        self._cur_a = 0
        self._cur_b = 0
        self._sec = sec
        self._next_at = (sec + 1) * self._width

    def _reset(self, now: float) -> None:
        """Forget every count; the caller holds the lock."""
        for k in range(self._n):
            self._ring_a[k] = 0
            self._ring_b[k] = 0
        self._past_a = 0
        self._past_b = 0
        self._cur_a = 0
        self._cur_b = 0
        self._sec = self._bucket(now)


class RetryBudget(_SecondRing):
    """How many retries a scope may still make: a share of its calls plus a floor per second."""

    __slots__ = ("_clock", "_enabled", "_floor", "_ratio", "settings")

    def __init__(
        self, settings: RetryBudgetSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(settings.window, clock())
        self.settings = settings
        self._clock = clock
        self._enabled = settings.enabled
        self._ratio = settings.ratio
        self._floor = settings.min_per_second * settings.window

    def deposit(self, now: float | None = None) -> None:
        """Count one call (its first attempt). Lock-free unless the bucket changed."""
        if now is None:
            now = self._clock()
        if now >= self._next_at:
            self._rotate(int(now / self._width))
        self._cur_a += 1

    def try_withdraw(self, now: float | None = None) -> bool:
        """A retry wants to happen: True (and the retry is counted) if the budget allows it."""
        if not self._enabled:
            return True
        if now is None:
            now = self._clock()
        with self._lock:
            self._advance(self._bucket(now))
            if self._left() < 1.0 - _EPSILON:
                return False
            self._cur_b += 1
            return True

    def available(self, now: float | None = None) -> float:
        """Retries still allowed in the window (``inf`` when the budget is disabled)."""
        if not self._enabled:
            return math.inf
        if now is None:
            now = self._clock()
        with self._lock:
            self._advance(self._bucket(now))
            return max(0.0, self._left())

    def _left(self) -> float:
        calls = self._past_a + self._cur_a
        retries = self._past_b + self._cur_b
        return self._ratio * calls + self._floor - retries

    def __repr__(self) -> str:
        return (
            f"RetryBudget(calls={self._past_a + self._cur_a}, "
            f"retries={self._past_b + self._cur_b}, settings={self.settings!r})"
        )

"""One timer per event loop for the deadlines of every attempt running on it.

An attempt in a task must end when its call's deadline passes, whatever it is waiting for. One
``loop.call_at`` per attempt (what ``asyncio.timeout`` does) costs about 2 µs, more than the rest
of a successful attempt together; most attempts end long before their deadline, so that timer
is nearly always cancelled unused. Instead, each loop has one :class:`DeadlineWatch`: an attempt
registers in the bucket of its deadline (rounded up to :data:`RESOLUTION`), which is one dict
insert, and leaves it when it ends, one dict delete. A single timer handle is armed at the
earliest bucket that holds an attempt; when it fires, it cancels the tasks of every attempt in
the buckets that are due and re-arms for the next one. So an attempt is cancelled at most
:data:`RESOLUTION` after its deadline, and a loop with calls in flight wakes up about once per
deadline, not once per call.

Bounded: one bucket per :data:`RESOLUTION` of deadlines in the future, each dropped when the
timer reaches it; with a 30 s deadline at most 6 000 buckets, whatever the call rate.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["RESOLUTION", "DeadlineWatch", "Expiring", "watch_for"]

RESOLUTION = 0.005
"""Seconds: deadlines are rounded up to this grid (an attempt ends at most this late)."""

_TICKS_PER_SECOND = round(1 / RESOLUTION)
# The loop runs a timer once its time is within the clock's resolution of it.
_SLACK = time.get_clock_info("monotonic").resolution


class Expiring(Protocol):
    """What the watch holds: something to tell that its deadline passed."""

    def expire(self) -> None: ...


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineWatch] = (
    weakref.WeakKeyDictionary()
)


class DeadlineWatch:
    """The deadlines of one event loop's attempts, on one timer. Loop thread only."""

    __slots__ = ("__weakref__", "_armed_at", "_buckets", "_handle", "_heap", "_loop", "_native")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # The loop tells time with time.monotonic (asyncio's own loops do).
        self._native = type(loop).time is asyncio.BaseEventLoop.time
        self._buckets: dict[int, dict[Expiring, None]] = {}
        self._heap: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0  # the tick the handle fires at (meaningful while _handle is set)

    def add(self, key: Expiring, when: float) -> int:
        """Call ``key.expire()`` at loop time ``when`` (rounded up) unless it is removed first.

        Returns the ticket for :meth:`remove`.
        """
        tick = math.ceil(when * _TICKS_PER_SECOND)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            heapq.heappush(self._heap, tick)
            if self._handle is None or tick < self._armed_at:
                self._arm(tick)
        bucket[key] = None
        return tick

    def loop_time(self, when: float, monotonic: Callable[[], float]) -> float:
        """``when``, a time of the clock ``monotonic``, as the loop's time."""
        if self._native and monotonic is time.monotonic:
            return when  # the same clock: no conversion, no clock read
        return self._loop.time() + (when - monotonic())

    def remove(self, key: Expiring, tick: int) -> None:
        """Forget ``key`` (its attempt ended); a bucket left empty is dropped when due."""
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.pop(key, None)

    def __len__(self) -> int:
        """Attempts registered (for tests and diagnostics)."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def _arm(self, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = tick
        self._handle = self._loop.call_at(tick / _TICKS_PER_SECOND, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = math.floor((self._loop.time() + _SLACK) * _TICKS_PER_SECOND)
        heap, buckets = self._heap, self._buckets
        due: list[Expiring] = []
        # Due buckets expire; empty ones ahead of the next live bucket are dropped too, so
        # the timer is re-armed only for a bucket that still holds an attempt.
        while heap and (heap[0] <= now or not buckets[heap[0]]):
            due.extend(buckets.pop(heapq.heappop(heap)))
        if heap:
            self._arm(heap[0])
        for key in due:
            key.expire()


def _no_loop() -> None:
    return None


# The last loop asked for and its watch: a process usually runs one loop, and a weak
# dictionary look-up costs more than the rest of a registration.
_last_loop: Callable[[], asyncio.AbstractEventLoop | None] = _no_loop
_last_watch: DeadlineWatch | None = None


def watch_for(loop: asyncio.AbstractEventLoop) -> DeadlineWatch:
    """The deadline watch of ``loop`` (created on first use, gone with the loop)."""
    global _last_loop, _last_watch
    if _last_loop() is loop:
        assert _last_watch is not None
        return _last_watch
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = DeadlineWatch(loop)
    _last_loop, _last_watch = weakref.ref(loop), watch
    return watch

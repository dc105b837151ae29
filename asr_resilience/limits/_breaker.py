"""Circuit breaker: stop calling a service whose server-class failures pass a ratio.

Closed, the breaker counts calls and server-class failures over a sliding window of
``settings.window`` seconds (per-second buckets, at most 120 of them, rotated lazily; see
:mod:`asr_resilience.limits._budget`). When at least ``min_calls`` calls are in the window
and ``failures / calls >= failure_ratio`` (``>=`` so that a ratio of 1.0 can still trip, and
0.5 trips at half), it opens. Open, it refuses calls for ``open_for``
seconds, then turns half-open and lets exactly one probe through: a success closes it with a
fresh window, a server-class failure reopens it for another ``open_for``.

A probe that ends without a verdict comes back through ``release_probe``, which the engine calls
on *every* such exit -- also for calls that were admitted while the breaker was still closed and
are no probe at all. So the probe remembers who took it (thread and asyncio task, see
:func:`probe_owner`), and ``release_probe`` for anyone else, or with no probe out, or in any
other state, does nothing. The engine names the owner it recorded when it took the probe, so a
probe also comes back from where its caller did not run (an abandoned async generator is closed
by the event loop, in a task of its own). A
probe nobody gives back (its caller exited elsewhere) is presumed lost after ``open_for``, and
the next caller becomes the probe: half-open can never wedge shut.

Hot path: ``record_success`` in the closed state takes no lock in the common case (same second
as the previous call): one flag test, a float comparison and one ``+=`` on an int attribute.
See :mod:`asr_resilience.limits._budget` for why an unlocked ``+=`` is accepted for these
statistics. Every state change happens under a ``threading.Lock``; ``on_change`` is
called after the lock is released.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Literal

from ..policy._model import CircuitBreakerSettings
from ._budget import _SecondRing

__all__ = ["PASS", "PROBE", "REFUSED", "BreakerState", "CircuitBreaker", "probe_owner"]

BreakerState = Literal["closed", "open", "half_open"]

REFUSED = 0
"""``ticket``: the breaker refuses the call."""
PASS = 1
"""``ticket``: the breaker is closed (or disabled): the call goes out, nothing to give back."""
PROBE = 2
"""``ticket``: the call is the half-open probe: its outcome, or ``release_probe``, is owed."""


class CircuitBreaker(_SecondRing):
    """Closed / open / half-open over server-class failures; counts are ``a`` calls, ``b`` fails."""

    __slots__ = (
        "_clock",
        "_fast",
        "_on_change",
        "_opened_at",
        "_probe_at",
        "_probe_out",
        "_probe_owner",
        "_state",
        "settings",
    )

    def __init__(
        self,
        settings: CircuitBreakerSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        super().__init__(settings.window, clock())
        self.settings = settings
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        # True while enabled and closed: the only case the hot path handles without the lock.
        self._fast = settings.enabled
        self._opened_at = 0.0
        self._probe_out = False
        self._probe_at = 0.0
        self._probe_owner: tuple[int, int] = (0, 0)

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half_open`` (a disabled breaker stays ``closed``)."""
        return self._state

    def allow(self, now: float | None = None) -> bool:
        """May a call go out now? Half-open lets one probe through at a time."""
        return self.ticket(now) != REFUSED

    def ticket(self, now: float | None = None) -> int:
        """Like :meth:`allow`, but says what was granted: :data:`REFUSED`, :data:`PASS`, or
        :data:`PROBE` (the one half-open call, which must come back: a verdict through
        ``record_success``/``record_failure``, or :meth:`release_probe` on any other exit)."""
        if self._fast or not self.settings.enabled:
            return PASS
        if now is None:
            now = self._clock()
        changed: tuple[BreakerState, BreakerState] | None = None
        with self._lock:
            state = self._state
            if state == "closed":
                return PASS
            if state == "open":
                if now - self._opened_at < self.settings.open_for:
                    return REFUSED
                self._state = "half_open"
                self._take_probe(now)
                changed = ("open", "half_open")
                granted = PROBE
            elif self._probe_out and now - self._probe_at < self.settings.open_for:
                granted = REFUSED
            else:
                self._take_probe(now)  # none out, or the one out is presumed lost
                granted = PROBE
        if changed is not None:
            self._notify(*changed)
        return granted

    def record_success(self, now: float | None = None) -> None:
        """An outcome that shows the server is up (a success, or a client-class failure)."""
        if self._fast:
            if now is None:
                now = self._clock()
            if now >= self._next_at:
                self._rotate(int(now / self._width))
            self._cur_a += 1
            return
        if not self.settings.enabled:
            return
        if now is None:
            now = self._clock()
        with self._lock:
            if self._state == "closed":
                self._advance(self._bucket(now))
                self._cur_a += 1
                return
            if self._state == "open":
                # A call that left before the breaker opened: not a probe, no verdict.
                return
            self._close(now)
        self._notify("half_open", "closed")

    def record_failure(self, now: float | None = None) -> None:
        """A server-class failure (5xxxxxxx, HTTP 5xx, transport)."""
        if not self.settings.enabled:
            return
        if now is None:
            now = self._clock()
        settings = self.settings
        with self._lock:
            state = self._state
            if state == "closed":
                self._advance(self._bucket(now))
                self._cur_a += 1
                self._cur_b += 1
                calls = self._past_a + self._cur_a
                failures = self._past_b + self._cur_b
                if calls < settings.min_calls or failures / calls < settings.failure_ratio:
                    return
            elif state == "open":
                return
            self._open(now)
        self._notify(state, "open")

    def release_probe(self, owner: tuple[int, int] | None = None) -> None:
        """The probe ended without a verdict (e.g. cancelled): let another probe through.

        Safe to call from any exit in any state: only the caller that took the probe frees it.
        ``owner`` is that caller as :func:`probe_owner` named it when it took the probe (default:
        the caller running now); pass it when the probe may come back from elsewhere, e.g. an
        async generator that the event loop closes in a task of its own.
        """
        if self._fast:
            return
        if owner is None:
            owner = probe_owner()
        with self._lock:
            if self._state == "half_open" and self._probe_out and self._probe_owner == owner:
                self._probe_out = False

    def _take_probe(self, now: float) -> None:
        self._probe_out = True
        self._probe_at = now
        self._probe_owner = probe_owner()

    def _open(self, now: float) -> None:
        self._fast = False
        self._state = "open"
        self._opened_at = now
        self._probe_out = False

    def _close(self, now: float) -> None:
        self._reset(now)
        self._state = "closed"
        self._probe_out = False
        self._fast = True

    def _notify(self, old: BreakerState, new: BreakerState) -> None:
        if self._on_change is not None:
            self._on_change(old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state!r}, settings={self.settings!r})"


def probe_owner() -> tuple[int, int]:
    """The thread and asyncio task running now: who takes a probe, or gives one back.

    What :meth:`CircuitBreaker.ticket` records for a :data:`PROBE`; a caller that may give the
    probe back from elsewhere keeps it for :meth:`CircuitBreaker.release_probe`.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return threading.get_ident(), 0 if task is None else id(task)

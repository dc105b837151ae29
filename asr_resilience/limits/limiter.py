"""Adaptive concurrency limiter: finds the vendor's concurrency quota without being told.

AIMD with slow start, as TCP congestion control. The limit starts at ``settings.initial`` with
``ssthresh = settings.max``. A ``"success"`` grows it by 1 below ``ssthresh`` (slow start: one
round of successes doubles it) and by ``1 / limit`` above (additive increase: +1 per round). A
``"throttled"`` (the vendor answered 40000005) cuts it: ``ssthresh = limit = max(min,
limit * DECREASE)`` -- at most once per round: only a permit granted after the latest cut may cut
again, so a burst of throttles from one round of calls cuts the limit once, not once per call.
``"dropped"`` leaves the limit alone. Throttled calls go back to wait for a slot, so the limit
settles around the quota. As in Netflix's ``AIMDLimit``, a success only grows the limit when the
limiter is at least half used (``in_flight * 2 >= slots``): a lightly loaded limiter learns
nothing about the quota, and must not climb to ``max`` and then hit the vendor with a burst.

One limiter serves threads and asyncio tasks on any number of event loops at once. Its state is
guarded by a ``threading.Lock``; waiters queue FIFO, each either a ``threading.Event`` or an
(event loop, future) pair woken with ``loop.call_soon_threadsafe``. A freed slot is handed to the
oldest waiter directly, so nobody can barge past the queue.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from ..policy.model import ConcurrencySettings

__all__ = ["AdaptiveLimiter", "Outcome", "Permit"]

Outcome = Literal["success", "throttled", "dropped"]


class Permit:
    """One slot of the limiter; ``release`` it exactly once (a second call does nothing)."""

    __slots__ = ("_epoch", "_limiter", "_released")

    def __init__(self, limiter: AdaptiveLimiter, epoch: int) -> None:
        self._limiter = limiter
        self._epoch = epoch
        self._released = False

    @property
    def released(self) -> bool:
        """Whether the slot has been given back."""
        return self._released

    def release(self, outcome: Outcome) -> None:
        """Give the slot back, telling the limiter how the call went."""
        self._limiter._release(self, outcome)

    def __repr__(self) -> str:
        return f"Permit(epoch={self._epoch}, released={self._released})"


class _Waiter:
    """A thread (``event``) or a task (``loop`` and ``future``) queued for a slot."""

    __slots__ = ("event", "future", "loop", "permit")

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.permit: Permit | None = None


def _wake_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


DECREASE = 0.75
"""Multiplicative decrease on 40000005. TCP halves; the vendor's quota is a hard cap that the
limit saws just under, so a gentler cut keeps more of it in use (bench/quota.py, quota 10 at
concurrency 50: halving finished in 1.23-1.29x the physical limit, 0.75 in 1.18x, with 0.05
and 0.07 throttled attempts per call)."""


class AdaptiveLimiter:
    """Limits calls in flight to a slot count it learns from the vendor's throttling.

    ``on_change(old_limit, new_limit)`` runs outside the lock when the slot count changes or the
    limit is cut -- not on every fractional step of additive increase.
    """

    def __init__(
        self,
        settings: ConcurrencySettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[float, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock  # kept for symmetry with the other limits; AIMD needs no time
        self._on_change = on_change
        self._min = max(1, settings.min)
        self._max = max(self._min, settings.max)
        self._limit = float(min(self._max, max(self._min, settings.initial)))
        self._ssthresh = float(self._max)
        self._slots = self._slots_for(self._limit)
        self._in_flight = 0
        self._epoch = 0
        self._cuts = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------

    @property
    def adaptive(self) -> bool:
        """Always True: a 40000005 lowers the limit, so a throttled call may queue again at once."""
        return True

    @property
    def limit(self) -> float:
        """The learnt limit; the slot count is ``max(settings.min, floor(limit))``."""
        return self._limit

    @property
    def slots(self) -> int:
        """The number of calls allowed in flight now."""
        return self._slots

    @property
    def in_flight(self) -> int:
        """Permits granted and not yet released."""
        return self._in_flight

    def stats(self) -> dict[str, float | int]:
        """A snapshot: limit, slots, ssthresh, in_flight, waiting, cuts."""
        with self._lock:
            return {
                "limit": self._limit,
                "slots": self._slots,
                "ssthresh": self._ssthresh,
                "in_flight": self._in_flight,
                "waiting": len(self._waiters),
                "cuts": self._cuts,
            }

    # -- acquiring ---------------------------------------------------------------------------

    def acquire_sync(self, timeout: float | None = None) -> Permit | None:
        """Block the thread until a slot is free; ``None`` if ``timeout`` seconds pass first."""
        with self._lock:
            if not self._waiters and self._in_flight < self._slots:
                return self._grant()
            if timeout is not None and timeout <= 0:
                return None
            waiter = _Waiter(event=threading.Event())
            self._waiters.append(waiter)
        assert waiter.event is not None
        try:
            waiter.event.wait(timeout)
        except BaseException:
            # Interrupted (KeyboardInterrupt): leave the queue, or hand back a slot given meanwhile.
            permit = self._settle(waiter)
            if permit is not None:
                permit.release("dropped")
            raise
        return self._settle(waiter)

    async def acquire(self, timeout: float | None = None) -> Permit | None:
        """Wait in the event loop until a slot is free; ``None`` if ``timeout`` passes first.

        Cancellation-safe: a waiter cancelled before or after it was handed a slot gives the
        slot back.
        """
        with self._lock:
            if not self._waiters and self._in_flight < self._slots:
                return self._grant()
            if timeout is not None and timeout <= 0:
                return None
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            waiter = _Waiter(loop=loop, future=future)
            self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _wake_future, future)
        try:
            await future
        except BaseException:
            # Cancelled: leave the queue, or hand back the slot we were given meanwhile.
            permit = self._settle(waiter)
            if permit is not None:
                permit.release("dropped")
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return self._settle(waiter)

    def _grant(self) -> Permit:
        """A new permit; the caller holds the lock and has checked for a free slot."""
        self._in_flight += 1
        return Permit(self, self._epoch)

    def _settle(self, waiter: _Waiter) -> Permit | None:
        """After a wait: the permit handed to ``waiter``, or ``None`` and out of the queue."""
        with self._lock:
            permit = waiter.permit
            if permit is None:
                self._waiters.remove(waiter)
            return permit

    # -- releasing ---------------------------------------------------------------------------

    def _release(self, permit: Permit, outcome: Outcome) -> None:
        with self._lock:
            if permit._released:
                return
            permit._released = True
            old = self._limit
            old_slots = self._slots
            if outcome == "success":
                if self._in_flight * 2 >= old_slots and old < self._max:
                    grown = old + 1.0 if old < self._ssthresh else old + 1.0 / old
                    self._set_limit(min(float(self._max), grown))
            elif outcome == "throttled" and permit._epoch == self._epoch:
                self._ssthresh = max(float(self._min), old * DECREASE)
                self._set_limit(self._ssthresh)
                self._epoch += 1
                self._cuts += 1
            self._in_flight -= 1
            woken = self._hand_off() if self._waiters else None
            notify = self._on_change is not None and (self._slots != old_slots or self._limit < old)
            new = self._limit
        if woken:
            for waiter in woken:
                self._wake(waiter)
        if notify:
            assert self._on_change is not None
            self._on_change(old, new)

    def _set_limit(self, limit: float) -> None:
        self._limit = limit
        self._slots = self._slots_for(limit)

    def _slots_for(self, limit: float) -> int:
        return max(self._min, math.floor(limit))

    def _hand_off(self) -> list[_Waiter]:
        """Give free slots to the oldest waiters; the caller holds the lock and wakes them."""
        woken: list[_Waiter] = []
        waiters = self._waiters
        while waiters and self._in_flight < self._slots:
            waiter = waiters.popleft()
            waiter.permit = self._grant()
            woken.append(waiter)
        return woken

    def _wake(self, waiter: _Waiter) -> None:
        if waiter.event is not None:
            waiter.event.set()
            return
        loop = waiter.loop
        future = waiter.future
        assert loop is not None
        assert future is not None
        if asyncio.events._get_running_loop() is loop:
            _wake_future(future)
            return
        try:
            loop.call_soon_threadsafe(_wake_future, future)
        except RuntimeError:
            # The waiter's loop is closed: its task will never run again to use the slot.
            assert waiter.permit is not None
            waiter.permit.release("dropped")

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(limit={self._limit:.2f}, in_flight={self._in_flight}, "
            f"waiting={len(self._waiters)}, cuts={self._cuts})"
        )

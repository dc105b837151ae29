"""Adaptive concurrency limiter: finds the vendor's concurrency quota without being told.

Slow start, then a quota read off the first refusal. The limit starts at ``settings.initial``
and grows by 1 per ``"success"`` (one round of successes doubles it) until the vendor first
answers 40000005. A client that knows when its task started calls :meth:`Permit.started`: the
permit counts as a success then (a refusal can no longer come), not when the call ends, so a
round is one start round trip, not one whole call.

The first refusal says what the quota is: the gateway counts a slot per session from its start
directive (docs/protocol.md "Limits"), so it refused because the sessions the client had in
flight already filled it. The limit becomes the number of *other* permits in flight when the
refusal comes back (never more than the slots minus the refused one), and slow start ends. From
there the limit probes upward slowly: one slot more after ``PROBE_ROUNDS`` rounds of successes
at the limit (a round: ``slots`` successes), each further step after half as many rounds (a
quota that grew is followed quickly), back to ``PROBE_ROUNDS`` after a refusal. A refused probe
puts the limit back where it was -- not below the slot count that last completed a whole round
of successes (``stats()["works"]``); a refusal at a slot count that worked (the quota shrank)
sets the limit to what was in flight, one step per round.

One cut per round: only a permit granted after the latest cut may cut again. The rest of the
burst of refusals that one round of calls brings (sent before the limit came down) only lowers
the limit to the calls still in flight as each comes back, never below what worked, and is no
new cut. ``"dropped"`` leaves the limit alone. Throttled calls go back to wait for a slot.
As in Netflix's ``AIMDLimit``, a success only counts when the limiter is at least half used
(``in_flight * 2 >= slots``): a lightly loaded limiter learns nothing about the quota, and must
not climb to ``max`` and then hit the vendor with a burst.

One limiter serves threads and asyncio tasks on any number of event loops at once. Its state is
guarded by a ``threading.Lock``; waiters queue FIFO in a :class:`~.waiting.WaiterQueue`, and a
freed slot is handed to the oldest waiter directly, so nobody can barge past the queue. The
acquire is written once, as a plan (:mod:`.waiting`) that the sync and async faces run.

:class:`Limiter` is what a scope holds and the retry engine calls: this class and the fleet's
Redis limiter both satisfy it. :class:`Permit` is the one slot type of every limiter.

Closing a limiter (``close()``, or leaving its ``with`` / ``async with`` block) admits nothing
more: every caller waiting for a slot wakes with :class:`LimiterClosedError`, and so does every
later acquire; permits still held may be released as usual.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar, runtime_checkable

from .._errors import AsrResilienceError
from ..policy._model import ConcurrencySettings
from ._waiting import Plan, Waiter, WaiterQueue, run_async, run_sync

__all__ = [
    "AdaptiveLimiter",
    "ClosesOnExit",
    "Limiter",
    "LimiterClosedError",
    "Outcome",
    "Permit",
]

Outcome = Literal["success", "throttled", "dropped"]


class LimiterClosedError(AsrResilienceError, RuntimeError):
    """The limiter was closed: a caller waiting for a slot, or asking for one later, gets no
    slot (a scope's limiter is closed by ``Scope.close`` and ``reset_scopes``)."""


_Self = TypeVar("_Self", bound="ClosesOnExit")


class ClosesOnExit:
    """``with`` and ``async with`` close the limiter on the way out (``async with`` closes it in
    a worker thread: a fleet limiter's close waits on Redis and on its thread)."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.close)


class _Owner(Protocol):
    """What hands out permits: it takes each back exactly once."""

    def _release(self, permit: Permit, outcome: Outcome) -> None: ...

    def _started(self, permit: Permit) -> None: ...


class Permit:
    """One slot of a limiter; ``release`` it once (a second call does nothing)."""

    __slots__ = ("_epoch", "_owner", "_released", "_started")

    def __init__(self, owner: _Owner, epoch: int) -> None:
        self._owner = owner
        self._epoch = epoch  # the limiter's round when granted: only its latest round may cut
        self._released = False
        self._started = False  # the service accepted the task: the limiter has learnt from it

    @property
    def released(self) -> bool:
        """Whether the slot has been given back."""
        return self._released

    def release(self, outcome: Outcome) -> None:
        """Give the slot back, telling the limiter how the call went (never blocks on I/O)."""
        self._owner._release(self, outcome)

    def started(self) -> None:
        """The service started the task on this slot: a 40000005 can no longer come.

        The limiter learns from it now, as from a success, instead of when the call ends: a
        slow start then doubles per start round trip, not per call (never blocks on I/O).
        """
        self._owner._started(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch={self._epoch}, released={self._released})"


@runtime_checkable
class Limiter(Protocol):
    """A scope's concurrency limiter, as the retry engine uses it.

    ``acquire_sync`` / ``acquire`` return ``None`` when ``timeout`` seconds pass without a slot;
    ``adaptive`` says whether a 40000005 lowers the limit (so a throttled call may queue again
    at once); ``close`` gives back what the limiter holds outside the process and wakes every
    waiter with :class:`LimiterClosedError`, which later acquires raise too.
    """

    @property
    def adaptive(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...

    def stats(self) -> dict[str, float | int]: ...

    def acquire_sync(self, timeout: float | None = None) -> Permit | None: ...

    async def acquire(self, timeout: float | None = None) -> Permit | None: ...

    def close(self) -> None: ...


PROBE_ROUNDS = 8.0
"""Rounds of successes at the limit a refusal set before it probes one slot higher. Each probe
past the quota costs one 40000005; each step that holds makes the next come after half as many
rounds (down to :data:`FAST_PROBE_ROUNDS`), so a quota that grew is found in a few rounds more
(bench/quota.py: quota 10 unknown to the client, and a quota that moves 10 -> 5 -> 10)."""

FAST_PROBE_ROUNDS = 1.0
"""The fewest rounds of successes between two steps up while the steps keep holding."""


class AdaptiveLimiter(ClosesOnExit):
    """Limits calls in flight to a slot count it learns from the vendor's throttling.

    ``on_change(old_limit, new_limit)`` runs outside the lock when the slot count changes or the
    limit is cut. ``on_release(permit,
    outcome)`` runs outside the lock after each permit is given back (once per permit).
    ``close()`` (or the end of a ``with`` / ``async with`` block) wakes every waiter with
    :class:`LimiterClosedError`.
    """

    def __init__(
        self,
        settings: ConcurrencySettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[float, float], None] | None = None,
        *,
        on_release: Callable[[Permit, Outcome], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock  # kept for symmetry with the other limits; AIMD needs no time
        self._on_change = on_change
        self._on_release = on_release
        self._min = max(1, settings.min)
        self._max = max(self._min, settings.max)
        self._limit = float(min(self._max, max(self._min, settings.initial)))
        self._ssthresh = float(self._max)  # slow start below it; no more once refused
        self._credit = 0  # successes since the limit last moved
        self._patience = PROBE_ROUNDS  # rounds of successes before the next step up
        self._works = 0  # the most slots a whole round of successes ran at (0: unknown)
        self._ceiling: int | None = None
        self._slots = self._slots_for(self._limit)
        self._in_flight = 0
        self._epoch = 0
        self._cuts = 0
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: WaiterQueue[Permit] = WaiterQueue(self._lock)

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
        """A snapshot: limit, slots, ssthresh, works, in_flight, waiting, cuts."""
        with self._lock:
            return {
                "limit": self._limit,
                "slots": self._slots,
                "ssthresh": self._ssthresh,
                "works": self._works,
                "in_flight": self._in_flight,
                "waiting": len(self._waiters),
                "cuts": self._cuts,
            }

    # -- acquiring ---------------------------------------------------------------------------

    def acquire_sync(self, timeout: float | None = None) -> Permit | None:
        """Block the thread until a slot is free; ``None`` if ``timeout`` seconds pass first."""
        return self._try_grant() or run_sync(self.plan(timeout))

    async def acquire(self, timeout: float | None = None) -> Permit | None:
        """Wait in the event loop until a slot is free; ``None`` if ``timeout`` passes first.

        Cancellation-safe: a waiter cancelled before or after it was handed a slot gives the
        slot back.
        """
        return self._try_grant() or await run_async(self.plan(timeout))

    def plan(self, timeout: float | None) -> Plan[Permit | None]:
        """The acquire, for :func:`~.waiting.run_sync` or :func:`~.waiting.run_async`."""
        with self._lock:
            if self._closed:
                raise LimiterClosedError(_CLOSED)
            if not self._waiters and self._in_flight < self._slots:
                return self._grant()
            if timeout is not None and timeout <= 0:
                return None
            waiter = self._waiters.join()
        # Interrupted or cancelled, it leaves the queue, or gives back a slot handed over.
        permit = yield from self._waiters.wait(waiter, timeout, _drop)
        if waiter.redirected:
            raise LimiterClosedError(_CLOSED)
        return permit

    def _try_grant(self) -> Permit | None:
        """The happy path without building a plan: a free slot and nobody queued."""
        with self._lock:
            if not self._waiters and self._in_flight < self._slots and not self._closed:
                return self._grant()
            return None

    def adopt(self) -> Permit:
        """Count a call admitted elsewhere that is still in flight: granted even past ``slots``.

        The fleet's limiter adopts its Redis permits here when Redis goes away, so that the
        local share counts the calls already running, not only the ones it admits itself.
        """
        with self._lock:
            return self._grant()

    def _grant(self) -> Permit:
        """A new permit; the caller holds the lock."""
        self._in_flight += 1
        return Permit(self, self._epoch)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Admit nothing more: waiters wake with :class:`LimiterClosedError`, as later acquires
        fail. Permits still held are released as usual. Idempotent."""
        with self._lock:
            self._closed = True
            woken = self._waiters.redirect_all()
        for waiter in woken:
            waiter.wake()

    # -- releasing ---------------------------------------------------------------------------

    def _release(self, permit: Permit, outcome: Outcome) -> None:
        with self._lock:
            if permit._released:
                return
            permit._released = True
            old = self._limit
            old_slots = self._slots
            if outcome == "success":
                if not permit._started and self._in_flight * 2 >= old_slots and old < self._max:
                    self._grow(old)
            elif outcome == "throttled":
                self._refused(permit._epoch == self._epoch)
            self._in_flight -= 1
            woken = self._serve()
            notify = self._on_change is not None and (self._slots != old_slots or self._limit < old)
            new = self._limit
        _wake(woken)
        if notify:
            assert self._on_change is not None
            self._on_change(old, new)
        if self._on_release is not None:
            self._on_release(permit, outcome)

    def _started(self, permit: Permit) -> None:
        with self._lock:
            if permit._released or permit._started:
                return
            permit._started = True
            old = self._limit
            if self._in_flight * 2 >= self._slots and old < self._max:
                self._grow(old)
            if self._limit == old:
                return
            woken = self._serve()
            new = self._limit
        _wake(woken)
        if self._on_change is not None:
            self._on_change(old, new)

    def _serve(self) -> list[Waiter[Permit]]:
        """Hand free slots to the oldest waiters; the caller holds the lock, then wakes them."""
        woken = []
        while self._waiters and self._in_flight < self._slots:
            woken.append(self._waiters.serve(self._grant()))
        return woken

    def set_ceiling(self, ceiling: int | None) -> None:
        """Allow at most ``ceiling`` calls in flight whatever the limit (even 0); None lifts it.

        The fleet's limiter sets it while cut off from Redis: its share minus what the other
        workers may still be running. Waiters are served at once if the slot count rises.
        """
        with self._lock:
            self._ceiling = None if ceiling is None else max(0, ceiling)
            self._slots = self._slots_for(self._limit)
            woken = self._serve()
        _wake(woken)

    def _grow(self, old: float) -> None:
        """A success with the limiter at least half used; the caller holds the lock."""
        if old < self._ssthresh:
            self._set_limit(min(float(self._max), old + 1.0))  # slow start: not refused yet
            return
        slots = self._slots_for(old, capped=False)
        self._credit += 1
        if self._credit >= slots and self._works < slots:
            self._works = slots  # a whole round of successes at this many slots
        if self._credit >= self._patience * slots:
            # Probe one slot higher; the next step comes sooner while the steps keep holding.
            self._credit = 0
            self._patience = max(FAST_PROBE_ROUNDS, self._patience / 2)
            self._set_limit(min(float(self._max), math.floor(old) + 1.0))

    def _refused(self, fresh: bool) -> None:
        """A 40000005; ``fresh``: to a permit granted since the latest cut. Caller holds the lock.

        The gateway counts a session's slot from its start directive
        (docs/protocol.md "Limits"): it refused because the sessions in flight filled the
        quota. Those are read *when the refusal comes back*, not when the refused attempt was
        admitted. When a success frees a slot and grows the limit, two permits go out together;
        whichever reaches the gateway second is refused, and at its admission the other one
        was not yet counted -- one short. At the refusal both are counted; a permit granted
        after the refused one cannot push the count past ``slots - 1``, the cap below, and a
        session that ended since is one the gateway no longer counts either. A refusal that
        is not fresh belongs to the burst the latest cut answered (sent before the limit came
        down): the count only shrinks as that burst comes back, so it may lower the limit to
        it, never below what worked, and is no new cut.
        """
        slots = self._slots_for(self._limit, capped=False)
        others = self._in_flight - 1  # the refused permit is not counted
        if not fresh:
            # Sent before the latest cut: part of the burst the cut answered.
            if others < slots and self._works < slots:
                self._set_limit(float(max(self._min, others, self._works)))
                self._ssthresh = self._limit
            return
        new = min(others, slots - 1)
        if self._works < slots:
            new = max(new, self._works)  # a refused probe: back to what a round ran at
        else:
            self._works = 0  # refused at a slot count that worked: the quota shrank
        new = max(self._min, new)
        self._ssthresh = float(new)
        self._set_limit(float(new))
        self._credit = 0
        self._patience = PROBE_ROUNDS
        self._epoch += 1
        self._cuts += 1

    def _set_limit(self, limit: float) -> None:
        self._limit = limit
        self._slots = self._slots_for(limit)

    def _slots_for(self, limit: float, *, capped: bool = True) -> int:
        slots = max(self._min, math.floor(limit))
        return slots if self._ceiling is None or not capped else min(self._ceiling, slots)

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(limit={self._limit:.2f}, in_flight={self._in_flight}, "
            f"waiting={len(self._waiters)}, cuts={self._cuts})"
        )


_CLOSED = "the concurrency limiter is closed: it admits no more calls"


def _drop(permit: Permit) -> None:
    permit.release("dropped")


def _wake(woken: list[Waiter[Permit]]) -> None:
    """Wake the waiters handed a slot (outside the lock)."""
    for waiter in woken:
        if not waiter.wake():
            # The waiter's loop is closed: its task will never run again to use the slot.
            assert waiter.value is not None
            waiter.value.release("dropped")

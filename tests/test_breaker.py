"""Tests for asr_resilience.limits._breaker: closed, open and half-open."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asr_resilience.limits import BreakerState, CircuitBreaker
from asr_resilience.policy import CircuitBreakerSettings

SETTINGS = CircuitBreakerSettings(failure_ratio=0.5, min_calls=10, window=30.0, open_for=15.0)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _state(breaker: CircuitBreaker) -> BreakerState:
    """The state, read fresh (a helper, so the type checker does not narrow it between calls)."""
    return breaker.state


def _opened(
    clock: FakeClock, changes: list[tuple[BreakerState, BreakerState]] | None = None
) -> CircuitBreaker:
    def record(old: BreakerState, new: BreakerState) -> None:
        if changes is not None:
            changes.append((old, new))

    breaker = CircuitBreaker(SETTINGS, clock, record)
    for _ in range(10):
        breaker.record_failure()
    assert _state(breaker) == "open"
    return breaker


def test_stays_closed_below_min_calls() -> None:
    """Failures alone do not open the breaker until ``min_calls`` calls are in the window."""
    breaker = CircuitBreaker(SETTINGS, FakeClock())
    for _ in range(9):
        breaker.record_failure()
    assert _state(breaker) == "closed"
    assert breaker.allow()


def test_opens_at_the_ratio() -> None:
    """The breaker opens once failures / calls reaches ``failure_ratio`` (``>=``)."""
    breaker = CircuitBreaker(SETTINGS, FakeClock())
    for _ in range(6):
        breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert _state(breaker) == "closed"  # 4 / 10 < 0.5
    breaker.record_failure()
    assert _state(breaker) == "closed"  # 5 / 11 < 0.5
    breaker.record_failure()
    assert _state(breaker) == "open"  # 6 / 12 == 0.5


def test_old_failures_leave_the_window() -> None:
    """Failures older than the window no longer count towards opening."""
    clock = FakeClock()
    breaker = CircuitBreaker(SETTINGS, clock)
    for _ in range(9):
        breaker.record_failure()
    clock.advance(30.0)
    breaker.record_failure()
    assert _state(breaker) == "closed"


def test_open_refuses_until_open_for_elapsed() -> None:
    """An open breaker refuses calls for ``open_for`` seconds."""
    clock = FakeClock()
    breaker = _opened(clock)
    assert not breaker.allow()
    clock.advance(14.9)
    assert not breaker.allow()
    assert _state(breaker) == "open"


def test_one_probe_among_concurrent_callers() -> None:
    """After ``open_for``, exactly one of many concurrent callers gets the probe."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    callers = 32
    barrier = threading.Barrier(callers, timeout=10.0)

    def call() -> bool:
        barrier.wait()
        return breaker.allow()

    with ThreadPoolExecutor(max_workers=callers) as pool:
        results = list(pool.map(lambda _: call(), range(callers)))
    assert sum(results) == 1
    assert _state(breaker) == "half_open"
    assert not breaker.allow()


def test_probe_success_closes_with_a_fresh_window() -> None:
    """A success in half-open closes the breaker and forgets the old failures."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_success()
    assert _state(breaker) == "closed"
    assert breaker.allow()
    for _ in range(8):
        breaker.record_failure()
    assert _state(breaker) == "closed"  # 8 failures + 1 success: below min_calls


def test_probe_failure_reopens() -> None:
    """A failure in half-open reopens the breaker for another ``open_for``."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) == "open"
    clock.advance(14.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()
    assert _state(breaker) == "half_open"


def test_release_probe_lets_another_through() -> None:
    """A probe that ends without a verdict frees the half-open slot."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release_probe()
    assert breaker.allow()
    assert not breaker.allow()


def test_success_while_open_changes_nothing() -> None:
    """A late success from before the breaker opened neither closes it nor counts."""
    clock = FakeClock()
    breaker = _opened(clock)
    breaker.record_success()
    assert _state(breaker) == "open"
    assert not breaker.allow()


def test_on_change_sees_every_transition() -> None:
    """``on_change(old, new)`` is called for each transition, in order."""
    clock = FakeClock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = _opened(clock, changes)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_failure()
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_success()
    assert changes == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_on_change_runs_outside_the_lock() -> None:
    """The callback may read the breaker's state without deadlocking."""
    clock = FakeClock()
    seen: list[BreakerState] = []
    breaker: CircuitBreaker

    def on_change(old: BreakerState, new: BreakerState) -> None:
        seen.append(breaker.state)
        breaker.release_probe()

    breaker = CircuitBreaker(SETTINGS, clock, on_change)
    for _ in range(10):
        breaker.record_failure()
    assert seen == ["open"]


def test_disabled_records_nothing() -> None:
    """A disabled breaker always allows and never changes state."""
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        CircuitBreakerSettings(enabled=False, min_calls=1),
        FakeClock(),
        lambda old, new: changes.append((old, new)),
    )
    for _ in range(100):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.allow()
    assert _state(breaker) == "closed"
    assert changes == []


def test_release_probe_is_safe_in_every_state() -> None:
    """release_probe with no probe out, closed, open or half-open, changes nothing."""
    clock = FakeClock()
    breaker = CircuitBreaker(SETTINGS, clock)
    breaker.release_probe()  # closed, nothing out
    assert _state(breaker) == "closed"
    assert breaker.allow()
    for _ in range(10):
        breaker.record_failure()
    breaker.release_probe()  # open
    assert _state(breaker) == "open"
    assert not breaker.allow()
    clock.advance(15.0)
    assert breaker.allow()  # the probe
    breaker.release_probe()
    breaker.release_probe()  # a second time: nothing out any more
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    breaker.release_probe()  # closed again
    assert _state(breaker) == "closed"


def test_release_probe_from_a_non_probe_call_keeps_the_probe_out() -> None:
    """A call admitted before the breaker opened ends without a verdict: the probe stays out."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()  # this thread holds the probe
    other = threading.Thread(target=breaker.release_probe)  # another caller's exit
    other.start()
    other.join()
    assert not breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


async def test_release_probe_belongs_to_the_task_that_took_it() -> None:
    """Between tasks of one loop, only the probe's own task gives it back."""
    import asyncio

    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)

    async def probe() -> bool:
        return breaker.allow()

    assert await asyncio.create_task(probe())
    breaker.release_probe()  # this task is not the probe's
    assert not breaker.allow()


def test_lost_probe_is_replaced_after_open_for() -> None:
    """A probe never given back does not wedge half-open: after open_for another goes out."""
    clock = FakeClock()
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()
    clock.advance(14.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    assert not breaker.allow()

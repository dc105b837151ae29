"""Tests for asr_resilience.limits._limiter: slow start, the quota read off a refusal, slow
probing, FIFO waiters, threads + tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from asr_resilience.limits import AdaptiveLimiter, Permit
from asr_resilience.limits._limiter import FAST_PROBE_ROUNDS, PROBE_ROUNDS
from asr_resilience.policy import ConcurrencySettings


def _limiter(
    initial: int = 4,
    low: int = 1,
    high: int = 200,
    on_change: Callable[[float, float], None] | None = None,
) -> AdaptiveLimiter:
    return AdaptiveLimiter(
        ConcurrencySettings(adaptive=True, initial=initial, min=low, max=high),
        on_change=on_change,
    )


def _take(limiter: AdaptiveLimiter) -> Permit:
    permit = limiter.acquire_sync(timeout=0)
    assert permit is not None
    return permit


def _fill(limiter: AdaptiveLimiter) -> list[Permit]:
    """Every free slot, taken without blocking."""
    permits: list[Permit] = []
    while (permit := limiter.acquire_sync(timeout=0)) is not None:
        permits.append(permit)
    return permits


def _saturated_round(limiter: AdaptiveLimiter, permits: list[Permit]) -> list[Permit]:
    """Release ``permits`` with success one by one, refilling freed slots at once."""
    refilled: list[Permit] = []
    for permit in permits:
        permit.release("success")
        refilled.extend(_fill(limiter))
    return refilled


async def _until(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Let other tasks run until ``condition`` holds (bounded, not timed)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_starts_at_initial_and_clamps_settings() -> None:
    """The limit starts at ``initial`` clamped into [min, max]."""
    assert _limiter(initial=4).limit == 4.0
    assert _limiter(initial=50, high=10).limit == 10.0
    assert _limiter(initial=1, low=3).slots == 3


def test_slow_start_doubles_per_round() -> None:
    """Below ssthresh, each round of successes doubles the limit."""
    limiter = _limiter(initial=2)
    permits = _fill(limiter)
    seen = [limiter.slots]
    for _ in range(4):
        permits = _saturated_round(limiter, permits)
        seen.append(limiter.slots)
    assert seen == [2, 4, 8, 16, 32]
    assert len(permits) == 32


def _learnt(quota: int, high: int = 200) -> tuple[AdaptiveLimiter, list[Permit]]:
    """A limiter refused once with ``quota`` calls in flight: its limit and permits."""
    limiter = _limiter(initial=quota + 1, high=high)
    permits = _fill(limiter)
    permits.pop().release("throttled")
    assert limiter.limit == quota
    return limiter, permits


def _rounds(limiter: AdaptiveLimiter, permits: list[Permit], rounds: float) -> list[Permit]:
    """``rounds`` rounds of saturated successes at the current slot count."""
    for _ in range(round(rounds * limiter.slots)):
        permits.pop(0).release("success")
        permits.extend(_fill(limiter))
    return permits


def test_first_refusal_sets_the_limit_to_the_calls_in_flight() -> None:
    """The first 40000005 sets the limit to the other calls in flight, and ends slow start."""
    limiter = _limiter(initial=20)
    permits = [_take(limiter) for _ in range(13)]
    permits.pop().release("throttled")
    assert limiter.limit == 12.0
    assert limiter.stats()["ssthresh"] == 12.0
    assert limiter.stats()["cuts"] == 1


def test_in_flight_is_read_at_the_refusal_not_at_the_admission() -> None:
    """Calls admitted after the refused one but before its refusal count: it came back late."""
    limiter = _limiter(initial=20)
    refused = _take(limiter)  # nothing else in flight when it was admitted
    others = [_take(limiter) for _ in range(9)]
    refused.release("throttled")
    assert limiter.limit == 9.0
    assert len(others) == 9


def test_refusal_never_sets_more_than_the_slots_minus_the_refused_one() -> None:
    """Adopted calls past the slots do not raise the limit a refusal sets."""
    limiter = _limiter(initial=4)
    permits = [limiter.adopt() for _ in range(8)]
    permits.pop().release("throttled")
    assert limiter.limit == 3.0


def test_the_rest_of_a_burst_lowers_to_what_is_still_in_flight() -> None:
    """Refusals sent before the cut lower the limit to the calls left, without a new cut."""
    limiter = _limiter(initial=16)
    permits = _fill(limiter)
    doomed, kept = permits[10:], permits[:10]
    seen = []
    for permit in doomed:
        permit.release("throttled")
        seen.append(limiter.limit)
    assert seen == [15.0, 14.0, 13.0, 12.0, 11.0, 10.0]
    assert limiter.stats()["cuts"] == 1
    assert _fill(limiter) == []  # the quota is in use: the requeued calls wait
    assert len(kept) == 10


def test_probes_one_slot_up_after_rounds_of_success() -> None:
    """After a refusal the limit stays for PROBE_ROUNDS rounds of successes, then adds one."""
    limiter, permits = _learnt(10)
    permits = _rounds(limiter, permits, PROBE_ROUNDS - 0.1)
    assert limiter.limit == 10.0
    permits = _rounds(limiter, permits, 0.1)
    assert limiter.limit == 11.0
    assert limiter.stats()["works"] == 10
    assert len(permits) == 11


def test_a_refused_probe_goes_back_to_what_worked() -> None:
    """A probe refused with few calls in flight does not fall below the slots a round ran at."""
    limiter, permits = _learnt(10)
    permits = _rounds(limiter, permits, PROBE_ROUNDS)
    assert limiter.limit == 11.0
    for permit in permits[:6]:
        permit.release("dropped")
    permits[6].release("throttled")  # four others in flight
    assert limiter.limit == 10.0
    assert limiter.stats()["cuts"] == 2


def test_steps_up_come_sooner_while_they_hold() -> None:
    """A quota that grew: each step up holds, and the next comes after half as many rounds."""
    limiter, permits = _learnt(5)
    patience = PROBE_ROUNDS
    for limit in range(6, 12):
        permits = _rounds(limiter, permits, patience)
        assert limiter.limit == limit
        patience = max(FAST_PROBE_ROUNDS, patience / 2)


def test_a_refusal_at_a_limit_that_worked_follows_a_shrinking_quota() -> None:
    """Refused at a slot count that ran a whole round, the limit comes down, round by round."""
    limiter, permits = _learnt(10)
    permits = _rounds(limiter, permits, 1)
    assert limiter.stats()["works"] == 10
    for expected in (9.0, 8.0, 7.0):
        permits.pop().release("throttled")
        assert limiter.limit == expected
        permits.pop(0).release("success")  # a call ends; the freed slot goes to the next one
        permits.extend(_fill(limiter))
    assert limiter.stats()["cuts"] == 4


def test_a_started_task_teaches_the_limiter_once() -> None:
    """``Permit.started()`` grows the limit as a success would; its success later adds nothing."""
    limiter = _limiter(initial=2)
    permits = _fill(limiter)
    permits[0].started()
    assert limiter.limit == 3.0
    assert len(_fill(limiter)) == 1  # the new slot is handed out at once
    permits[0].started()
    permits[0].release("success")
    assert limiter.limit == 3.0
    permits[1].release("success")  # not started: learns at the end, as before
    assert limiter.limit == 4.0


def test_started_after_release_does_nothing() -> None:
    """A permit given back cannot teach the limiter any more."""
    limiter = _limiter(initial=2)
    permits = _fill(limiter)
    permits[0].release("dropped")
    permits[0].started()
    assert limiter.limit == 2.0


def test_lightly_used_limiter_does_not_grow() -> None:
    """Successes with fewer than half the slots in use teach nothing: the limit stays."""
    limiter = _limiter(initial=4)
    for _ in range(100):
        _take(limiter).release("success")
    assert limiter.limit == 4.0


def test_one_cut_per_round_under_a_burst_of_throttles() -> None:
    """Twenty throttles from one round cut the limit once; a later permit may cut again."""
    limiter = _limiter(initial=20)
    permits = _fill(limiter)
    assert len(permits) == 20
    for permit in permits:
        permit.release("throttled")
    assert limiter.limit == 1.0  # nothing left in flight
    assert limiter.stats()["cuts"] == 1
    _take(limiter).release("throttled")
    assert limiter.stats()["cuts"] == 2


def test_never_above_max() -> None:
    """Successes stop growing the limit at ``max``."""
    limiter = _limiter(initial=4, high=6)
    permits = _fill(limiter)
    for _ in range(20):
        permits = _saturated_round(limiter, permits)
    assert limiter.limit == 6.0
    assert len(permits) == 6


def test_never_below_min() -> None:
    """Throttles stop cutting the limit at ``min``."""
    limiter = _limiter(initial=40, low=3)
    for _ in range(20):
        _take(limiter).release("throttled")  # nothing else in flight
    assert limiter.limit == 3.0
    assert limiter.slots == 3


def test_ceiling_caps_slots_below_min_and_lifting_it_serves_waiters() -> None:
    """set_ceiling(0) admits nobody whatever the limit; set_ceiling(None) wakes the waiters."""
    limiter = _limiter(initial=4, high=4)
    limiter.set_ceiling(0)
    assert limiter.slots == 0
    assert limiter.acquire_sync(timeout=0) is None
    got: list[Permit | None] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire_sync(timeout=10)))
    waiter.start()
    while limiter.stats()["waiting"] == 0:
        threading.Event().wait(0.001)
    limiter.set_ceiling(None)
    waiter.join()
    assert got[0] is not None
    assert limiter.slots == 4


def test_dropped_leaves_the_limit_alone() -> None:
    """A ``dropped`` outcome frees the slot and changes nothing else."""
    limiter = _limiter(initial=4)
    permits = _fill(limiter)
    for permit in permits:
        permit.release("dropped")
    assert limiter.limit == 4.0
    assert limiter.in_flight == 0


def test_release_is_idempotent() -> None:
    """A second release of the same permit does nothing."""
    limiter = _limiter(initial=8)
    first = _take(limiter)
    _take(limiter)
    first.release("throttled")
    first.release("throttled")
    first.release("success")
    assert first.released
    assert limiter.in_flight == 1
    assert limiter.limit == 1.0
    assert limiter.stats()["cuts"] == 1


def test_on_change_reports_slot_changes() -> None:
    """``on_change(old, new)`` runs when the slot count changes or the limit is cut."""
    changes: list[tuple[float, float]] = []
    limiter = _limiter(initial=2, on_change=lambda old, new: changes.append((old, new)))
    permits = _fill(limiter)
    permits = _saturated_round(limiter, permits)
    permits[0].release("throttled")
    assert changes == [(2.0, 3.0), (3.0, 4.0), (4.0, 3.0)]


def test_stats() -> None:
    """``stats()`` reports limit, in-flight, waiting and cuts."""
    limiter = _limiter(initial=3)
    _fill(limiter)
    stats = limiter.stats()
    assert stats["limit"] == 3.0
    assert stats["in_flight"] == 3
    assert stats["waiting"] == 0
    assert stats["cuts"] == 0


def test_sync_acquire_timeout_returns_none() -> None:
    """A thread that waits past its timeout gets ``None`` and leaves the queue."""
    limiter = _limiter(initial=1, high=1)
    held = _take(limiter)
    assert limiter.acquire_sync(timeout=0) is None
    assert limiter.acquire_sync(timeout=0.01) is None
    assert limiter.stats()["waiting"] == 0
    held.release("success")
    assert limiter.in_flight == 0


async def test_async_acquire_timeout_returns_none() -> None:
    """A task that waits past its timeout gets ``None`` and leaves the queue."""
    limiter = _limiter(initial=1, high=1)
    held = await limiter.acquire()
    assert held is not None
    assert await limiter.acquire(timeout=0) is None
    assert await limiter.acquire(timeout=0.01) is None
    assert limiter.stats()["waiting"] == 0
    held.release("success")
    assert limiter.in_flight == 0


async def test_cancelled_waiter_leaks_no_slot() -> None:
    """A waiter cancelled while queued leaves the queue and takes no slot."""
    limiter = _limiter(initial=1, high=1)
    held = await limiter.acquire()
    assert held is not None
    task = asyncio.create_task(limiter.acquire())
    await _until(lambda: limiter.stats()["waiting"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.stats()["waiting"] == 0
    held.release("success")
    assert limiter.in_flight == 0
    assert await limiter.acquire(timeout=0) is not None


async def test_waiter_cancelled_after_hand_off_returns_the_slot() -> None:
    """A waiter cancelled after a slot was handed to it gives that slot back."""
    limiter = _limiter(initial=1, high=1)
    held = await limiter.acquire()
    assert held is not None
    task = asyncio.create_task(limiter.acquire())
    await _until(lambda: limiter.stats()["waiting"] == 1)
    held.release("dropped")
    assert limiter.in_flight == 1  # handed to the waiting task, which has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.in_flight == 0
    assert limiter.stats()["waiting"] == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    """Freed slots go to waiters first come, first served."""
    limiter = _limiter(initial=1, high=1)
    held = await limiter.acquire()
    assert held is not None
    order: list[int] = []

    async def wait(index: int) -> None:
        permit = await limiter.acquire()
        assert permit is not None
        order.append(index)
        permit.release("dropped")

    tasks = [asyncio.create_task(wait(i)) for i in range(10)]
    await _until(lambda: limiter.stats()["waiting"] == 10)
    held.release("dropped")
    await asyncio.gather(*tasks)
    assert order == list(range(10))


async def test_no_barging_past_the_queue() -> None:
    """A newcomer does not take a slot ahead of a queued waiter."""
    limiter = _limiter(initial=1, high=1)
    held = await limiter.acquire()
    assert held is not None
    task = asyncio.create_task(limiter.acquire())
    await _until(lambda: limiter.stats()["waiting"] == 1)
    held.release("dropped")
    assert await limiter.acquire(timeout=0) is None
    permit = await task
    assert permit is not None
    permit.release("dropped")


async def test_never_more_than_the_limit_with_tasks() -> None:
    """With 200 tasks, the calls in flight never exceed the slot count."""
    limiter = _limiter(initial=3, high=10)
    current = peak = 0

    async def job() -> None:
        nonlocal current, peak
        permit = await limiter.acquire()
        assert permit is not None
        current += 1
        peak = max(peak, current)
        assert current <= limiter.slots
        await asyncio.sleep(0)  # the call spans a few turns of the loop
        await asyncio.sleep(0)
        current -= 1
        permit.release("success")

    await asyncio.gather(*(job() for _ in range(200)))
    assert 3 < peak <= 10
    assert limiter.in_flight == 0


def test_never_more_than_the_limit_with_threads() -> None:
    """With 50 threads, at most ``slots`` hold a permit, and that many do overlap."""
    limiter = _limiter(initial=5, high=5)
    lock = threading.Lock()
    barrier = threading.Barrier(5, timeout=10.0)
    current = peak = 0

    def job() -> None:
        nonlocal current, peak
        permit = limiter.acquire_sync(timeout=10.0)
        assert permit is not None
        with lock:
            current += 1
            peak = max(peak, current)
        barrier.wait()  # five holders at once, or the barrier breaks
        with lock:
            current -= 1
        permit.release("success")

    with ThreadPoolExecutor(max_workers=50) as pool:
        for future in [pool.submit(job) for _ in range(50)]:
            future.result()
    assert peak == 5
    assert limiter.in_flight == 0
    assert limiter.stats()["waiting"] == 0


def test_serves_threads_and_several_event_loops_at_once() -> None:
    """Threads and tasks on two loops share one limiter without exceeding it."""
    limiter = _limiter(initial=3, high=3)
    lock = threading.Lock()
    start = threading.Barrier(4, timeout=10.0)
    current = peak = done = 0

    def enter() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)

    def leave() -> None:
        nonlocal current, done
        with lock:
            current -= 1
            done += 1

    async def task_job() -> None:
        permit = await limiter.acquire()
        assert permit is not None
        enter()
        await asyncio.sleep(0)
        leave()
        permit.release("success")

    async def loop_main() -> None:
        await asyncio.gather(*(task_job() for _ in range(40)))

    def run_loop() -> None:
        start.wait()
        asyncio.run(loop_main())

    def run_threads() -> None:
        start.wait()
        for _ in range(40):
            permit = limiter.acquire_sync(timeout=10.0)
            assert permit is not None
            enter()
            leave()
            permit.release("success")

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(run_loop), pool.submit(run_loop)]
        futures += [pool.submit(run_threads), pool.submit(run_threads)]
        for future in futures:
            future.result()
    assert done == 160
    assert peak <= 3
    assert limiter.in_flight == 0


async def test_converges_on_the_vendors_quota() -> None:
    """Against a server that throttles beyond 10 in flight, the limit settles near 10."""
    quota = 10
    limiter = _limiter(initial=4)
    server_in_flight = attempts = throttled = 0

    async def job() -> None:
        nonlocal server_in_flight, attempts, throttled
        while True:
            permit = await limiter.acquire()
            assert permit is not None
            attempts += 1
            server_in_flight += 1
            over = server_in_flight > quota
            await asyncio.sleep(0)  # the call spans a few turns of the loop
            await asyncio.sleep(0)
            server_in_flight -= 1
            if not over:
                permit.release("success")
                return
            throttled += 1
            permit.release("throttled")  # and go back to the queue

    await asyncio.gather(*(job() for _ in range(300)))
    assert 5 <= limiter.limit <= 20
    assert throttled / attempts < 0.2
    assert limiter.in_flight == 0

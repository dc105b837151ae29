"""The deadline watch: one timer per loop cancels attempts whose deadline passed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import asr_resilience as ar
from asr_resilience.retry._watch import RESOLUTION, DeadlineWatch, watch_for

from .helpers import write_policy


class _Mark:
    """An Expiring that records when it expired."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.at: float | None = None
        self.event = asyncio.Event()

    def expire(self) -> None:
        self.at = self.loop.time()
        self.event.set()


async def test_expires_at_its_deadline_rounded_up() -> None:
    """A registered key expires no earlier than its deadline and within one resolution step."""
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    mark = _Mark(loop)
    when = loop.time() + 0.05
    watch.add(mark, when)
    await asyncio.wait_for(mark.event.wait(), 5)
    assert mark.at is not None
    assert when <= mark.at + 1e-6
    assert len(watch) == 0


async def test_removed_keys_never_expire_and_later_ones_still_do() -> None:
    """Removing a key cancels its expiry; a later key in another bucket still expires."""
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    early, late = _Mark(loop), _Mark(loop)
    ticket = watch.add(early, loop.time() + 0.02)
    watch.add(late, loop.time() + 0.06)
    watch.remove(early, ticket)
    watch.remove(early, ticket)  # twice: nothing happens
    await asyncio.wait_for(late.event.wait(), 5)
    assert early.at is None
    assert late.at is not None


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    """A key added with an earlier deadline than every other still expires on time."""
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    far, near = _Mark(loop), _Mark(loop)
    watch.add(far, loop.time() + 60)
    watch.add(near, loop.time() + 0.03)
    await asyncio.wait_for(near.event.wait(), 5)
    assert far.at is None
    assert len(watch) == 1


async def test_buckets_are_bounded_by_the_deadline_not_the_call_rate() -> None:
    """Ten thousand registrations within one resolution step share one bucket."""
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    when = (int(loop.time() / RESOLUTION) + 1000) * RESOLUTION  # on the grid: one bucket
    marks = [_Mark(loop) for _ in range(10_000)]
    tickets = [watch.add(mark, when) for mark in marks]
    assert len(set(tickets)) == 1
    assert len(watch._buckets) == 1
    for mark, ticket in zip(marks, tickets, strict=True):
        watch.remove(mark, ticket)
    assert len(watch) == 0


async def test_one_watch_per_loop() -> None:
    """The same loop gets the same watch; attempts that ended leave nothing registered."""
    loop = asyncio.get_running_loop()
    assert watch_for(loop) is watch_for(loop)


async def test_a_coroutine_past_its_deadline_is_cancelled(tmp_path: Path) -> None:
    """A decorated coroutine that outlives the policy's deadline ends in DeadlineExceededError."""
    policy = write_policy(tmp_path, "defaults: {deadline: 200ms}\n")
    started = asyncio.Event()

    @ar.resilient(policy, scope="watch-deadline")
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    loop = asyncio.get_running_loop()
    begin = loop.time()
    with pytest.raises(ar.DeadlineExceededError) as info:
        await hang()
    elapsed = loop.time() - begin
    assert started.is_set()
    assert 0.2 <= elapsed < 5  # bounded by the deadline, not by the hang
    assert "deadline passed during the attempt" in str(info.value)
    assert len(watch_for(loop)) == 0


async def test_an_outer_cancellation_is_not_taken_for_the_deadline(
    tmp_path: Path,
) -> None:
    """Cancelling the caller propagates CancelledError, not a deadline error."""
    policy = write_policy(tmp_path, "defaults: {deadline: 60s}\n")
    started = asyncio.Event()

    @ar.resilient(policy, scope="watch-cancel")
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(watch_for(asyncio.get_running_loop())) == 0

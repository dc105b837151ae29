"""Tests for asr_resilience.simulator._stats: the gateway's counters of sessions and slots."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asr_resilience.simulator import SimulatorStats


def test_take_peak_reports_each_phase_and_carries_open_sessions_over() -> None:
    """take_peak gives the most slots held since the last call; the next phase starts at now."""
    stats = SimulatorStats()
    for _ in range(3):
        stats.slot_taken("a")
    stats.slot_taken("b")
    stats.slot_released("a")
    stats.slot_released("a")
    assert stats.take_peak() == {"a": 3, "b": 1}
    # One session of "a" and one of "b" are still open: they count in the new phase.
    assert stats.snapshot()["peak_concurrent"] == {"a": 1, "b": 1}
    stats.slot_taken("a")
    stats.slot_released("b")
    assert stats.take_peak() == {"a": 2, "b": 1}
    assert stats.take_peak() == {"a": 2, "b": 0}
    assert stats.max_concurrent == {"a": 3, "b": 1}  # the whole run's peak is untouched


async def test_wait_slots_is_woken_by_a_release_from_another_thread() -> None:
    """wait_slots returns once a slot released in another thread makes the condition true."""
    stats = SimulatorStats()
    stats.slot_taken("a")
    waiting = asyncio.ensure_future(stats.wait_slots(lambda slots: slots["a"] == 0, timeout=10))
    await asyncio.sleep(0)  # let it register (one turn of the loop, not a timed wait)
    assert not waiting.done()
    thread = threading.Thread(target=stats.slot_released, args=("a",))
    thread.start()
    await waiting
    thread.join()
    assert stats.concurrent == {"a": 0}


async def test_wait_slots_times_out_with_the_slots_it_saw() -> None:
    """A condition that never holds ends in TimeoutError naming the slots held."""
    stats = SimulatorStats()
    stats.slot_taken("a")
    with pytest.raises(TimeoutError, match="'a': 1"):
        await stats.wait_slots(lambda slots: not slots["a"], timeout=0.05)

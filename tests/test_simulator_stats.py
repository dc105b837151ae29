"""Tests for asr_resilience.simulator._stats: the gateway's counters of sessions and slots."""

from __future__ import annotations

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

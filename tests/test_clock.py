"""Tests for asr_resilience.clock: the Clock and the no-wait switch, below every waiting layer."""

from __future__ import annotations

from asr_resilience import clock
from asr_resilience.retry import clock as retry_clock
from asr_resilience.testing import no_wait


def test_retry_clock_reexports_the_same_objects() -> None:
    """retry.clock hands out the very Clock, SYSTEM_CLOCK and switch of asr_resilience.clock."""
    assert retry_clock.Clock is clock.Clock
    assert retry_clock.SYSTEM_CLOCK is clock.SYSTEM_CLOCK
    assert retry_clock.no_wait_active is clock.no_wait_active


def test_pause_is_zero_under_no_wait() -> None:
    """An interruptible pause lasts its seconds, or nothing inside testing.no_wait()."""
    assert clock.SYSTEM_CLOCK.pause(0.5) == 0.5
    assert clock.SYSTEM_CLOCK.pause(-1.0) == 0.0
    with no_wait():
        assert clock.no_wait_active()
        assert clock.SYSTEM_CLOCK.pause(0.5) == 0.0
    assert not clock.no_wait_active()

"""Tests for asr_resilience._clock: the Clock and the no-wait switch, below every waiting layer."""

from __future__ import annotations

import asr_resilience as ar
from asr_resilience import _clock as clock
from asr_resilience.retry import SYSTEM_CLOCK, Clock
from asr_resilience.testing import no_wait


def test_public_names_are_the_clock_modules_objects() -> None:
    """retry and testing hand out the very Clock and SYSTEM_CLOCK of asr_resilience._clock."""
    assert Clock is clock.Clock is ar.retry.Clock
    assert SYSTEM_CLOCK is clock.SYSTEM_CLOCK


def test_pause_is_zero_under_no_wait() -> None:
    """An interruptible pause lasts its seconds, or nothing inside testing.no_wait()."""
    assert clock.SYSTEM_CLOCK.pause(0.5) == 0.5
    assert clock.SYSTEM_CLOCK.pause(-1.0) == 0.0
    with no_wait():
        assert clock.no_wait_active()
        assert clock.SYSTEM_CLOCK.pause(0.5) == 0.0
    assert not clock.no_wait_active()

"""Time as the retry machinery sees it: re-exported from :mod:`asr_resilience.clock`.

The clock and the no-wait switch live below every layer that waits (retry, tokens, limits,
fleet); this module keeps the names where the retry machinery has always imported them.
"""

from __future__ import annotations

from ..clock import SYSTEM_CLOCK, Clock, enter_no_wait, exit_no_wait, no_wait_active

__all__ = ["SYSTEM_CLOCK", "Clock", "enter_no_wait", "exit_no_wait", "no_wait_active"]

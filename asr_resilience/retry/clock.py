"""Time as the retry machinery sees it: re-exported from :mod:`asr_resilience.clock`.

The clock and the no-wait switch live below ``retry`` so that lower layers (tokens) can wait
through the same clock; this module keeps the old import path working.
"""

from __future__ import annotations

from ..clock import SYSTEM_CLOCK, Clock, enter_no_wait, exit_no_wait, no_wait_active

__all__ = ["SYSTEM_CLOCK", "Clock", "enter_no_wait", "exit_no_wait", "no_wait_active"]

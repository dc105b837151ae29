"""Time as the library sees it: injectable clocks and sleeps, and the no-wait switch.

The lowest layer, so that the retry machinery, the limits and the fleet all wait through it.
Only the I/O layers sleep (the policy engine decides, it never waits). Under ``no_wait`` every
decision stays the same, but sleeps return at once -- retry delays, the fleet's poll backoff and
its Redis probe alike. Waits *for something* (a free slot, work for a worker thread) are not
sleeps and are not shortened.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["SYSTEM_CLOCK", "Clock", "enter_no_wait", "exit_no_wait", "no_wait_active"]

_no_wait_depth = 0
_no_wait_lock = threading.Lock()


def no_wait_active() -> bool:
    """True while any ``testing.no_wait()`` block is open."""
    return _no_wait_depth > 0


def enter_no_wait() -> None:
    """Open a no-wait block (``testing.no_wait`` pairs it with :func:`exit_no_wait`)."""
    global _no_wait_depth
    with _no_wait_lock:
        _no_wait_depth += 1


def exit_no_wait() -> None:
    """Close a no-wait block."""
    global _no_wait_depth
    with _no_wait_lock:
        _no_wait_depth -= 1


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the library reads time and how it waits."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless no-wait is on or there is nothing to wait for."""
        if seconds > 0 and not no_wait_active():
            self.sleep(seconds)

    def pause(self, seconds: float) -> float:
        """How long a delay that must stay interruptible lasts: ``seconds``, or 0 under no-wait.

        For a backoff or poll spent on a condition variable or an event (a fleet worker that
        must also wake for a release), where :meth:`wait` would block without a way to wake.
        """
        return 0.0 if no_wait_active() else max(0.0, seconds)

    async def async_wait(self, seconds: float) -> None:
        """Asynchronous :meth:`wait`; always yields to the loop once."""
        if seconds > 0 and not no_wait_active():
            await self.async_sleep(seconds)
        else:
            await asyncio.sleep(0)


SYSTEM_CLOCK = Clock()

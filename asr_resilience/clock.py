"""Time as the retry machinery sees it: injectable clocks and sleeps, and the no-wait switch.

Only this layer sleeps (the policy engine decides, it never waits). Under ``no_wait`` every
decision stays the same, but sleeps return at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_no_wait_depth = 0
_no_wait_lock = threading.Lock()


def no_wait_active() -> bool:
    """True while any ``testing.no_wait()`` block is open."""
    return _no_wait_depth > 0


def enter_no_wait() -> None:
    global _no_wait_depth
    with _no_wait_lock:
        _no_wait_depth += 1


def exit_no_wait() -> None:
    global _no_wait_depth
    with _no_wait_lock:
        _no_wait_depth -= 1


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the retry machinery reads time and how it waits."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless no-wait is on or there is nothing to wait for."""
        if seconds > 0 and not no_wait_active():
            self.sleep(seconds)

    async def async_wait(self, seconds: float) -> None:
        """Asynchronous :meth:`wait`; always yields to the loop once."""
        if seconds > 0 and not no_wait_active():
            await self.async_sleep(seconds)
        else:
            await asyncio.sleep(0)


SYSTEM_CLOCK = Clock()

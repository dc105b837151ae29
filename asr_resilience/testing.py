"""Helpers for testing code that uses asr_resilience (public API)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from ._clock import Clock, enter_no_wait, exit_no_wait


@contextmanager
def no_wait() -> Iterator[None]:
    """Inside this block every decision is the same, but no retry wait sleeps."""
    enter_no_wait()
    try:
        yield
    finally:
        exit_no_wait()


class FakeClock:
    """A clock that only moves when something sleeps on it: deterministic deadlines in tests."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> Clock:
        """A Clock for ``resilient(clock=...)`` and ``retrying(clock=...)``."""
        return Clock(
            monotonic=self.monotonic, wall=self.wall, sleep=self.sleep, async_sleep=self.async_sleep
        )


__all__ = ["FakeClock", "no_wait"]

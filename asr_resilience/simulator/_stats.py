"""Counters of what the simulated gateway saw and answered, for tests and benchmarks.

Written only from the simulator's event loop; read from any thread (``snapshot`` copies under a
lock, so a reader never sees a half-updated dict). A test that must wait for the gateway's slots
to reach some state (all released, one account idle) awaits :meth:`SimulatorStats.wait_slots`,
which is woken by every slot taken or released instead of polling.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimulatorStats:
    """What happened so far; every field only grows, except ``concurrent`` and the phase peak."""

    connections: int = 0
    """WebSocket handshakes received (each one is a numbered session)."""
    rest_requests: int = 0
    """REST requests received (each one is a numbered session)."""
    handshakes_rejected: int = 0
    """Handshakes answered with an HTTP error (403 unknown token, 404 path, injected status)."""
    sessions_started: int = 0
    """Tasks that got their Started event (REST: requests whose checks passed)."""
    sessions_completed: int = 0
    """Tasks that ended with their Completed event (REST: a 20000000 answer)."""
    failed: dict[int, int] = field(default_factory=dict)
    """TaskFailed (REST: error bodies) by status code, injected ones included."""
    throttled: int = 0
    """Start directives refused for quota (40000005 from the real condition)."""
    client_disconnects: int = 0
    """Clients that left before their task finished (what the gateway logs as 40010004)."""
    stops: int = 0
    """Stop directives received (StopRecognition, StopTranscription) on a started task."""
    faults: dict[str, int] = field(default_factory=dict)
    """Injected faults fired, by action."""
    audio_bytes: int = 0
    concurrent: dict[str, int] = field(default_factory=dict)
    """Slots held now, by account."""
    max_concurrent: dict[str, int] = field(default_factory=dict)
    """Most slots held at once, by account."""
    peak_concurrent: dict[str, int] = field(default_factory=dict)
    """Most slots held at once since the last :meth:`take_peak` (or the start), by account."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list, repr=False, compare=False
    )

    def count_failure(self, code: int) -> None:
        with self._lock:
            self.failed[code] = self.failed.get(code, 0) + 1

    def count_fault(self, action: str) -> None:
        with self._lock:
            self.faults[action] = self.faults.get(action, 0) + 1

    def slot_taken(self, account: str) -> None:
        with self._lock:
            now = self.concurrent.get(account, 0) + 1
            self.concurrent[account] = now
            self.max_concurrent[account] = max(now, self.max_concurrent.get(account, 0))
            self.peak_concurrent[account] = max(now, self.peak_concurrent.get(account, 0))
            self._slots_changed()

    def slot_released(self, account: str) -> None:
        with self._lock:
            self.concurrent[account] = max(0, self.concurrent.get(account, 0) - 1)
            self._slots_changed()

    def _slots_changed(self) -> None:
        """Wake every :meth:`wait_slots` caller to look again (the caller holds the lock)."""
        watchers, self._watchers = self._watchers, []
        for loop, future in watchers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)

    async def wait_slots(self, condition: Callable[[dict[str, int]], bool], timeout: float) -> None:
        """Wait until ``condition(slots held now, by account)`` holds; ``TimeoutError`` after
        ``timeout`` seconds. Checked now and after every slot taken or released (no polling);
        works from any thread's event loop (the simulator may run in a :class:`SimulatorThread`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                slots = dict(self.concurrent)
                if condition(slots):
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._watchers.append((loop, future))
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(future, remaining)
            except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
                raise TimeoutError(
                    f"the gateway's slots did not reach the state within {timeout:g} s: {slots}"
                ) from None

    def take_peak(self) -> dict[str, int]:
        """The peaks since the last call (a test's phase), by account; the next phase starts now.

        The next phase's peak starts at the slots held now: a session that spans the boundary
        counts in both phases, as it was open in both.
        """
        with self._lock:
            peaks, self.peak_concurrent = self.peak_concurrent, dict(self.concurrent)
            return peaks

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter, as plain data."""
        with self._lock:
            return {
                "connections": self.connections,
                "rest_requests": self.rest_requests,
                "handshakes_rejected": self.handshakes_rejected,
                "sessions_started": self.sessions_started,
                "sessions_completed": self.sessions_completed,
                "failed": dict(self.failed),
                "throttled": self.throttled,
                "client_disconnects": self.client_disconnects,
                "stops": self.stops,
                "faults": dict(self.faults),
                "audio_bytes": self.audio_bytes,
                "concurrent": dict(self.concurrent),
                "max_concurrent": dict(self.max_concurrent),
                "peak_concurrent": dict(self.peak_concurrent),
            }


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

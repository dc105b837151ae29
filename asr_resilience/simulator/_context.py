"""What every session of one running simulator shares: accounts, config, scenario, counters.

Also the two things a fault does to a socket below HTTP and WebSocket (drop it, or reset it) and
the interruptible waits the ``stall`` / ``slow`` faults use, so stopping the simulator never waits
for an injected stall to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import threading
from collections.abc import Awaitable

from ._accounts import AccountStore
from ._config import SimulatorConfig
from ._scenario import Scenario
from ._stats import SimulatorStats


class SimulatorContext:
    """The state one simulator's gateway, REST endpoint and sessions share."""

    def __init__(
        self,
        store: AccountStore,
        config: SimulatorConfig,
        scenario: Scenario,
        stats: SimulatorStats,
    ) -> None:
        self.store = store
        self.config = config
        self.scenario = scenario
        self.stats = stats
        self._numbers = itertools.count(1)
        self._numbers_lock = threading.Lock()
        self._stopping: asyncio.Event | None = None

    def next_session(self) -> int:
        """The next 1-based session number (WebSocket connections and REST requests alike)."""
        with self._numbers_lock:
            return next(self._numbers)

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the simulator stops; created in the simulator's loop on first use."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    def begin(self) -> None:
        """A new run: a fresh stop event (an asyncio.Event binds to the loop that waits on it,
        and a restarted SimulatorThread runs a new loop)."""
        self._stopping = asyncio.Event()

    async def pause(self, seconds: float | None, *until: Awaitable[object]) -> bool:
        """Wait ``seconds`` (None: without end); True when the simulator stopped or one of
        ``until`` finished first (e.g. the client closed), False when the time ran out."""
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self.stopping.wait())]
        waiters += [asyncio.ensure_future(aw) for aw in until]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)


def half_close(transport: asyncio.BaseTransport | None) -> bool:
    """Send a FIN after everything already written, as a peer that closes its socket does, but
    keep reading: closing a socket with unread data in it sends a RST instead, and a RST makes
    the client's kernel discard the events it has received and not read yet. True when done;
    False when the transport cannot (then :func:`drop` it).
    """
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return False
    if not transport.can_write_eof():
        return False
    transport.write_eof()  # flushes the write buffer, then shutdown(SHUT_WR)
    return True


def drop(transport: asyncio.BaseTransport | None, *, reset: bool = False) -> None:
    """Close the TCP connection below HTTP/WebSocket: no close frame, no response.

    ``reset``: SO_LINGER with a zero timeout makes close() send a RST instead of a FIN, which the
    client sees as "connection reset by peer".
    """
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()  # at once, unlike close(): no flushing of what is buffered
    else:
        transport.close()

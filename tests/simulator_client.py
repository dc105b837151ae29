"""A raw NLS client for the simulator tests: websockets + the sans-I/O ClientProtocol.

Every wait is bounded (``TIMEOUT``), so a broken simulator fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asr_resilience import catalog
from asr_resilience.protocol import (
    RECOGNIZER,
    ClientProtocol,
    Completed,
    Event,
    Failed,
    ProtocolEvent,
    parse_event,
)
from asr_resilience.simulator import SimulatorConfig

from .audio_fixtures import frames

TIMEOUT = 5.0


class Target(Protocol):
    """What the helpers need of a Simulator or SimulatorThread."""

    @property
    def gateway_url(self) -> str: ...
    @property
    def appkey(self) -> str: ...
    def token(self, account: str | None = None, ttl: float | None = None) -> str: ...


def quick_config(**changes: Any) -> SimulatorConfig:
    """Config with timeouts short enough for tests that make them fire."""
    values: dict[str, Any] = {"idle_timeout": 2.0, "client_data_timeout": 2.0}
    values.update(changes)
    return SimulatorConfig(**values)


async def open_ws(
    sim: Target, token: str | None = None, *, in_query: bool = False
) -> ClientConnection:
    """A connection to the gateway with a token (header, or ``?token=``)."""
    token = sim.token() if token is None else token
    url, headers = sim.gateway_url, {"X-NLS-Token": token}
    if in_query:
        url, headers = f"{url}?token={token}", {}
    return await connect(
        url, additional_headers=headers, compression=None, proxy=None, open_timeout=TIMEOUT
    )


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def failure(ws: ClientConnection) -> Event:
    """Read frames until a TaskFailed; the raw event (namespace and all)."""
    while True:
        event = parse_event(await recv(ws))
        if event.name == "TaskFailed":
            return event


def assert_seed(code: int, text: str) -> None:
    """The status text is the vendor's: the catalog finds a seed row of that code for it."""
    entry = catalog().lookup(code, text)
    assert entry.code == code, (code, text, entry)
    assert entry.from_seed, (code, text, entry)


class RawTask:
    """One task over one connection, with the ClientProtocol checking every event."""

    def __init__(
        self,
        ws: ClientConnection,
        namespace: str,
        appkey: str,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.ws = ws
        self.client = ClientProtocol(namespace, appkey, params)

    async def event(self, timeout: float = TIMEOUT) -> ProtocolEvent:
        return self.client.receive(await recv(self.ws, timeout))

    async def start(self) -> ProtocolEvent:
        await self.ws.send(self.client.start())
        return await self.event()

    async def send(self, frame: str | bytes) -> None:
        """Send, unless the gateway already closed (after a TaskFailed, which stays readable)."""
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(frame)

    async def send_audio(self, audio: bytes, size: int = 3200) -> None:
        for chunk in frames(audio, size):
            await self.send(self.client.audio(chunk))

    async def until_end(self) -> list[ProtocolEvent]:
        """Events up to and including Completed or Failed."""
        events = []
        while True:
            event = await self.event()
            events.append(event)
            if isinstance(event, Completed | Failed):
                return events

    async def stop(self) -> list[ProtocolEvent]:
        await self.send(self.client.stop())
        return await self.until_end()


@asynccontextmanager
async def task(
    sim: Target,
    namespace: str = RECOGNIZER,
    params: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    appkey: str | None = None,
) -> AsyncIterator[RawTask]:
    """A connected task (not started yet)."""
    ws = await open_ws(sim, token)
    try:
        yield RawTask(ws, namespace, sim.appkey if appkey is None else appkey, params)
    finally:
        await ws.close()


async def run_task(
    sim: Target,
    namespace: str,
    audio: bytes,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> list[ProtocolEvent]:
    """A whole task: start, the audio unpaced, stop; every event received."""
    async with task(sim, namespace, params, **options) as t:
        first = await t.start()
        if isinstance(first, Failed):
            return [first]
        await t.send_audio(audio)
        return [first, *await t.stop()]

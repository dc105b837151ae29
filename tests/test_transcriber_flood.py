"""Transcriber against a gateway that floods events: the unread events stay bounded.

The gateway is a small WebSocket server in this file, speaking the protocol through
:class:`GatewayProtocol`: after TranscriptionStarted it sends sentences with many partial results
each, as fast as the socket takes them, and completes the task on StopTranscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from asr_resilience.clients import SentenceEvent, Transcriber
from asr_resilience.protocol import Audio, GatewayProtocol
from asr_resilience.protocol._messages import STOP

from .helpers import until

SENTENCES = 300
PARTIALS = 100  # per sentence: 30 000 partial results in all
PAD = "字" * 700  # about 2 KB of JSON per partial: 60 MB in all, far more than socket buffers
LIMIT = 50


class Flood:
    """A gateway that sends SENTENCES sentences of PARTIALS partials each, then waits for stop."""

    def __init__(self) -> None:
        self.pad = PAD
        self.sent = 0
        self.flooded = asyncio.Event()
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        gateway = GatewayProtocol()
        gateway.receive(await ws.recv())
        await ws.send(gateway.started())
        for index in range(1, SENTENCES + 1):
            begin = index * 1000
            await self._send(ws, gateway.sentence_begin(index, begin))
            for p in range(PARTIALS):
                text = f"s{index} p{p} {self.pad}"
                payload = {"index": index, "time": begin + p, "result": text}
                await self._send(ws, gateway.result_changed(payload))
            end = {"index": index, "time": begin + 500, "begin_time": begin, "result": f"s{index}"}
            await self._send(ws, gateway.sentence_end(end))
        self.flooded.set()
        async for frame in ws:
            directive = gateway.receive(frame)
            if not isinstance(directive, Audio) and directive.name == STOP[gateway.namespace]:
                await ws.send(gateway.completed())
                return

    async def _send(self, ws: ServerConnection, frame: str) -> None:
        await ws.send(frame)
        self.sent += 1


@pytest.fixture
async def flood() -> AsyncIterator[Flood]:
    """A flooding gateway on loopback."""
    gateway = Flood()
    # No permessage-deflate: the padding must cost its size on the wire, as real text would.
    async with serve(gateway.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        gateway.url = f"ws://127.0.0.1:{port}/ws/v1"
        yield gateway


def transcriber(flood: Flood) -> Transcriber:
    """A Transcriber on the flooding gateway with a small inbox."""
    return Transcriber(
        flood.url,
        "appkey-flood",
        "token-flood",
        params={"enable_intermediate_result": True},
        max_queued_events=LIMIT,
        resume=False,
    )


async def test_unread_events_stay_bounded_and_the_gateway_is_held_back(flood: Flood) -> None:
    """Nobody reading: at most LIMIT events wait, partials coalesce, the gateway cannot send on."""
    async with transcriber(flood) as t:
        await until(lambda: t.stats.coalesced > 0 and len(t._events) == LIMIT, "a full inbox")
        # The stream stopped reading: the gateway is blocked on its socket, far from done.
        assert not flood.flooded.is_set()
        assert flood.sent < SENTENCES * PARTIALS // 2
        assert t.stats.peak_queued <= LIMIT
        events: list[SentenceEvent] = []
        reader = asyncio.ensure_future(_collect(t, events))
        await flood.flooded.wait()
        await t.finish()
        await reader
    ends = [e for e in events if e.kind == "end"]
    assert [e.text for e in ends] == [f"s{i}" for i in range(1, SENTENCES + 1)]
    assert [e.index for e in events if e.kind == "begin"] == list(range(1, SENTENCES + 1))
    assert t.stats.peak_queued <= LIMIT + 1  # the end-of-stream marker may join a full inbox


async def test_a_reader_that_keeps_up_sees_every_partial(flood: Flood) -> None:
    """Coalescing only happens behind a slow reader; nothing but partials is ever coalesced."""
    flood.pad = ""
    events: list[SentenceEvent] = []
    async with Transcriber(
        flood.url,
        "appkey-flood",
        "token-flood",
        params={"enable_intermediate_result": True},
        resume=False,
    ) as t:
        reader = asyncio.ensure_future(_collect(t, events))
        await flood.flooded.wait()
        await t.finish()
        await reader
    partials = [e for e in events if e.kind == "partial"]
    assert len(partials) + t.stats.coalesced == SENTENCES * PARTIALS
    assert len([e for e in events if e.kind == "end"]) == SENTENCES


async def _collect(t: Transcriber, into: list[SentenceEvent]) -> None:
    async for event in t:
        if isinstance(event, SentenceEvent):
            into.append(event)

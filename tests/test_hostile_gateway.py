"""A hostile WebSocket gateway: a small server that misbehaves in many ways, each case with the
typed outcome the client must end with and a time bound (the policy's deadline plus noise).

Outcomes: a gateway that breaks the NLS protocol ends the call at once with
``RemoteProtocolError`` (one attempt, never retried: a retry cannot fix a peer that does not
speak the protocol); one that fails below it (closes, resets, HTTP errors, frames over the size
limit) is a transport or HTTP failure the policy retries until its typed error; one that goes
silent or drips is cut by the deadline (``DeadlineExceededError``); a redirect is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

import asr_resilience as ar
from asr_resilience.clients import Recognition, Recognizer, RedirectRefusedError, Transcriber
from asr_resilience.protocol import RemoteProtocolError
from asr_resilience.simulator import Simulator

from .audio_fixtures import speech_like
from .helpers import write_policy

DEADLINE = 1.0
NOISE = 1.0
"""Scheduling noise allowed past the deadline on a loaded machine."""
SPEECH = speech_like([(300, 440)], gap_ms=100)
RECOGNIZER = "SpeechRecognizer"

Handler = Callable[[ServerConnection], Awaitable[None]]


def event(
    name: str,
    task_id: str,
    *,
    status: Any = 20000000,
    payload: dict[str, Any] | None = None,
    namespace: str = RECOGNIZER,
    **header: Any,
) -> str:
    head: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "status": status,
        "status_text": "Gateway:SUCCESS:Success.",
        "task_id": task_id,
        "message_id": uuid.uuid4().hex,
    }
    head.update(header)
    if status is None:
        del head["status"]
    return json.dumps({"header": head, "payload": payload or {}})


async def start(ws: ServerConnection) -> str:
    """Read the start directive; its task id."""
    directive = json.loads(await ws.recv())
    return str(directive["header"]["task_id"])


async def started(ws: ServerConnection) -> str:
    task_id = await start(ws)
    await ws.send(event("RecognitionStarted", task_id))
    return task_id


async def until_stop(ws: ServerConnection) -> None:
    """Swallow audio until StopRecognition."""
    while True:
        frame = await ws.recv()
        if isinstance(frame, str) and "StopRecognition" in frame:
            return


def after_start(frame: Callable[[str], str | bytes]) -> Handler:
    """Answer the start directive with ``frame(task_id)``, then wait."""

    async def handler(ws: ServerConnection) -> None:
        task_id = await start(ws)
        await ws.send(frame(task_id))
        await ws.wait_closed()

    return handler


def after_audio(*frames: Callable[[str], str | bytes]) -> Handler:
    """Start the task, read the audio, then send ``frames``."""

    async def handler(ws: ServerConnection) -> None:
        task_id = await started(ws)
        await until_stop(ws)
        for frame in frames:
            await ws.send(frame(task_id))
        await ws.wait_closed()

    return handler


def close_with(code: int, *, when: str = "start") -> Handler:
    async def handler(ws: ServerConnection) -> None:
        if when == "start":
            await start(ws)
        else:
            await started(ws)
            await ws.recv()
        await ws.close(code, "hostile")

    return handler


async def reset(ws: ServerConnection) -> None:
    await started(ws)
    ws.transport.abort()


async def silent(ws: ServerConnection) -> None:
    await start(ws)
    await ws.wait_closed()  # not a word until the client goes away


async def trickle(ws: ServerConnection) -> None:
    """Keep the task alive with a partial result every 50 ms, never finishing."""
    task_id = await started(ws)
    while True:
        await ws.send(event("RecognitionResultChanged", task_id, payload={"result": "…"}))
        await asyncio.sleep(0.05)


async def flood(ws: ServerConnection) -> None:
    """3 000 partial results, then the result."""
    task_id = await started(ws)
    await until_stop(ws)
    partial = event("RecognitionResultChanged", task_id, payload={"result": "x"})
    for _ in range(3_000):
        await ws.send(partial)
    await ws.send(event("RecognitionCompleted", task_id, payload={"result": "ok", "duration": 1}))
    await ws.wait_closed()


def http_answer(status: int, headers: dict[str, str] | None = None) -> Any:
    def process_request(connection: ServerConnection, request: Request) -> Response:
        return Response(status, "Hostile", Headers(headers or {}), b"")

    return process_request


def completed(task_id: str) -> str:
    return event("RecognitionCompleted", task_id, payload={"result": "ok", "duration": 300})


@dataclass(frozen=True)
class Case:
    """One misbehaviour and what the call must end with."""

    handler: Handler | None = None
    outcome: type[BaseException] | tuple[type[BaseException], ...] | type[Recognition] = (
        RemoteProtocolError
    )
    attempts: int | None = 1
    """Connections the client makes (None: not checked, e.g. retried until the deadline)."""
    process_request: Any = None
    raw: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None
    """A plain TCP server instead of a WebSocket one (misbehaving before the handshake)."""


RETRIED = (ar.RetryExhaustedError, ar.DeadlineExceededError)


async def raw_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()  # not a byte back, until the client goes away


async def raw_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n":
        if reader.at_eof():
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


async def raw_not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()
    writer.close()


CASES: dict[str, Case] = {
    # -- frames that are not NLS events: a remote protocol error, at once ---------------------
    "invalid JSON": Case(after_start(lambda t: "{not json")),
    "a JSON array": Case(after_start(lambda t: "[1, 2, 3]")),
    "no header": Case(after_start(lambda t: json.dumps({"payload": {}}))),
    "status as a string": Case(after_start(lambda t: event("RecognitionStarted", t, status="x"))),
    "name as a number": Case(
        after_start(lambda t: event("RecognitionStarted", t).replace('"RecognitionStarted"', "5"))
    ),
    "payload as a list": Case(
        after_start(
            lambda t: json.dumps({"header": json.loads(event("X", t))["header"], "payload": [1]})
        )
    ),
    "unknown event": Case(after_start(lambda t: event("RecognitionSomething", t))),
    "another service's event": Case(
        after_start(lambda t: event("TranscriptionStarted", t, namespace="SpeechTranscriber"))
    ),
    "Started of another task": Case(after_start(lambda t: event("RecognitionStarted", "f" * 32))),
    "TaskFailed of another task": Case(
        after_start(lambda t: event("TaskFailed", "f" * 32, status=40000005))
    ),
    "TaskFailed without status": Case(after_start(lambda t: event("TaskFailed", t, status=None))),
    "TaskFailed with the success code": Case(after_start(lambda t: event("TaskFailed", t))),
    "binary frame for Started": Case(after_start(lambda t: b"\x00\x01binary")),
    "Completed before Started": Case(after_start(completed)),
    "failing status on Started": Case(
        after_start(lambda t: event("RecognitionStarted", t, status=50000000))
    ),
    "negative duration": Case(
        after_audio(
            lambda t: event("RecognitionCompleted", t, payload={"result": "x", "duration": -5})
        )
    ),
    "result of the wrong type": Case(
        after_audio(lambda t: event("RecognitionCompleted", t, payload={"result": 42}))
    ),
    # -- below the protocol: retried by the policy until its typed error ----------------------
    "frame over 1 MiB": Case(after_start(lambda t: "x" * (2 * 1024 * 1024)), RETRIED, None),
    "close 1011 at start": Case(close_with(1011), RETRIED, None),
    "close 1000 mid-task": Case(close_with(1000, when="audio"), RETRIED, None),
    "close 4999 mid-task": Case(close_with(4999, when="audio"), RETRIED, None),
    "reset mid-task": Case(reset, RETRIED, None),
    "HTTP 500 at the handshake": Case(None, RETRIED, None, http_answer(500)),
    "HTTP 503 at the handshake": Case(None, RETRIED, None, http_answer(503)),
    "not HTTP at all": Case(None, RETRIED, None, raw=raw_not_http),
    # -- silence and drip: the deadline ends the call -------------------------------------------
    "silence after the start": Case(silent, ar.DeadlineExceededError, None),
    "silence during the handshake": Case(None, ar.DeadlineExceededError, None, raw=raw_silence),
    "handshake dripped a byte at a time": Case(None, ar.DeadlineExceededError, None, raw=raw_drip),
    "partial results forever": Case(trickle, ar.DeadlineExceededError, None),
    # -- refusals -------------------------------------------------------------------------------
    "redirect 302": Case(
        None, RedirectRefusedError, 1, http_answer(302, {"Location": "ws://127.0.0.1:9/x"})
    ),
    "redirect 301 same origin": Case(
        None, RedirectRefusedError, 1, http_answer(301, {"Location": "/v2"})
    ),
    "HTTP 400 at the handshake": Case(None, ar.FixClientError, 1, http_answer(400)),
    # -- odd but harmless: the result is what the first Completed said ------------------------
    "duplicate Completed": Case(after_audio(completed, completed), Recognition),
    "a flood of partial results": Case(flood, Recognition),
}


@contextlib.asynccontextmanager
async def hostile(case: Case) -> AsyncIterator[tuple[str, list[int]]]:
    """The case's server on a free loopback port: its URL and a connection counter."""
    connections = [0]
    if case.raw is not None:
        raw = case.raw

        tasks: set[asyncio.Task[None]] = set()

        async def counted_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections[0] += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                with contextlib.suppress(Exception):
                    await raw(reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        server = await asyncio.start_server(counted_raw, "127.0.0.1", 0)
        try:
            yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/v1", connections
        finally:
            server.close()
            for task in tasks:  # handlers still waiting on a client that left
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
        return

    handler = case.handler

    async def counted(ws: ServerConnection) -> None:
        connections[0] += 1
        if handler is not None:
            with contextlib.suppress(Exception):
                await handler(ws)

    def counting_request(connection: ServerConnection, request: Request) -> Response | None:
        if case.process_request is None:
            return None
        connections[0] += 1
        answer: Response = case.process_request(connection, request)
        return answer

    async with serve(
        counted,
        "127.0.0.1",
        0,
        process_request=counting_request,
        max_size=None,
        close_timeout=0.5,
    ) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/v1", connections


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> ar.Policy:
    """A short deadline and quick backoff, so the whole corpus runs in seconds."""
    path: Path = tmp_path_factory.mktemp("hostile")
    return write_policy(
        path,
        f"defaults:\n  max_attempts: 3\n  deadline: {DEADLINE}s\n"
        "  backoff: {initial: 10ms, max: 50ms, multiplier: 2, jitter: full}\n",
    )


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_gateway(name: str, policy: ar.Policy) -> None:
    """Each misbehaviour ends the call with its expected typed outcome within the deadline."""
    case = CASES[name]
    async with hostile(case) as (url, connections):
        rec = Recognizer(
            url,
            "appkey",
            f"token-{uuid.uuid4().hex}",
            policy,
            scope=f"hostile-{uuid.uuid4().hex}",
            open_timeout=5,
            start_timeout=5,
            stop_timeout=5,
        )
        began = time.monotonic()
        outcome: BaseException | Recognition
        try:
            outcome = await rec.recognize(SPEECH)
        except Exception as exc:
            outcome = exc
        took = time.monotonic() - began
    assert isinstance(outcome, case.outcome), f"{name}: {outcome!r}"
    assert took < DEADLINE + NOISE, f"{name}: {took:.2f} s"
    if case.attempts is not None:
        assert connections[0] == case.attempts, f"{name}: {connections[0]} connections"


def test_the_corpus_is_large_enough() -> None:
    """The corpus holds at least 25 misbehaviours."""
    assert len(CASES) >= 25


async def test_transcriber_resumes_after_1011_from_a_gateway_that_stops_reading(
    tmp_path: Path,
) -> None:
    """A gateway that closes with 1011 mid-stream and then stops reading (it never finishes the
    closing handshake): the stream resumes on a new task instead of ending in a bare timeout."""
    async with Simulator() as sim:
        sim_url = sim.gateway_url
        token = sim.token()
        legs = [0]

        async def proxy(ws: ServerConnection) -> None:
            """First leg: start it on the simulator, then close with 1011 and go deaf."""
            legs[0] += 1
            from websockets.asyncio.client import connect

            async with connect(sim_url, additional_headers={"X-NLS-Token": token}) as upstream:
                if legs[0] == 1:
                    await upstream.send(await ws.recv())
                    await ws.send(await upstream.recv())  # TranscriptionStarted
                    await ws.recv()  # some audio
                    # Send the close frame, then stop reading: the client's close frame and
                    # audio are never read, the closing handshake never completes.
                    ws.transport.pause_reading()
                    await ws.close(1011, "internal error")
                    return

                async def up() -> None:
                    async for frame in ws:
                        await upstream.send(frame)

                async def down() -> None:
                    async for frame in upstream:
                        await ws.send(frame)

                await asyncio.gather(up(), down(), return_exceptions=True)

        async with serve(proxy, "127.0.0.1", 0, close_timeout=1) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/v1"
            policy = write_policy(tmp_path, "defaults:\n  deadline: 10s\n")
            audio = speech_like([(600, 440)], gap_ms=800)
            began = time.monotonic()
            async with Transcriber(url, sim.appkey, token, policy, stop_timeout=5) as t:
                await t.send_all(
                    [audio[i : i + 3200] for i in range(0, len(audio), 3200)], realtime=False
                )
                await t.finish()
                events = [e async for e in t]
            took = time.monotonic() - began
    assert legs[0] == 2
    assert t.stats.reconnects == 1
    assert any(getattr(e, "kind", "") == "end" for e in events)
    assert took < 5

"""Injected faults at every phase of a WebSocket session, for both services, and their selection."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidStatus

from asr_resilience._errors import RemoteProtocolError
from asr_resilience.protocol import (
    RECOGNIZER,
    TRANSCRIBER,
    Completed,
    Failed,
    Started,
    parse_event,
)
from asr_resilience.simulator import Fault, Scenario, Simulator
from asr_resilience.simulator._scenario import FrameKind, Phase

from .audio_fixtures import speech_like
from .simulator_client import (
    TIMEOUT,
    assert_seed,
    open_ws,
    quick_config,
    recv,
    run_task,
    task,
)

SPEECH = speech_like([(800, 440), (600, 660)])
SERVICES = pytest.mark.parametrize("namespace", [RECOGNIZER, TRANSCRIBER])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config=quick_config()) as simulator:
        yield simulator


async def outcome(sim: Simulator, namespace: str = RECOGNIZER) -> str | int:
    """How one whole task ends: "completed", the TaskFailed code, "dropped", or the HTTP status."""
    try:
        events = await run_task(sim, namespace, SPEECH)
    except InvalidStatus as exc:
        return exc.response.status_code
    except ConnectionClosedError:
        return "dropped"
    last = events[-1]
    return last.status if isinstance(last, Failed) else "completed"


# -- the code action, at each phase ------------------------------------------------------------


@SERVICES
async def test_code_at_start(sim: Simulator, namespace: str) -> None:
    """A code fault at the start answers the start directive with TaskFailed (seed text)."""
    sim.set_scenario([Fault("code", "start", code=50000000)])
    async with task(sim, namespace) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert (failed.status, failed.status_text) == (50000000, "GRPC_ERROR:Grpc error!")
    assert_seed(failed.status, failed.status_text)
    assert sim.stats.faults == {"code": 1}
    assert sim.stats.failed == {50000000: 1}


@SERVICES
async def test_code_during_audio(sim: Simulator, namespace: str) -> None:
    """A code fault in the audio phase fires once after_ms of audio has arrived."""
    sim.set_scenario([Fault("code", "audio", code=52010001, after_ms=1000)])
    async with task(sim, namespace) as t:
        assert isinstance(await t.start(), Started)
        await t.send_audio(SPEECH)
        events = await t.until_end()
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.status == 52010001
    assert_seed(failed.status, failed.status_text)


@SERVICES
async def test_code_at_stop(sim: Simulator, namespace: str) -> None:
    """A code fault at the stop replaces the final event."""
    sim.set_scenario([Fault("code", "stop", code=50000001, text="GRPC_ERROR:Grpc error!")])
    events = await run_task(sim, namespace, SPEECH)
    assert isinstance(events[0], Started)
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.status == 50000001


async def test_code_default_text_fills_in_the_token(sim: Simulator) -> None:
    """An injected 40000001 names the session's token, as the real text does."""
    token = sim.token()
    sim.set_scenario([Fault("code", "start", code=40000001)])
    async with task(sim, token=token) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert token in failed.status_text
    assert_seed(failed.status, failed.status_text)


# -- close and reset ---------------------------------------------------------------------------


@SERVICES
@pytest.mark.parametrize("phase", ["start", "audio", "stop"])
async def test_close_without_close_frame(sim: Simulator, namespace: str, phase: Phase) -> None:
    """close: the TCP connection ends without a WebSocket close frame."""
    sim.set_scenario([Fault("close", phase)])
    with pytest.raises(ConnectionClosedError) as info:
        await run_task(sim, namespace, SPEECH)
    assert info.value.rcvd is None
    assert sim.stats.faults == {"close": 1}


@SERVICES
@pytest.mark.parametrize("phase", ["start", "audio", "stop"])
async def test_reset_is_a_tcp_rst(sim: Simulator, namespace: str, phase: Phase) -> None:
    """reset: the client sees "connection reset by peer"."""
    sim.set_scenario([Fault("reset", phase)])
    with pytest.raises(ConnectionClosedError) as info:
        await run_task(sim, namespace, SPEECH)
    assert isinstance(info.value.__cause__, ConnectionResetError)


def _raw_handshake(url: str, token: str) -> bytes:
    """Send a WebSocket upgrade request over a plain socket; what comes back (blocking)."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        request = (
            "GET /ws/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n"
            f"X-NLS-Token: {token}\r\n\r\n"
        )
        sock.sendall(request.encode())
        return sock.recv(4096)


async def test_reset_at_handshake(sim: Simulator) -> None:
    """reset at the handshake: the upgrade request is answered by a RST."""
    sim.set_scenario([Fault("reset", "handshake")])
    with pytest.raises(ConnectionResetError):
        await asyncio.to_thread(_raw_handshake, sim.gateway_url, sim.token())


async def test_close_at_handshake(sim: Simulator) -> None:
    """close at the handshake: the connection ends with no HTTP response."""
    sim.set_scenario([Fault("close", "handshake")])
    assert await asyncio.to_thread(_raw_handshake, sim.gateway_url, sim.token()) == b""


async def test_handshake_status(sim: Simulator) -> None:
    """A code fault at the handshake answers that HTTP status (503 by default)."""
    sim.set_scenario(
        [Fault("code", "handshake", sessions=(1,)), Fault("code", "handshake", code=429)]
    )
    assert await outcome(sim) == 503
    assert await outcome(sim) == 429
    assert sim.stats.handshakes_rejected == 2


async def test_garbage_at_handshake(sim: Simulator) -> None:
    """garbage at the handshake: an HTTP response the client cannot parse."""
    sim.set_scenario([Fault("garbage", "handshake")])
    with pytest.raises(InvalidMessage):
        await open_ws(sim)


# -- stall, slow, garbage, revoke_token --------------------------------------------------------


@SERVICES
@pytest.mark.parametrize("phase", ["start", "audio", "stop"])
async def test_stall_forever(sim: Simulator, namespace: str, phase: Phase) -> None:
    """stall without a delay: no answer at all, until the client gives up."""
    sim.set_scenario([Fault("stall", phase)])
    async with task(sim, namespace) as t:
        await t.ws.send(t.client.start())
        if phase != "start":
            assert isinstance(await t.event(), Started)
            await t.send_audio(SPEECH)
            if phase == "stop":
                await t.ws.send(t.client.stop())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_final(t.ws), 0.3)
        # Give up without a closing handshake: a stalled gateway that stopped reading would
        # not see our close frame until the close timeout.
        t.ws.transport.abort()
    assert sim.stats.faults == {"stall": 1}


async def _final(ws: ClientConnection) -> None:
    """Read until a Completed/Failed frame (which a stalled gateway never sends)."""
    while True:
        event = parse_event(await recv(ws))
        if event.name.endswith("Completed") or event.name == "TaskFailed":
            return


async def test_stall_with_delay_then_answers(sim: Simulator) -> None:
    """stall with a delay: the answer comes late, then the task goes on."""
    sim.set_scenario([Fault("stall", "start", delay=0.3)])
    began = time.monotonic()
    events = await run_task(sim, RECOGNIZER, SPEECH)
    assert time.monotonic() - began >= 0.3
    assert isinstance(events[-1], Completed)


async def test_stall_at_handshake(sim: Simulator) -> None:
    """stall at the handshake: no HTTP response within the client's open timeout."""
    sim.set_scenario([Fault("stall", "handshake")])
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(open_ws(sim), 0.3)


@SERVICES
async def test_slow_delays_every_event(sim: Simulator, namespace: str) -> None:
    """slow: every event from that phase on comes ``delay`` seconds late."""
    sim.set_scenario([Fault("slow", "start", delay=0.1)])
    began = time.monotonic()
    events = await run_task(sim, namespace, SPEECH)
    assert time.monotonic() - began >= 0.1 * len(events)
    assert isinstance(events[-1], Completed)


async def test_trickle_drips_a_frame_a_byte_at_a_time(sim: Simulator) -> None:
    """trickle: the next frame arrives in many one-byte reads, and intact (a slowloris)."""
    sim.set_scenario([Fault("trickle", "start", delay=0.003)])
    async with task(sim, RECOGNIZER) as t:
        reads: list[int] = []
        received = t.ws.data_received

        def counting(data: bytes) -> None:
            reads.append(len(data))
            received(data)

        t.ws.data_received = counting  # type: ignore[method-assign]
        assert isinstance(await t.start(), Started)
        # A few reads may coalesce on a loaded machine; a whole frame in one read would not.
        assert len(reads) > 20
        assert max(reads) < sum(reads) // 4
        t.ws.transport.abort()  # the rest would trickle too
    assert sim.stats.faults == {"trickle": 1}


@SERVICES
@pytest.mark.parametrize("frame", ["text", "binary"])
async def test_garbage_frame_then_the_task_goes_on(
    sim: Simulator, namespace: str, frame: FrameKind
) -> None:
    """garbage: a frame that is no NLS event (non-JSON text, or binary) before the real answer."""
    sim.set_scenario([Fault("garbage", "start", frame=frame)])
    async with task(sim, namespace) as t:
        await t.ws.send(t.client.start())
        junk = await recv(t.ws)
        assert isinstance(junk, bytes) == (frame == "binary")
        with pytest.raises(RemoteProtocolError):
            parse_event(junk)
        assert parse_event(await recv(t.ws)).name.endswith("Started")


async def test_revoke_token_fails_later_tasks(sim: Simulator) -> None:
    """revoke_token: this task completes; the next task with the same token gets 40000001."""
    token = sim.token()
    sim.set_scenario([Fault("revoke_token", "start", sessions=(1,))])
    first = await run_task(sim, RECOGNIZER, SPEECH, token=token)
    assert isinstance(first[-1], Completed)
    async with task(sim, token=token) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert failed.status_text == f"Meta:ACCESS_DENIED:The token '{token}' is invalid!"


# -- selection -------------------------------------------------------------------------------


async def test_select_by_session_numbers(sim: Simulator) -> None:
    """sessions: only the listed session numbers (from 1) are hit."""
    sim.set_scenario([Fault("code", "start", code=50000000, sessions=(2, 3))])
    assert [await outcome(sim) for _ in range(4)] == ["completed", 50000000, 50000000, "completed"]


async def test_select_every_nth(sim: Simulator) -> None:
    """every: every Nth session."""
    sim.set_scenario([Fault("code", "start", code=50000000, every=3)])
    results = [await outcome(sim) for _ in range(6)]
    assert results == ["completed", "completed", 50000000] * 2


async def test_select_burst(sim: Simulator) -> None:
    """burst: ``length`` consecutive sessions from ``start``."""
    sim.set_scenario(Scenario.from_mapping({"faults": [
        {"action": "code", "phase": "start", "code": 40000005, "burst": {"start": 2, "length": 2}}
    ]}))  # fmt: skip
    results = [await outcome(sim) for _ in range(5)]
    assert results == ["completed", 40000005, 40000005, "completed", "completed"]


async def test_select_times(sim: Simulator) -> None:
    """times: a fault fires at most that often."""
    sim.set_scenario([Fault("code", "start", code=50000000, times=2)])
    assert [await outcome(sim) for _ in range(3)] == [50000000, 50000000, "completed"]
    assert sim.scenario.fired == (2,)


async def test_select_by_service(sim: Simulator) -> None:
    """service: a transcriber-only fault spares one-sentence tasks."""
    sim.set_scenario([Fault("code", "start", code=50000000, service=("SpeechTranscriber",))])
    assert await outcome(sim, RECOGNIZER) == "completed"
    assert await outcome(sim, TRANSCRIBER) == 50000000


async def test_probability_is_reproducible_with_the_seed() -> None:
    """probability: the same seed hits the same sessions in two simulators; another seed not."""

    async def pattern(seed: int) -> list[str | int]:
        faults = [Fault("code", "start", code=50000000, probability=0.5)]
        async with Simulator(scenario=Scenario(faults, seed=seed)) as simulator:
            return [await outcome(simulator) for _ in range(12)]

    first, again, other = await pattern(7), await pattern(7), await pattern(8)
    assert first == again
    assert first != other
    assert 0 < first.count(50000000) < 12


async def test_scenario_replaced_while_running(sim: Simulator) -> None:
    """set_scenario takes effect for the next session; None removes every fault."""
    sim.set_scenario([Fault("code", "start", code=50000000)])
    assert await outcome(sim) == 50000000
    sim.set_scenario(None)
    assert await outcome(sim) == "completed"

"""The WebSocket boundary: websockets' errors become what the failure extractor classifies."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import InvalidStatus

import asr_resilience as ar
from asr_resilience._extract import extract_failure
from asr_resilience.clients import connected, open_connection
from asr_resilience.protocol import TRANSCRIBER, ClientProtocol
from asr_resilience.simulator import Fault, Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with default settings."""
    async with Simulator() as simulator:
        yield simulator


async def test_handshake_403_becomes_the_seed_row(sim: Simulator) -> None:
    """A 403 at the handshake is NlsError(403): the seed's row, whose action is refresh-token."""
    with pytest.raises(ar.NlsError) as info:
        await open_connection(sim.gateway_url, "no-such-token")
    assert (info.value.code, info.value.http_status) == (403, 403)
    assert isinstance(info.value.__cause__, InvalidStatus)
    failure = extract_failure(info.value)
    assert failure is not None
    assert ar.load_policy("default").decide(failure).action == "refresh-token"


async def test_other_handshake_statuses_stay_readable(sim: Simulator) -> None:
    """Other HTTP statuses keep websockets' InvalidStatus, which the extractor reads."""
    sim.set_scenario([Fault("code", "handshake", code=503)])
    with pytest.raises(InvalidStatus) as info:
        await open_connection(sim.gateway_url, sim.token())
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.http_status == 503


async def test_a_drop_is_an_abnormal_close(sim: Simulator) -> None:
    """A connection lost while waiting for an event is TransportError('abnormal_close')."""
    sim.set_scenario([Fault("close", "start")])
    async with connected(sim.gateway_url, sim.token()) as connection:
        await connection.send(ClientProtocol(TRANSCRIBER, sim.appkey).start())
        with pytest.raises(ar.TransportError) as info:
            await connection.recv(5.0)
    assert info.value.kind == "abnormal_close"


async def test_recv_timeout_names_what_it_waited_for(sim: Simulator) -> None:
    """recv with a timeout raises TimeoutError naming the awaited event."""
    async with connected(sim.gateway_url, sim.token()) as connection:
        with pytest.raises(TimeoutError, match=r"no TranscriptionStarted within 0\.01 s"):
            await connection.recv(0.01, waiting_for="TranscriptionStarted")


async def test_refused_connection_stays_an_oserror() -> None:
    """Nothing listening: ConnectionRefusedError passes through (the extractor: "refused")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        await open_connection(f"ws://127.0.0.1:{port}/ws/v1", "token")
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.transport == "refused"

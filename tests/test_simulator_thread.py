"""SimulatorThread from synchronous code, and the pytest fixtures users test their code with."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from websockets.sync.client import connect

from asr_resilience.protocol import RECOGNIZER, ClientProtocol, Completed, Failed, Started
from asr_resilience.simulator import Fault, Simulator, SimulatorThread

from .audio_fixtures import frames, speech_like
from .simulator_client import run_task

SPEECH = speech_like([(800, 440)])


def _sync_task(sim: SimulatorThread) -> list[object]:
    """A one-sentence task with the synchronous websockets client."""
    client = ClientProtocol(RECOGNIZER, sim.appkey)
    headers = {"X-NLS-Token": sim.token()}
    with connect(sim.gateway_url, additional_headers=headers, proxy=None, open_timeout=5) as ws:
        ws.send(client.start())
        events: list[object] = [client.receive(ws.recv(timeout=5))]
        if isinstance(events[0], Failed):
            return events
        for chunk in frames(SPEECH):
            ws.send(client.audio(chunk))
        ws.send(client.stop())
        events.append(client.receive(ws.recv(timeout=5)))
    return events


def test_thread_serves_synchronous_clients() -> None:
    """A SimulatorThread started from sync code serves a whole task and stops cleanly."""
    with SimulatorThread() as sim:
        events = _sync_task(sim)
        assert isinstance(events[0], Started)
        assert isinstance(events[-1], Completed)
        assert sim.stats.sessions_completed == 1
    sim.stop()  # idempotent


def test_thread_info_and_urls() -> None:
    """info() names the three endpoints, the default account's credentials and a valid token."""
    with SimulatorThread() as sim:
        info = sim.info()
        assert info["gateway"] == sim.gateway_url
        assert info["gateway"].startswith("ws://127.0.0.1:")
        assert info["gateway"].endswith("/ws/v1")
        assert info["rest"] == sim.rest_url
        assert info["rest"].endswith("/stream/v1/asr")
        assert info["meta"] == sim.meta_url
        assert info["appkey"] == sim.appkey == "default-appkey"
        assert sim.store.known_token(info["token"])
        response = httpx.get(sim.meta_url, timeout=5, trust_env=False)
        assert "application/json" in response.headers["content-type"]


def test_thread_start_failure_is_raised() -> None:
    """A port already taken makes start() raise in the caller's thread."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):  # noqa: PT011 - the OS error depends on the platform
            SimulatorThread(port=port).start()


def test_nls_gateway_fixture_from_sync_test(nls_gateway: SimulatorThread) -> None:
    """The nls_gateway fixture: faults and config set from the test, seen by the next session."""
    nls_gateway.set_scenario([Fault("code", "start", code=50000000, times=1)])
    nls_gateway.configure(transcripts=["hello"])
    first = _sync_task(nls_gateway)
    assert isinstance(first[0], Failed)
    assert first[0].status == 50000000
    second = _sync_task(nls_gateway)
    done = second[-1]
    assert isinstance(done, Completed)
    assert done.text == "hello"


def test_nls_gateway_fixture_accounts(nls_gateway: SimulatorThread) -> None:
    """add_account gives the fixture's simulator another account with its own appkey."""
    account = nls_gateway.add_account(name="team", appkeys=("team-key",), quota=1)
    assert nls_gateway.store.appkey_owner("team-key") is account
    assert nls_gateway.store.known_token(nls_gateway.token("team"))


async def test_nls_gateway_fixture_from_async_test(nls_gateway: SimulatorThread) -> None:
    """The thread's loop is not the test's: async clients in the test loop talk to it."""
    results = await asyncio.gather(*(run_task(nls_gateway, RECOGNIZER, SPEECH) for _ in range(3)))
    assert all(isinstance(events[-1], Completed) for events in results)
    assert nls_gateway.stats.max_concurrent["default"] >= 1


async def test_nls_simulator_fixture(nls_simulator: Simulator) -> None:
    """nls_simulator runs in the test's own loop."""
    events = await run_task(nls_simulator, RECOGNIZER, SPEECH)
    assert isinstance(events[-1], Completed)
    assert json.loads(json.dumps(nls_simulator.stats.snapshot()))["sessions_completed"] == 1


def test_thread_restarts() -> None:
    """A stopped SimulatorThread starts again, on a new loop, and serves."""
    sim = SimulatorThread()
    sim.set_scenario([Fault("stall", "start", delay=0.05, times=2)])
    for _ in range(2):
        with sim:
            assert isinstance(_sync_task(sim)[-1], Completed)
    assert sim.scenario.fired == (2,)

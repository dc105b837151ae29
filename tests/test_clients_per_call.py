"""Clients' per-call ``deadline=`` / ``max_attempts=`` and their lifecycle, over loopback
against the simulator."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import asr_resilience as ar
from asr_resilience.clients import Recognizer, RestRecognizer, Transcriber
from asr_resilience.retry._overrides import ENV_DEADLINE, ENV_MAX_ATTEMPTS
from asr_resilience.simulator import Fault, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait

from .audio_fixtures import speech_like

SPEECH = speech_like([(800, 440)], gap_ms=300)
TEXT = "北京欢迎你"
_scopes = itertools.count()


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Simulator]:
    """A simulator whose one sentence always reads TEXT; no override knob in the environment."""
    monkeypatch.delenv(ENV_DEADLINE, raising=False)
    monkeypatch.delenv(ENV_MAX_ATTEMPTS, raising=False)
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


def options(sim: Simulator, **more: Any) -> dict[str, Any]:
    """A valid static token and a scope of the test's own."""
    return {"tokens": sim.token(), "scope": f"per-call-{next(_scopes)}", **more}


async def test_recognize_deadline_bounds_the_whole_call(sim: Simulator) -> None:
    """recognize(deadline=0.3) ends a stalled start well before its 10 s start timeout."""
    sim.set_scenario([Fault("stall", "start")])
    rec = Recognizer(sim.gateway_url, sim.appkey, **options(sim))
    started = time.monotonic()
    with pytest.raises(ar.DeadlineExceededError):
        await rec.recognize(SPEECH, deadline=0.3)
    assert time.monotonic() - started < 5.0
    assert sim.stats.connections == 1


async def test_recognize_max_attempts_caps_the_throttle_rule(sim: Simulator) -> None:
    """recognize(max_attempts=2) gives up after two connections where the rule allows six."""
    sim.set_scenario([Fault("code", "start", code=40000005)])
    rec = Recognizer(sim.gateway_url, sim.appkey, **options(sim))
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
        await rec.recognize(SPEECH, max_attempts=2)
    assert sim.stats.connections == 2
    assert len(info.value.attempts) == 2


async def test_a_calls_max_attempts_beats_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ASR_RESILIENCE_MAX_ATTEMPTS=1 a call still retries when it asks for 3 attempts."""
    monkeypatch.setenv(ENV_MAX_ATTEMPTS, "1")
    sim.set_scenario([Fault("code", "start", code=50000000, sessions=(1, 2))])
    rec = Recognizer(sim.gateway_url, sim.appkey, **options(sim))
    with no_wait():
        result = await rec.recognize(SPEECH, max_attempts=3)
    assert (result.text, result.attempts) == (TEXT, 3)
    sim.set_scenario([Fault("code", "start", code=50000000, sessions=(4,))])
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        await rec.recognize(SPEECH)  # the environment's one attempt
    assert sim.stats.connections == 4


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"deadline": 0}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
    ],
)
async def test_bad_per_call_values_are_refused_before_connecting(
    sim: Simulator, arguments: dict[str, Any], name: str
) -> None:
    """A bad deadline or max_attempts is a ValueError naming it; nothing is sent."""
    rec = Recognizer(sim.gateway_url, sim.appkey, **options(sim))
    rest = RestRecognizer(sim.rest_url, sim.appkey, **options(sim))
    with pytest.raises(ValueError, match=name):
        await rec.recognize(SPEECH, **arguments)
    with pytest.raises(ValueError, match=name):
        await rest.recognize(SPEECH, **arguments)
    assert sim.stats.connections == 0
    assert sim.stats.rest_requests == 0


async def test_rest_max_attempts_and_deadline(sim: Simulator) -> None:
    """RestRecognizer.recognize takes max_attempts (one request) and a deadline."""
    sim.set_scenario([Fault("code", "start", code=50000000, service=("rest",))])
    rest = RestRecognizer(sim.rest_url, sim.appkey, **options(sim))
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        await rest.recognize(SPEECH, max_attempts=1)
    assert sim.stats.rest_requests == 1
    sim.set_scenario([Fault("stall", "start", service=("rest",))])
    started = time.monotonic()
    with pytest.raises(ar.DeadlineExceededError):
        await rest.recognize(SPEECH, deadline=0.3)
    assert time.monotonic() - started < 5.0


async def test_transcriber_limits_its_opening(sim: Simulator) -> None:
    """Transcriber(max_attempts=1) opens once; a failing start is not retried."""
    sim.set_scenario([Fault("code", "start", code=50000000)])
    stream = Transcriber(sim.gateway_url, sim.appkey, **options(sim, max_attempts=1))
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        async with stream:
            pass
    assert sim.stats.connections == 1


async def test_transcriber_deadline_bounds_its_opening(sim: Simulator) -> None:
    """Transcriber(deadline=0.3) gives up on a stalled start well before its start timeout."""
    sim.set_scenario([Fault("stall", "start")])
    stream = Transcriber(sim.gateway_url, sim.appkey, **options(sim, deadline=0.3))
    started = time.monotonic()
    with pytest.raises(ar.DeadlineExceededError):
        async with stream:
            pass
    assert time.monotonic() - started < 5.0


def test_transcriber_refuses_a_bad_limit() -> None:
    """A bad constructor limit is a ValueError naming it."""
    with pytest.raises(ValueError, match="max_attempts"):
        Transcriber("ws://127.0.0.1:1", "key", tokens="t", max_attempts=0)


async def test_rest_recognizer_block_shares_one_client(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside ``async with`` every call uses one httpx client, closed at the end."""
    made: list[httpx.AsyncClient] = []

    class Counting(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Counting)
    async with RestRecognizer(sim.rest_url, sim.appkey, **options(sim)) as rest:
        assert (await rest.recognize(SPEECH)).text == TEXT
        assert (await rest.recognize(SPEECH)).text == TEXT
    assert len(made) == 1
    assert made[0].is_closed
    outside = RestRecognizer(sim.rest_url, sim.appkey, **options(sim))
    await outside.recognize(SPEECH)
    await outside.recognize(SPEECH)
    assert len(made) == 3  # one per call outside a block
    await outside.aclose()  # nothing of its own to close

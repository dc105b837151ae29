"""The policy's deadline is a hard bound on a whole call, whatever the gateway or provider does.

Each gateway here would hold a call far longer than the deadline (10 s of ``start_timeout``, a
frame dripped a byte a second, a REST body a byte every 2 s, a provider that never returns), so
a call that ends with ``DeadlineExceededError`` within the deadline plus scheduling noise was cut
by the deadline and by nothing else. After each, the scope's limiter has no permit in flight and
the gateway no session open: nothing leaked on the timeout path.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import asr_resilience as ar
from asr_resilience.clients import Recognizer, RestRecognizer, Transcriber
from asr_resilience.limits import get_scope
from asr_resilience.retry import Attempt
from asr_resilience.simulator import Fault, Simulator, SimulatorThread
from asr_resilience.tokens import Token, TokenManager

from .audio_fixtures import speech_like
from .helpers import write_policy
from .streaming_support import AUDIO, Collector, chunks

DEADLINE = 2.0
NOISE = 1.5
"""Scheduling noise allowed past the deadline on a loaded machine (the faults hold for 10-300 s)."""
SPEECH = speech_like([(800, 440)], gap_ms=300)
LIMITED = "concurrency: {adaptive: true, initial: 2, max: 2}\n"
"""A limiter in the scope, so that a permit leaked on the timeout path would show."""


@pytest.fixture
def policy(tmp_path: Path) -> ar.Policy:
    """The default policy with a 2 s deadline and a local limiter."""
    return write_policy(tmp_path, f"defaults: {{deadline: {DEADLINE:g}s}}\n{LIMITED}")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with the vendor's defaults, in the test's loop."""
    async with Simulator() as simulator:
        yield simulator


class Timed:
    """Measures a block with time.monotonic; ``elapsed`` afterwards."""

    def __enter__(self) -> Timed:
        self.began = time.monotonic()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.began


def assert_bounded(timed: Timed, deadline: float = DEADLINE) -> None:
    """The call ended by its deadline (and not before it had run most of the way there)."""
    assert timed.elapsed <= deadline + NOISE, f"the call took {timed.elapsed:.2f}s"


def assert_no_permit(policy: ar.Policy, scope: str) -> None:
    """The scope's limiter has nothing in flight and nobody queued."""
    limiter = get_scope(scope, policy).limiter
    assert limiter is not None
    stats = limiter.stats()
    assert (limiter.in_flight, stats["in_flight"], stats["waiting"]) == (0, 0, 0), stats


async def gateway_idle(sim: Simulator | SimulatorThread) -> None:
    """Wait (woken by the gateway's own slot changes) until no session holds a slot."""
    await sim.stats.wait_slots(lambda slots: not any(slots.values()), timeout=10.0)


# -- the WebSocket clients -------------------------------------------------------------------


async def test_recognizer_bounded_when_started_never_comes(
    sim: Simulator, policy: ar.Policy
) -> None:
    """No RecognitionStarted (start_timeout 10 s): DeadlineExceededError at the 2 s deadline."""
    sim.set_scenario([Fault("stall", "start")])
    recognizer = Recognizer(sim.gateway_url, sim.appkey, sim.token(), policy)
    with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
        await recognizer.recognize(SPEECH)
    assert_bounded(timed)
    assert sim.stats.faults == {"stall": 1}  # one attempt, cut by the deadline
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


async def test_recognizer_bounded_by_a_slowloris(sim: Simulator, policy: ar.Policy) -> None:
    """RecognitionStarted dripped a byte a second (minutes in all): cut at the deadline."""
    sim.set_scenario([Fault("trickle", "start", delay=1.0)])
    recognizer = Recognizer(sim.gateway_url, sim.appkey, sim.token(), policy)
    with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
        await recognizer.recognize(SPEECH)
    assert_bounded(timed)
    assert sim.stats.faults == {"trickle": 1}
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


async def test_transcriber_opening_bounded_when_started_never_comes(
    sim: Simulator, policy: ar.Policy
) -> None:
    """No TranscriptionStarted (start_timeout 10 s): opening ends at the deadline."""
    sim.set_scenario([Fault("stall", "start", service=("SpeechTranscriber",))])
    stream = Transcriber(sim.gateway_url, sim.appkey, sim.token(), policy)
    with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
        async with stream:
            pytest.fail("the stream opened against a gateway that never started it")
    assert_bounded(timed)
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


async def test_transcriber_resume_bounded_when_started_never_comes(
    sim: Simulator, policy: ar.Policy
) -> None:
    """A leg drops and no new leg ever starts: the stream ends at the episode's deadline."""
    sim.set_scenario(
        [
            Fault("close", "audio", after_ms=500, sessions=(1,)),
            Fault("stall", "start", service=("SpeechTranscriber",), burst=(2, 1000)),
        ]
    )
    stream = Transcriber(sim.gateway_url, sim.appkey, sim.token(), policy, replay_speed=None)
    async with stream:
        events = Collector(stream)

        async def send_and_finish() -> None:
            await stream.send_all(chunks(AUDIO), realtime=False)
            await stream.finish()

        # The drop comes with the first audio: the episode's deadline starts within this block.
        with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
            await send_and_finish()
    assert_bounded(timed)
    await events.done()
    assert isinstance(events.error, ar.DeadlineExceededError)
    assert sim.stats.faults == {"close": 1, "stall": 1}  # one resume, cut by the deadline
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


async def test_retries_and_a_stall_stay_within_the_deadline(sim: Simulator, tmp_path: Path) -> None:
    """A failure, a backoff, then an attempt that never completes: the call still ends in time."""
    deadline = 3.0
    policy = write_policy(tmp_path, f"defaults: {{deadline: {deadline:g}s}}\n{LIMITED}")
    sim.set_scenario(
        [
            Fault("code", "start", code=50000000, sessions=(1,)),
            Fault("stall", "stop"),  # no RecognitionCompleted: stop_timeout is 10 s
        ]
    )
    recognizer = Recognizer(sim.gateway_url, sim.appkey, sim.token(), policy)
    with Timed() as timed, pytest.raises(ar.DeadlineExceededError) as info:
        await recognizer.recognize(SPEECH)
    assert_bounded(timed, deadline)
    assert [record.code for record in info.value.attempts][:1] == [50000000]
    assert sim.stats.faults == {"code": 1, "stall": 1}
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


# -- REST --------------------------------------------------------------------------------------


async def test_rest_bounded_by_a_dripping_body(sim: Simulator, policy: ar.Policy) -> None:
    """A REST answer dripped a byte every 2 s (httpx's per-read timeout never fires): cut."""
    sim.set_scenario([Fault("trickle", "start", delay=2.0, service=("rest",))])
    rest = RestRecognizer(sim.rest_url, sim.appkey, sim.token(), policy, timeout=30.0)
    with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
        await rest.recognize(SPEECH)
    assert_bounded(timed)
    assert sim.stats.faults == {"trickle": 1}
    assert_no_permit(policy, sim.appkey)
    await gateway_idle(sim)


def test_sync_function_hands_the_time_left_to_its_blocking_call(policy: ar.Policy) -> None:
    """A sync @resilient function passing attempt.remaining to httpx ends at the deadline."""
    with SimulatorThread() as sim:
        sim.set_scenario([Fault("stall", "start", service=("rest",))])
        token = sim.token()

        @ar.resilient(policy, scope="sync-rest")
        def recognize(*, attempt: Attempt | None = None) -> Any:
            assert attempt is not None  # @resilient passes it
            with httpx.Client(trust_env=False) as client:
                response = client.post(
                    sim.rest_url,
                    params={"appkey": sim.appkey, "format": "pcm", "sample_rate": 16000},
                    headers={"X-NLS-Token": token},
                    content=SPEECH,
                    timeout=attempt.remaining,  # the stall holds until the client leaves
                )
            return response.json()

        with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
            recognize()
        assert_bounded(timed)
        assert_no_permit(policy, "sync-rest")
        asyncio.run(gateway_idle(sim))


# -- the token provider ------------------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event a hanging provider blocks on; set only at teardown, to let its thread go."""
    event = threading.Event()
    yield event
    event.set()


def test_sync_call_bounded_by_a_hanging_token_provider(
    policy: ar.Policy, release: threading.Event
) -> None:
    """A provider that never returns: the sync call ends at its deadline, the slot given back."""
    calls: list[str] = []

    def hanging() -> Token:
        release.wait()
        return Token("late-token", None)

    @ar.resilient(policy, tokens=TokenManager(hanging), scope="sync-token")
    def call(token: str = "") -> str:
        calls.append(token)
        return token

    with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
        call()
    assert_bounded(timed)
    assert calls == []  # the function never ran without a token
    assert_no_permit(policy, "sync-token")


async def test_async_call_bounded_by_a_hanging_token_provider(policy: ar.Policy) -> None:
    """An async provider awaiting forever: the async call ends at its deadline."""
    forever = asyncio.Event()
    calls: list[str] = []

    async def hanging() -> Token:
        await forever.wait()
        return Token("late-token", None)

    @ar.resilient(policy, tokens=TokenManager(hanging), scope="async-token")
    async def call(token: str = "") -> str:
        calls.append(token)
        return token

    try:
        with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
            await call()
        assert_bounded(timed)
        assert calls == []
        assert_no_permit(policy, "async-token")
    finally:
        forever.set()  # let the refresh task end before the loop closes


async def test_a_client_bounded_by_a_hanging_token_provider(
    sim: Simulator, policy: ar.Policy
) -> None:
    """Recognizer with a provider that never returns: the deadline ends it, no session opened."""
    forever = asyncio.Event()

    async def hanging() -> Token:
        await forever.wait()
        return Token(sim.token(), None)

    recognizer = Recognizer(sim.gateway_url, sim.appkey, TokenManager(hanging), policy)
    try:
        with Timed() as timed, pytest.raises(ar.DeadlineExceededError):
            await recognizer.recognize(SPEECH)
        assert_bounded(timed)
        assert sim.stats.connections == 0
        assert_no_permit(policy, sim.appkey)
    finally:
        forever.set()

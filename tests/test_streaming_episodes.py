"""Fault episodes of a resumable stream: the policy bounds failures in a row, not the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import asr_resilience as ar
from asr_resilience.simulator import Fault, Simulator
from asr_resilience.testing import no_wait
from asr_resilience.tokens import Token, TokenManager

from .helpers import write_policy
from .streaming_support import (
    AUDIO,
    Collector,
    Stream,
    chunks,
    reconnects,
    reference,
    run,
    same_sentences,
    sentences,
    transcriber,
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with the vendor's defaults, in the test's loop."""
    async with Simulator() as simulator:
        yield simulator


class SimTokens:
    """Issues real simulator tokens and counts the calls; the second call may be held."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.calls = 0
        self.refreshing = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> Token:
        self.calls += 1
        if self.calls > 1:
            self.refreshing.set()
            await self.release.wait()
        return Token(self.sim.token())


async def test_token_expiry_mid_stream_refreshes_and_resumes(sim: Simulator) -> None:
    """40000001 mid-stream: the token that failed is replaced and the stream goes on."""
    expected = await reference(sim)
    sim.set_scenario(
        [
            Fault("revoke_token", "audio", after_ms=1900, sessions=(2,)),
            Fault("code", "audio", code=40000001, after_ms=1900, sessions=(2,)),
        ]
    )
    provider = SimTokens(sim)
    t = transcriber(sim, tokens=TokenManager(provider))
    with no_wait():
        events = await run(t)
    [event] = reconnects(events)
    assert (event.code, event.action, event.cause) == (40000001, "refresh-token", "40000001")
    assert provider.calls == 2
    assert same_sentences(sentences(events), expected)


async def test_send_does_not_wait_for_a_reconnect(sim: Simulator) -> None:
    """Live audio sent while the new task cannot start yet is kept and replayed, in order."""
    expected = await reference(sim)
    sim.set_scenario(
        [
            Fault("revoke_token", "audio", after_ms=1900, sessions=(2,)),
            Fault("code", "audio", code=40000001, after_ms=1900, sessions=(2,)),
        ]
    )
    provider = SimTokens(sim)
    provider.release.clear()  # the refresh, and so the reconnect, waits for the test
    t = transcriber(sim, tokens=TokenManager(provider))
    with no_wait():
        async with t:
            collector = Collector(t)
            for chunk in chunks(AUDIO, 0, 2000):
                await t.send(chunk)
            await asyncio.wait_for(provider.refreshing.wait(), 5.0)
            for chunk in chunks(AUDIO, 2000):  # the rest of the audio, while no task runs
                await asyncio.wait_for(t.send(chunk), 5.0)
            assert t.stats.reconnects == 0
            provider.release.set()
            await t.finish()
        events = await collector.done()
    assert same_sentences(sentences(events), expected)
    assert t.stats.reconnects == 1


@pytest.mark.parametrize(
    ("fault", "policy", "error", "tasks"),
    [
        (Fault("close", "audio", after_ms=300), None, ar.RetryExhaustedError, 4),
        (
            Fault("code", "audio", code=50000000, after_ms=300),
            "defaults: {max_attempts: 2}\n",
            ar.RetryExhaustedError,
            2,
        ),
        (
            Fault("close", "audio", after_ms=300),
            "defaults: {deadline: 1s, backoff: {initial: 5s, max: 5s, jitter: none}}\n",
            ar.DeadlineExceededError,
            1,
        ),
    ],
    ids=["drops-default-policy", "50000000-two-attempts", "deadline"],
)
async def test_failures_in_a_row_end_in_the_typed_error(
    sim: Simulator,
    tmp_path: Path,
    fault: Fault,
    policy: str | None,
    error: type[ar.ResilienceError],
    tasks: int,
) -> None:
    """Failures with no sentence between: the policy's limit, then its typed error everywhere."""
    sim.set_scenario([fault])
    t = transcriber(sim, policy=write_policy(tmp_path, policy) if policy else None)
    stream = Stream(t)
    with no_wait(), pytest.raises(error) as info:
        await stream()
    events = await stream.events()
    assert stream.collector is not None
    assert stream.collector.error is info.value
    assert len(info.value.attempts) == tasks
    assert sim.stats.connections == tasks
    assert isinstance(info.value.__cause__, ar.NlsError | ar.TransportError)
    assert len(reconnects(events)) == tasks - 1
    with pytest.raises(error):
        await anext(aiter(t))  # iterating again gives the same answer


async def test_separated_faults_each_start_a_new_episode(sim: Simulator, tmp_path: Path) -> None:
    """Each task finishes a sentence before its cut: 2 attempts per episode outlast every cut."""
    expected = await reference(sim)
    sim.set_scenario([Fault("close", "audio", after_ms=3000)])
    t = transcriber(sim, policy=write_policy(tmp_path, "defaults: {max_attempts: 2}\n"))
    with no_wait():
        events = await run(t)
    assert same_sentences(sentences(events), expected)
    assert all(e.attempt == 1 for e in reconnects(events))
    assert t.stats.reconnects >= 3


@pytest.mark.parametrize(
    ("code", "error"),
    [(40000002, ar.FixClientError), (40000010, ar.FailFastError)],
)
async def test_fix_client_and_fail_fast_end_the_stream(
    sim: Simulator, code: int, error: type[ar.ResilienceError]
) -> None:
    """A code the policy does not retry ends the stream with its typed error, no reconnect."""
    sim.set_scenario([Fault("code", "audio", code=code, after_ms=1900)])
    t = transcriber(sim)
    stream = Stream(t)
    with pytest.raises(error) as info:
        await stream()
    assert info.value.code == code
    assert len(info.value.attempts) == 1
    assert sim.stats.connections == 1
    assert reconnects(await stream.events()) == []
    with pytest.raises(ar.protocol.LocalProtocolError, match="not open"):
        await t.send(b"\0\0")

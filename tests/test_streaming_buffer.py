"""The replay buffer of a live stream: its bound, the gaps it causes, and the replay's pace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import asr_resilience as ar
from asr_resilience.clients import AudioGap, Reconnected, Transcriber
from asr_resilience.observe import Event, add_hook
from asr_resilience.simulator import Fault, Simulator
from asr_resilience.testing import no_wait
from asr_resilience.tokens import Token, TokenManager

from .audio_fixtures import silence, tone
from .streaming_support import (
    AUDIO,
    Collector,
    Stream,
    chunks,
    reference,
    run,
    same_sentences,
    sentences,
    transcriber,
)

# A 2.5 s sentence, longer than the 1 s buffer of these tests, then a short one.
LONG = tone(2500, 300) + silence(1000) + tone(500, 700) + silence(1000)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with the vendor's defaults, in the test's loop."""
    async with Simulator() as simulator:
        yield simulator


async def test_bound_holds_without_faults(sim: Simulator) -> None:
    """A live stream with a 0.5 s buffer: every sentence arrives, the buffer never held more."""
    expected = await reference(sim)
    t = transcriber(sim, max_buffer_seconds=0.5)
    async with t:
        collector = Collector(t)
        for chunk in chunks(AUDIO):
            await t.send(chunk)
        await t.finish()
    events = await collector.done()
    assert same_sentences(sentences(events), expected)
    assert 0 < t.stats.peak_buffer_ms <= 500
    assert t.stats.gaps == 0


async def test_a_sentence_longer_than_the_buffer_is_cut_with_a_gap(sim: Simulator) -> None:
    """A cut inside a sentence longer than the bound: its tail only, after a gap event."""
    expected = await reference(sim, LONG)
    sim.set_scenario([Fault("close", "audio", after_ms=2000, sessions=(2,))])
    t = transcriber(sim, max_buffer_seconds=1.0)
    with no_wait():
        async with t:
            collector = Collector(t)
            for chunk in chunks(LONG, 0, 2000):
                await t.send(chunk)
            await collector.wait_for("reconnect")
            for chunk in chunks(LONG, 2000):
                await t.send(chunk)
            await t.finish()
        events = await collector.done()
    kinds = [e.kind for e in events]
    assert kinds.index("reconnect") < kinds.index("gap") < kinds.index("end")
    [gap] = [e for e in events if isinstance(e, AudioGap)]
    [event] = [e for e in events if isinstance(e, Reconnected)]
    assert (gap.begin_time, gap.end_time) == (0, 1000)
    assert (event.resume_time, event.replayed_ms) == (1000, 1000)
    got = sentences(events)
    assert got[0][2:] == (1000, 2500)  # the long sentence's tail only
    assert same_sentences(got[1:], [(2, *expected[1][1:])])
    assert t.stats.gaps == 1
    assert t.stats.gap_ms == 1000
    assert t.stats.peak_buffer_ms <= 1000


async def test_unpaced_file_waits_for_sentences_instead_of_dropping(sim: Simulator) -> None:
    """Unpaced with a 3 s buffer and cuts: the sender waits for sentences, nothing is lost."""
    expected = await reference(sim)
    sim.set_scenario([Fault("close", "audio", after_ms=3000)])
    t = transcriber(sim, max_buffer_seconds=3.0)
    with no_wait():
        events = await run(t)
    assert same_sentences(sentences(events), expected)
    assert t.stats.gaps == 0
    assert t.stats.reconnects >= 3
    assert t.stats.peak_buffer_ms <= 3000


async def test_a_full_buffer_holds_the_sender_during_a_reconnect(sim: Simulator) -> None:
    """With no task to send to, audio past the bound waits: memory stays bounded."""
    sim.set_scenario(
        [
            Fault("revoke_token", "audio", after_ms=1900, sessions=(1,)),
            Fault("code", "audio", code=40000001, after_ms=1900, sessions=(1,)),
        ]
    )
    refreshing, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls > 1:
            refreshing.set()
            await release.wait()
        return Token(sim.token())

    t = transcriber(sim, tokens=TokenManager(provider), max_buffer_seconds=1.5)
    with no_wait():
        async with t:
            collector = Collector(t)
            for chunk in chunks(AUDIO, 0, 2000):
                await t.send(chunk)
            await asyncio.wait_for(refreshing.wait(), 5.0)
            # The buffer holds the 1.5 s since the first sentence's end (0.5 s): full, and no
            # task to drop any of it for, so the next frame waits for the new task.
            sending = asyncio.create_task(t.send(next(iter(chunks(AUDIO, 2000)))))
            await asyncio.sleep(0)  # let it run up to its wait
            assert not sending.done()
            release.set()
            await asyncio.wait_for(sending, 5.0)
            for chunk in chunks(AUDIO, 2100):
                await t.send(chunk)
            await t.finish()
        await collector.done()
    assert t.stats.reconnects == 1
    assert t.stats.gaps == 0


async def paced_resume(sim: Simulator, speed: float | None) -> Transcriber:
    """Cut the first task after 1.5 s, then pace the gateway at 3.5x real time for the new one
    (the first task got its audio at once); replay at ``speed``."""
    sim.set_scenario([Fault("close", "audio", after_ms=1500, sessions=(1,))])

    def pace_the_new_task(event: Event) -> None:
        if event.name == "asr_resilience.retry_scheduled":
            sim.configure(pacing=3.5, pacing_grace_ms=200)

    remove = add_hook(pace_the_new_task)
    t = transcriber(sim, replay_speed=speed)
    try:
        with no_wait():
            await Stream(t)(AUDIO[: 1500 * 32])
    finally:
        remove()
    return t


async def test_replay_keeps_to_the_gateways_pace(sim: Simulator) -> None:
    """A gateway that refuses audio faster than 3.5x real time takes a 3x replay."""
    t = await paced_resume(sim, 3.0)
    assert t.stats.reconnects == 1
    assert t.stats.sentences == 1


async def test_an_unpaced_replay_is_refused_by_a_pacing_gateway(sim: Simulator) -> None:
    """The same gateway refuses an unpaced replay as too fast (40000000, fix-client)."""
    with pytest.raises(ar.FixClientError) as info:
        await paced_resume(sim, None)
    assert info.value.code == 40000000

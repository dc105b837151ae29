"""Closing a Transcriber mid-stream: StopTranscription, a bounded wait, and what was delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import asr_resilience as ar
from asr_resilience.clients import StreamEvent, StreamSummary, Transcriber
from asr_resilience.simulator import Fault, Simulator, SimulatorConfig

from .helpers import until
from .test_clients_transcriber import TEXTS, TWO_SENTENCES, transcriber

# The first sentence, its silence and the first 400 ms of the second: a stream cut mid-sentence.
MID_STREAM = TWO_SENTENCES[: 2000 * 32]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator whose sentences read TEXTS."""
    async with Simulator(config=SimulatorConfig(transcripts=TEXTS)) as simulator:
        yield simulator


async def first_sentence(t: Transcriber) -> None:
    """Wait until the stream has delivered its first sentence (the gateway ended it)."""
    await until(lambda: t.stats.sentences == 1, "the first sentence")


async def test_aclose_mid_stream_stops_the_task_and_says_what_was_delivered(
    sim: Simulator,
) -> None:
    """aclose() mid-sentence sends StopTranscription, gets TranscriptionCompleted (the gateway
    finishes the open sentence) and returns the sentences and audio the gateway confirmed."""
    t = transcriber(sim)
    await t.__aenter__()
    await t.send(MID_STREAM)
    await first_sentence(t)
    summary = await t.aclose()
    events = [event async for event in t]  # the ones held, those of the stop, then the end
    assert sim.stats.stops == 1
    assert sim.stats.sessions_completed == 1
    assert sim.stats.client_disconnects == 0
    ends = [e for e in events if e.kind == "end"]
    assert [e.text for e in ends] == TEXTS  # the cut second sentence was finished, not lost
    assert summary == StreamSummary(
        completed=True,
        sentences=2,
        audio_sent_seconds=2.0,
        audio_confirmed_seconds=2.0,
        bytes_sent=len(MID_STREAM),
        task_id=t.task_id,
    )
    assert t.summary is summary
    assert await t.aclose() is summary  # idempotent
    with pytest.raises(ar.protocol.LocalProtocolError, match="not open"):
        await t.send(b"\0\0")


async def test_a_block_that_raises_stops_the_task_cleanly(sim: Simulator) -> None:
    """Leaving the block by an exception stops the task (StopTranscription, Completed), keeps
    the caller's exception, and leaves the summary and the late events readable."""
    t = transcriber(sim)

    async def cut_short() -> None:
        async with t:
            await t.send(MID_STREAM)
            raise RuntimeError("the caller's own failure")

    with pytest.raises(RuntimeError, match="the caller's own"):
        await cut_short()
    assert sim.stats.stops == 1
    assert sim.stats.sessions_completed == 1
    assert t.summary is not None
    assert t.summary.completed
    assert t.summary.audio_sent_seconds == 2.0
    ends = [e async for e in t if e.kind == "end"]
    assert len(ends) == t.summary.sentences == 2


async def test_aclose_waits_at_most_stop_timeout(sim: Simulator) -> None:
    """A gateway that never completes: aclose() gives up after stop_timeout, closes the
    socket, and confirms only the audio up to the end of the last delivered sentence."""
    sim.set_scenario([Fault("stall", "stop")])
    t = transcriber(sim, stop_timeout=0.2)
    await t.__aenter__()
    await t.send(MID_STREAM)
    await first_sentence(t)
    summary = await t.aclose()
    assert sim.stats.stops == 1
    assert not summary.completed
    assert summary.sentences == 1
    assert summary.audio_sent_seconds == 2.0
    assert summary.audio_confirmed_seconds == 0.6
    # The gateway's session ends (its slot comes back) once the socket is closed.
    await sim.stats.wait_slots(lambda slots: not any(slots.values()), timeout=10)
    assert sim.stats.sessions_completed == 0
    with pytest.raises(ar.protocol.LocalProtocolError, match="before TranscriptionCompleted"):
        async for _ in t:
            pass


async def test_a_cancelled_block_closes_at_once(sim: Simulator) -> None:
    """A cancelled block sends no StopTranscription and waits for nothing; the summary says
    the task did not complete."""
    opened: asyncio.Future[Transcriber] = asyncio.get_running_loop().create_future()

    async def stream() -> None:
        async with transcriber(sim) as t:
            await t.send(MID_STREAM)
            opened.set_result(t)
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(stream())
    t = await opened
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sim.stats.stops == 0
    assert t.summary is not None
    assert not t.summary.completed
    assert t.summary.bytes_sent == len(MID_STREAM)


async def test_aclose_from_another_task_ends_the_readers_loop(sim: Simulator) -> None:
    """aclose() called beside a reader: the reader's loop ends after the last sentence, without
    an error, and a later send is refused."""
    async with transcriber(sim) as t:
        await t.send(MID_STREAM)

        async def read() -> list[StreamEvent]:
            return [event async for event in t]

        reader = asyncio.create_task(read())
        await first_sentence(t)
        summary = await t.aclose()
        events = await reader
        with pytest.raises(ar.protocol.LocalProtocolError, match="not open"):
            await t.send(b"\0\0")
    assert summary.completed
    assert [e.index for e in events if e.kind == "end"] == [1, 2]


async def test_aclose_before_opening_reports_nothing(sim: Simulator) -> None:
    """aclose() on a Transcriber never opened touches nothing and reports nothing delivered."""
    summary = await transcriber(sim).aclose()
    assert summary == StreamSummary(
        completed=False,
        sentences=0,
        audio_sent_seconds=0.0,
        audio_confirmed_seconds=0.0,
        bytes_sent=0,
        task_id="",
    )
    assert sim.stats.connections == 0

"""Transcriber: real-time transcription against the simulator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import asr_resilience as ar
from asr_resilience.clients import SentenceEvent, StreamEvent, Transcriber, transcribe_file
from asr_resilience.limits import get_scope
from asr_resilience.simulator import Fault, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait

from .audio_fixtures import frames, silence, speech_like, tone, wav
from .helpers import write_policy

# Sentences at 0-600 ms and 1600-2400 ms, each followed by a second of silence.
TWO_SENTENCES = speech_like([(600, 440), (800, 880)])
TEXTS = ["今天天气不错", "我们开始会议"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator whose sentences read TEXTS."""
    async with Simulator(config=SimulatorConfig(transcripts=TEXTS)) as simulator:
        yield simulator


def transcriber(sim: Simulator, **options: Any) -> Transcriber:
    """A Transcriber aimed at the simulator with a valid static token."""
    return Transcriber(sim.gateway_url, sim.appkey, sim.token(), **options)


async def test_sentences_with_begin_and_end_times(sim: Simulator) -> None:
    """Multi-sentence audio yields begin and end events with their times, in order."""
    async with transcriber(sim) as t:
        assert len(t.task_id) == 32
        assert t.session_id
        assert t.attempts == 1
        for frame in frames(TWO_SENTENCES):
            await t.send(frame)
        await t.finish()
    events = [event async for event in t if isinstance(event, SentenceEvent)]
    assert [(e.kind, e.index) for e in events] == [
        ("begin", 1),
        ("end", 1),
        ("begin", 2),
        ("end", 2),
    ]
    ends = [e for e in events if e.kind == "end"]
    assert [(e.begin_time, e.end_time, e.text) for e in ends] == [
        (0, 600, TEXTS[0]),
        (1600, 2400, TEXTS[1]),
    ]
    assert all(e.confidence is not None and e.words and not e.timed_out for e in ends)
    assert events[2].begin_time == events[2].end_time == 1600
    assert t.bytes_sent == len(TWO_SENTENCES)


async def test_events_arrive_while_audio_flows(sim: Simulator) -> None:
    """A consumer task sees a sentence before the stream is finished."""
    first_end = asyncio.Event()
    seen: list[StreamEvent] = []
    async with transcriber(sim) as t:

        async def consume() -> None:
            async for event in t:
                seen.append(event)
                if event.kind == "end":
                    first_end.set()

        consumer = asyncio.create_task(consume())
        await t.send(speech_like([(600, 440)]))  # over 16 KiB: split into frames
        await first_end.wait()
        assert [e.kind for e in seen] == ["begin", "end"]
        await t.finish()
        await consumer
    assert len(seen) == 2


async def test_intermediate_results_when_asked(sim: Simulator) -> None:
    """With enable_intermediate_result, partial events carry the open sentence's begin time."""
    async with transcriber(sim, params={"enable_intermediate_result": True}) as t:
        await t.send(TWO_SENTENCES)
        await t.finish()
    events = [e async for e in t]
    kinds = "".join(e.kind[0] for e in events)  # b(egin), p(artial), e(nd)
    assert re.fullmatch(r"(bp+e){2}", kinds), kinds
    partials = [e for e in events if e.kind == "partial"]
    assert {(p.index, p.begin_time) for p in partials} == {(1, 0), (2, 1600)}
    assert all(p.text and p.end_time > p.begin_time for p in partials)


async def test_control_changes_parameters_mid_task(sim: Simulator) -> None:
    """ControlTranscriber with a shorter max_sentence_silence splits what a pause joined."""
    audio = tone(400, 440) + silence(500) + tone(400, 660) + silence(1000)
    async with transcriber(sim) as joined:
        await joined.send(audio)
    assert len([e async for e in joined if e.kind == "end"]) == 1
    async with transcriber(sim) as split:
        await split.control({"max_sentence_silence": 300})
        await split.send(audio)
    assert len([e async for e in split if e.kind == "end"]) == 2


async def test_transcribe_file(sim: Simulator, tmp_path: Path) -> None:
    """transcribe_file sends a WAV file and returns its sentences' end events."""
    path = tmp_path / "meeting.wav"
    path.write_bytes(wav(TWO_SENTENCES))
    ends = await transcriber(sim).transcribe_file(path, realtime=False)
    assert [(e.kind, e.begin_time, e.end_time, e.text) for e in ends] == [
        ("end", 0, 600, TEXTS[0]),
        ("end", 1600, 2400, TEXTS[1]),
    ]


async def test_transcribe_file_as_a_function(sim: Simulator) -> None:
    """clients.transcribe_file runs a stream of its own from Transcriber's options."""
    ends = await transcribe_file(
        wav(TWO_SENTENCES),
        realtime=False,
        url=sim.gateway_url,
        appkey=sim.appkey,
        tokens=sim.token(),
    )
    assert [(e.begin_time, e.end_time, e.text) for e in ends] == [
        (0, 600, TEXTS[0]),
        (1600, 2400, TEXTS[1]),
    ]
    assert sim.stats.sessions_completed == 1


async def test_a_completed_stream_gives_its_slot_back_as_a_success(
    sim: Simulator, tmp_path: Path
) -> None:
    """The leg's slot is held while it runs and released as a success when it completes."""
    policy = write_policy(tmp_path, "concurrency: {adaptive: true, initial: 2, min: 1, max: 4}\n")
    scope = f"slot-success-{tmp_path.name}"
    async with transcriber(sim, policy=policy, scope=scope) as t:
        limiter = get_scope(scope, policy).limiter
        assert limiter is not None
        assert limiter.in_flight == 1  # the leg holds its slot while it runs
        await t.send(TWO_SENTENCES)
    assert limiter.in_flight == 0
    assert limiter.stats()["limit"] > 2  # a success grew the limit: the slot went back as one


async def test_transcribe_file_at_8k(sim: Simulator) -> None:
    """An 8 kHz WAV is transcribed with sample_rate 8000 in the start payload."""
    pcm = tone(600, 440, rate=8000) + silence(1000, rate=8000)
    ends = await transcriber(sim).transcribe_file(wav(pcm, rate=8000), realtime=False)
    assert [(e.begin_time, e.end_time) for e in ends] == [(0, 600)]


async def test_opening_is_retried_per_policy(sim: Simulator) -> None:
    """A throttled start is retried until the task starts."""
    sim.set_scenario([Fault("code", "start", code=40000005, sessions=(1,))])
    with no_wait():
        async with transcriber(sim) as t:
            assert t.attempts == 2
            await t.send(TWO_SENTENCES)
    assert sim.stats.connections == 2
    assert sim.stats.sessions_completed == 1


async def test_opening_gives_up_with_the_typed_error(sim: Simulator) -> None:
    """A start the policy does not retry raises its typed error from ``async with``."""
    with pytest.raises(ar.FixClientError) as info:
        async with transcriber(sim, sample_rate=44100):
            pass
    assert info.value.code == 41010101
    assert sim.stats.connections == 1


async def drain(t: Transcriber) -> list[StreamEvent]:
    """Every event the transcriber yields."""
    return [event async for event in t]


async def stream(t: Transcriber, audio: bytes) -> None:
    """Open ``t``, send ``audio`` and leave the block normally."""
    async with t:
        await t.send(audio)


async def test_task_failed_mid_stream_raises_from_the_iterator(sim: Simulator) -> None:
    """Without resume, TaskFailed mid-stream is raised as NlsError from the iterator and send."""
    sim.set_scenario([Fault("code", "audio", code=41040201, after_ms=200)])
    async with transcriber(sim, resume=False) as t:
        await t.send(silence(300))
        with pytest.raises(ar.NlsError) as info:
            await drain(t)
        with pytest.raises(ar.NlsError):
            await t.send(silence(100))
    assert info.value.code == 41040201
    assert info.value.task_id == t.task_id


async def test_unobserved_failure_is_raised_on_exit(sim: Simulator) -> None:
    """Without resume, a failure the block never looked at is raised when the block ends."""
    sim.set_scenario([Fault("code", "audio", code=41040201, after_ms=200)])
    with pytest.raises(ar.NlsError) as info:
        await stream(transcriber(sim, resume=False), silence(300))
    assert info.value.code == 41040201


async def test_drop_mid_stream_raises_transport_error(sim: Simulator) -> None:
    """Without resume, a drop is raised as TransportError('abnormal_close') from the iterator."""
    sim.set_scenario([Fault("close", "audio", after_ms=100)])
    async with transcriber(sim, resume=False) as t:
        await t.send(silence(300))
        with pytest.raises(ar.TransportError) as info:
            await drain(t)
    assert info.value.kind == "abnormal_close"
    with pytest.raises(ar.TransportError, match="abnormal_close"):
        await stream(transcriber(sim, resume=False), silence(300))


async def test_finish_timeout(sim: Simulator) -> None:
    """No TranscriptionCompleted within stop_timeout raises TimeoutError from finish."""
    sim.set_scenario([Fault("stall", "stop")])
    with pytest.raises(TimeoutError, match="TranscriptionCompleted"):
        await stream(transcriber(sim, stop_timeout=0.05), silence(100))


async def test_closed_transcriber_refuses_to_send(sim: Simulator) -> None:
    """Using a Transcriber outside its block is a LocalProtocolError; after an aborted block
    (which stops the task) iterating ends, and sending is refused again."""
    t = transcriber(sim)
    with pytest.raises(ar.protocol.LocalProtocolError, match="not open"):
        await t.send(b"\0\0")
    with pytest.raises(RuntimeError, match="abort"):
        async with t:
            raise RuntimeError("abort")
    assert [event async for event in t] == []
    with pytest.raises(ar.protocol.LocalProtocolError, match="not open"):
        await t.send(b"\0\0")

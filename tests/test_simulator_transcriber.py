"""The simulated gateway's real-time transcription (SpeechTranscriber), over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from asr_resilience.protocol import (
    TRANSCRIBER,
    Completed,
    Failed,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    Started,
)
from asr_resilience.simulator import Simulator

from .audio_fixtures import silence, speech_like, tone
from .simulator_client import assert_seed, quick_config, run_task, task

SPEECH = speech_like([(1200, 440), (800, 660), (1500, 300)])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config=quick_config()) as simulator:
        yield simulator


def _sentences(events: Sequence[object]) -> list[SentenceEnded]:
    return [e for e in events if isinstance(e, SentenceEnded)]


async def test_transcription_sentences_times_and_texts(sim: Simulator) -> None:
    """Each tone is a sentence: SentenceBegin/SentenceEnd with indexes from 1 and audio times."""
    events = await run_task(sim, TRANSCRIBER, SPEECH)
    started = events[0]
    assert isinstance(started, Started)
    assert len(started.session_id) == 32
    assert isinstance(events[-1], Completed)
    begins = [e for e in events if isinstance(e, SentenceBegan)]
    ends = _sentences(events)
    assert [(b.index, b.time) for b in begins] == [(1, 0), (2, 2200), (3, 4000)]
    assert [(e.index, e.begin_time, e.end_time) for e in ends] == [
        (1, 0, 1200),
        (2, 2200, 3000),
        (3, 4000, 5500),
    ]
    for end in ends:
        assert end.text
        assert end.confidence is not None
        assert "".join(w.text for w in end.words) == end.text
        assert end.words[0].start_time == end.begin_time
        assert end.words[-1].end_time == end.end_time


async def test_transcription_deterministic_and_shift_tolerant(sim: Simulator) -> None:
    """The same audio gives the same texts; leading silence shifts the times, not the texts."""
    first = _sentences(await run_task(sim, TRANSCRIBER, SPEECH))
    again = _sentences(await run_task(sim, TRANSCRIBER, SPEECH))
    shifted = _sentences(await run_task(sim, TRANSCRIBER, silence(20) + SPEECH))
    assert [e.text for e in first] == [e.text for e in again] == [e.text for e in shifted]
    assert [e.begin_time + 20 for e in first] == [e.begin_time for e in shifted]


async def test_open_sentence_flushed_on_stop(sim: Simulator) -> None:
    """Speech still open at StopTranscription ends as a sentence before TranscriptionCompleted."""
    events = await run_task(sim, TRANSCRIBER, tone(1000, 440))
    assert [(e.index, e.begin_time, e.end_time) for e in _sentences(events)] == [(1, 0, 1000)]
    assert isinstance(events[-1], Completed)


async def test_intermediate_results(sim: Simulator) -> None:
    """enable_intermediate_result: a result each 200 ms of audio from a sentence's begin to end."""
    events = await run_task(sim, TRANSCRIBER, SPEECH, {"enable_intermediate_result": True})
    ends = _sentences(events)
    for end in ends:
        begin = next(
            i for i, e in enumerate(events) if isinstance(e, SentenceBegan) and e.index == end.index
        )
        changed = [e for e in events if isinstance(e, ResultChanged) and e.index == end.index]
        # From the onset (200 ms in) to the close: one each 200 ms of audio heard.
        assert len(changed) >= (end.end_time - end.begin_time) // 200 - 1, end.index
        assert all(begin < events.index(c) < events.index(end) for c in changed)
        times = [c.time for c in changed]
        assert times == sorted(times)
        assert times[-1] == end.end_time
        assert all(c.text for c in changed)


async def test_sentence_begin_comes_at_the_onset(sim: Simulator) -> None:
    """SentenceBegin and intermediate results arrive while the sentence's audio still flows."""
    params = {"enable_intermediate_result": True}
    async with task(sim, TRANSCRIBER, params) as t:
        await t.start()
        await t.send_audio(SPEECH[: 700 * 32])  # the first sentence's first 700 ms
        began = await t.event()
        changed = await t.event()
        assert isinstance(began, SentenceBegan)
        assert (began.index, began.time) == (1, 0)
        assert isinstance(changed, ResultChanged)
        assert changed.index == 1
        await t.send_audio(SPEECH[700 * 32 :])
        events = await t.stop()
    assert [e.index for e in _sentences(events)] == [1, 2, 3]


async def test_processing_keeps_to_the_realtime_factor(sim: Simulator) -> None:
    """With realtime_factor 10, an unpaced client's last SentenceEnd comes no sooner than the
    audio's duration / 10 after its first frame."""
    sim.configure(realtime_factor=10.0)
    loop = asyncio.get_running_loop()
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        began = loop.time()
        await t.send_audio(SPEECH)
        events = await t.stop()
        elapsed = loop.time() - began
    ends = _sentences(events)
    assert [e.index for e in ends] == [1, 2, 3]
    # The last sentence closes at 5.5 s of audio, the audio ends at 5.5 s: all of it processed.
    assert elapsed >= len(SPEECH) / 32 / 1000 / 10


async def test_control_changes_sentence_silence(sim: Simulator) -> None:
    """ControlTranscriber with a longer max_sentence_silence joins tones 1 s apart."""
    audio = speech_like([(600, 440), (600, 440)], gap_ms=1000)
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        await t.ws.send(t.client.control({"max_sentence_silence": 2000}))
        await t.send_audio(audio)
        events = await t.stop()
    assert [(e.begin_time, e.end_time) for e in _sentences(events)] == [(0, 2200)]


async def test_control_with_bad_value(sim: Simulator) -> None:
    """ControlTranscriber with an out-of-range silence → 40000003 PARAMETER_INVALID."""
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        await t.ws.send(t.client.control({"max_sentence_silence": 10}))
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert failed.status == 40000003
    assert_seed(failed.status, failed.status_text)


async def test_start_parameter_sentence_silence(sim: Simulator) -> None:
    """max_sentence_silence in StartTranscription applies from the start."""
    audio = speech_like([(600, 440), (600, 440)], gap_ms=300)
    default = _sentences(await run_task(sim, TRANSCRIBER, audio, {"max_sentence_silence": 800}))
    short = _sentences(await run_task(sim, TRANSCRIBER, audio, {"max_sentence_silence": 200}))
    assert (len(default), len(short)) == (1, 2)


async def test_audio_gap_is_client_data_timeout(sim: Simulator) -> None:
    """Audio that stops flowing mid-task → 41040201 GET_CLIENT_DATA_TIMEOUT."""
    sim.configure(client_data_timeout=0.2)
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        await t.send_audio(tone(300, 440))
        failed = await t.event()
        while not isinstance(failed, Failed):
            failed = await t.event()
    assert failed.status == 41040201
    assert failed.status_text == (
        "Realtime:GET_CLIENT_DATA_TIMEOUT:Client data does not send continuously!"
    )
    assert_seed(failed.status, failed.status_text)


async def test_idle_before_audio_when_idle_is_shorter(sim: Simulator) -> None:
    """No frame at all for idle_timeout (shorter than the data timeout) → 40000004."""
    sim.configure(idle_timeout=0.2, client_data_timeout=5.0)
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert failed.status == 40000004


async def test_pacing_refuses_audio_far_faster_than_real_time(sim: Simulator) -> None:
    """With pacing set, audio sent unpaced well ahead of real time → 40000000 CLIENT_ERROR."""
    sim.configure(pacing=2.0, pacing_grace_ms=500)
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        await t.send_audio(silence(3000))
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert failed.status == 40000000
    assert_seed(failed.status, failed.status_text)


async def test_second_stop_while_stopping(sim: Simulator) -> None:
    """A second StopTranscription during the final processing → 40010005."""
    sim.configure(service_time=1.0)
    async with task(sim, TRANSCRIBER) as t:
        await t.start()
        stop = t.client.stop()
        await t.ws.send(stop)
        await t.ws.send(stop)
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert failed.status == 40010005
    assert_seed(failed.status, failed.status_text)

"""Resuming a real-time stream after a drop or a retryable code, at every phase of a task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import pytest
import structlog

from asr_resilience.clients import AudioGap
from asr_resilience.observe import Event, add_hook
from asr_resilience.simulator import Fault, Simulator
from asr_resilience.testing import no_wait

from .streaming_support import (
    AUDIO,
    SENTENCES,
    Collector,
    begins,
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


# The first sentence ends at 500 ms and is reported once 800 ms of silence follow (1300 ms);
# the second one runs from 1500 to 2200 ms.
MID_SENTENCE = 1900
BETWEEN_SENTENCES = 1400


def cut(after_ms: int, action: Literal["close", "reset"] = "close") -> Fault:
    """A drop in the second session (the first one is the reference run)."""
    return Fault(action, "audio", after_ms=after_ms, sessions=(2,))


def code(code: int, after_ms: int = 4000) -> Fault:
    """A TaskFailed in the second session."""
    return Fault("code", "audio", code=code, after_ms=after_ms, sessions=(2,))


@pytest.mark.parametrize(
    ("fault", "cause", "status"),
    [
        (cut(MID_SENTENCE), "abnormal_close", None),
        (cut(MID_SENTENCE, "reset"), "abnormal_close", None),
        (cut(BETWEEN_SENTENCES), "abnormal_close", None),
        (code(50000000, MID_SENTENCE), "50000000", 50000000),
        (code(52010001), "52010001", 52010001),
        (code(40000004), "40000004", 40000004),
        (code(41040201), "41040201", 41040201),
    ],
    ids=["close-mid", "reset-mid", "close-between", "50000000", "52010001", "40000004", "41040201"],
)
async def test_a_retryable_failure_mid_stream_resumes_it(
    sim: Simulator, fault: Fault, cause: str, status: int | None
) -> None:
    """A drop or a retryable code mid-stream: one reconnect, the same sentences, none twice."""
    expected = await reference(sim)
    sim.set_scenario([fault])
    t = transcriber(sim)
    with no_wait():
        events = await run(t, AUDIO)
    assert same_sentences(sentences(events), expected)
    [event] = reconnects(events)
    assert (event.cause, event.code, event.action, event.attempt) == (cause, status, "retry", 1)
    assert event.task_id == t.task_id != event.previous_task_id
    assert t.stats.reconnects == 1
    assert t.stats.duplicates == 0
    assert t.stats.gaps == 0
    assert sim.stats.sessions_completed == 2  # the reference, and the resumed stream


async def test_reconnect_event_reports_where_it_resumed_and_what_it_replayed(
    sim: Simulator,
) -> None:
    """Cut mid-sentence: resumed at the last sentence's end, the rest replayed; logged too."""
    sim.set_scenario([Fault("close", "audio", after_ms=MID_SENTENCE, sessions=(1,))])
    seen: list[Event] = []
    remove = add_hook(seen.append)
    t = transcriber(sim)
    try:
        with no_wait(), structlog.testing.capture_logs() as logs:
            async with t:
                collector = Collector(t)
                # Exactly the audio up to the cut, so the replay is known to the ms.
                await t.send_all(chunks(AUDIO, 0, MID_SENTENCE), realtime=False)
                await collector.wait_for("reconnect")
                await t.send_all(chunks(AUDIO, MID_SENTENCE), realtime=False)
                await t.finish()
            events = await collector.done()
    finally:
        remove()
    [event] = reconnects(events)
    first_end = SENTENCES[0][0]
    assert event.resume_time == first_end
    assert event.replayed_ms == MID_SENTENCE - first_end
    assert t.stats.replayed_ms == event.replayed_ms
    # The second sentence had begun when the connection dropped: it is announced once.
    assert [e.kind for e in events[:4]] == ["begin", "end", "begin", "reconnect"]
    assert sum(e.kind == "begin" for e in events) == len(SENTENCES)
    resumed = [e for e in seen if e.name == "asr_resilience.stream_resumed"]
    assert len(resumed) == 1
    assert resumed[0].fields["replayed_ms"] == event.replayed_ms
    assert resumed[0].fields["transport"] == "abnormal_close"
    assert any(log["event"] == "asr_resilience.stream_resumed" for log in logs)


async def test_drop_between_sentence_begin_and_end_delivers_it_once(sim: Simulator) -> None:
    """A drop after SentenceBegin and intermediate results of a sentence, before its end: after
    the resume the sentence begins no second time, its results go on, it ends exactly once."""
    params = {"enable_intermediate_result": True}
    expected = sentences(await run(transcriber(sim, params=params)))
    sim.set_scenario([cut(MID_SENTENCE)])
    t = transcriber(sim, params=params)
    with no_wait():
        events = await run(t)
    assert same_sentences(sentences(events), expected)
    reconnect = next(i for i, e in enumerate(events) if e.kind == "reconnect")
    second = [(i, e.kind) for i, e in enumerate(events) if getattr(e, "index", 0) == 2]
    kinds = [kind for _, kind in second]
    assert kinds.count("begin") == 1
    assert kinds.count("end") == 1
    assert kinds[0] == "begin"
    assert kinds[-1] == "end"
    # Partial results of the second sentence on both sides of the reconnect.
    assert any(i < reconnect and k == "partial" for i, k in second)
    assert any(i > reconnect and k == "partial" for i, k in second)
    assert t.stats.duplicates == 0


async def test_drop_before_transcription_started_is_retried_on_open(sim: Simulator) -> None:
    """A drop before the first TranscriptionStarted is the opening's business: no reconnect."""
    expected = await reference(sim)
    sim.set_scenario([Fault("close", "start", sessions=(2,))])
    t = transcriber(sim)
    with no_wait():
        events = await run(t)
    assert t.attempts == 2
    assert reconnects(events) == []
    assert same_sentences(sentences(events), expected)


async def test_drop_before_the_new_task_started_counts_in_the_episode(sim: Simulator) -> None:
    """A new task that drops before TranscriptionStarted is the episode's second failure."""
    expected = await reference(sim)
    sim.set_scenario(
        [
            Fault("close", "audio", after_ms=MID_SENTENCE, sessions=(2,)),
            Fault("close", "start", sessions=(3,)),
        ]
    )
    t = transcriber(sim)
    with no_wait():
        events = await run(t)
    [event] = reconnects(events)
    assert event.attempt == 2
    assert sim.stats.connections == 4  # the reference, the cut task, the dropped start, the last
    assert same_sentences(sentences(events), expected)


async def test_drop_after_stop_before_completed(sim: Simulator) -> None:
    """A drop after StopTranscription: a new task gets the tail, stops and completes."""
    expected = await reference(sim)
    sim.set_scenario([Fault("close", "stop", sessions=(2,))])
    t = transcriber(sim)
    with no_wait():
        events = await run(t)
    [event] = reconnects(events)
    assert event.resume_time == expected[-1][3]  # every sentence was out before the stop
    assert same_sentences(sentences(events), expected)
    assert sim.stats.sessions_completed == 2  # the reference and the new task


async def test_drop_after_stop_with_a_sentence_still_open(sim: Simulator) -> None:
    """Audio that ends inside a sentence: the stop closes it; after a drop the new task does."""
    audio = AUDIO[: (begins()[-1] + 300) * 32]  # the last sentence cut off by the end
    expected = await reference(sim, audio)
    sim.set_scenario([Fault("close", "stop", sessions=(2,))])
    t = transcriber(sim)
    with no_wait():
        events = await run(t, audio)
    assert same_sentences(sentences(events), expected)
    assert len(expected) == len(SENTENCES)
    [event] = reconnects(events)
    assert event.replayed_ms == 300 + 1000  # the silence after the fifth sentence, and the sixth


async def test_sentences_identical_with_and_without_faults(sim: Simulator) -> None:
    """Cuts and 50000000s: the uninterrupted stream's sentences (± 20 ms), each exactly once."""
    audio = AUDIO + AUDIO[: 3000 * 32]
    expected = await reference(sim, audio)
    sim.set_scenario(
        [
            Fault("code", "audio", code=50000000, after_ms=2800, every=3),
            Fault("close", "audio", after_ms=3000),
        ]
    )
    t = transcriber(sim)
    with no_wait():
        events = await run(t, audio)
    got = sentences(events)
    assert same_sentences(got, expected)
    assert len({s[3] for s in got}) == len(got)
    causes = {e.cause for e in reconnects(events)}
    assert causes == {"abnormal_close", "50000000"}
    assert t.stats.reconnects == len(reconnects(events)) >= 4
    assert not [e for e in events if isinstance(e, AudioGap)]

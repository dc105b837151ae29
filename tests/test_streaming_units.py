"""The sans-I/O parts of a resumable stream: the replay buffer, the timeline, the flow window."""

from __future__ import annotations

import pytest

from asr_resilience.clients._flow import FlowWindow
from asr_resilience.clients._leg import Leg
from asr_resilience.clients._replay import ReplayBuffer
from asr_resilience.clients._timeline import Timeline
from asr_resilience.protocol import (
    TRANSCRIBER,
    ClientProtocol,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    Word,
)

RATE = 32000  # bytes a second: 16 kHz 16-bit mono


def ms(n: int) -> bytes:
    """``n`` ms of 16 kHz audio."""
    return bytes(32 * n)


def test_buffer_keeps_audio_since_the_last_commit() -> None:
    """commit(end) drops the audio before a delivered sentence's end, on a whole ms."""
    buffer = ReplayBuffer(RATE, max_seconds=10)
    buffer.append(ms(1500), evictable_to=0)
    buffer.commit(600)
    assert (buffer.start_ms, buffer.ms(buffer.end), buffer.size) == (600, 1500, 32 * 900)
    assert buffer.read(buffer.start, 4) == bytes(4)
    buffer.commit(400)  # an older point changes nothing
    assert buffer.start_ms == 600
    buffer.commit(5000)  # never past what was sent
    assert buffer.size == 0
    assert buffer.start_ms == 1500
    assert buffer.take_gap() is None


def test_buffer_bound_drops_only_audio_a_task_has_had() -> None:
    """Past the bound the oldest sent audio goes; unsent audio stays and has_room says no."""
    buffer = ReplayBuffer(RATE, max_seconds=1)
    buffer.append(ms(800), evictable_to=0)
    assert buffer.has_room(32 * 200, evictable_to=0)
    assert not buffer.has_room(32 * 300, evictable_to=0)
    assert buffer.has_room(32 * 300, evictable_to=32 * 100)
    buffer.append(ms(300), evictable_to=32 * 800)
    assert (buffer.start_ms, buffer.size) == (100, 32 * 1000)
    assert buffer.peak_ms == 1000
    with pytest.raises(ValueError, match="dropped"):
        buffer.read(0, 10)


def test_buffer_reports_a_dropped_span_once() -> None:
    """Audio the bound dropped before any commit is a gap, reported once from the last commit."""
    buffer = ReplayBuffer(RATE, max_seconds=1)
    buffer.append(ms(400), evictable_to=0)
    buffer.commit(200)
    buffer.append(ms(1500), evictable_to=32 * 1900)
    assert buffer.start_ms == 900
    assert buffer.take_gap() == (200, 900)
    assert buffer.take_gap() is None
    buffer.commit(1200)
    assert buffer.take_gap() is None


def test_buffer_forget_and_an_empty_buffer_takes_any_frame() -> None:
    """forget() drops sent audio for good; an empty buffer takes a frame above its bound."""
    buffer = ReplayBuffer(RATE, max_seconds=0.01)
    assert buffer.has_room(32 * 100, evictable_to=0)
    buffer.append(ms(100), evictable_to=0)
    buffer.forget(buffer.end)
    assert buffer.size == 0
    assert buffer.take_gap() is None
    with pytest.raises(ValueError, match="positive"):
        ReplayBuffer(0)


def test_buffer_at_8k_cuts_on_whole_ms() -> None:
    """At 8 kHz a ms is 16 bytes: commits and evictions keep the start on a whole ms."""
    buffer = ReplayBuffer(16000, max_seconds=0.5)
    buffer.append(bytes(16 * 700), evictable_to=16 * 700)
    assert buffer.start % 16 == 0
    assert buffer.size <= 16 * 500
    assert buffer.position(333) == 16 * 333


def end(index: int, begin: int, end_time: int, text: str = "句子") -> SentenceEnded:
    """A SentenceEnded as a task reports it."""
    return SentenceEnded(index, begin, end_time, text, 0.9, (Word(text, begin, end_time),))


def test_timeline_offsets_and_continues_indexes() -> None:
    """A second task's times are offset by where its audio starts; indexes continue."""
    line = Timeline()
    first = line.event(end(1, 100, 700))
    line.start_task(700)
    began = line.event(SentenceBegan(1, 300))
    second = line.event(end(1, 300, 900))
    assert first is not None
    assert began is not None
    assert second is not None
    assert (first.index, first.begin_time, first.end_time) == (1, 100, 700)
    assert (began.kind, began.index, began.begin_time) == ("begin", 2, 1000)
    assert (second.index, second.begin_time, second.end_time) == (2, 1000, 1600)
    assert second.words == (Word("句子", 1000, 1600),)
    assert line.delivered == 2
    assert line.last_end == 1600


def test_timeline_drops_what_an_earlier_task_delivered() -> None:
    """A sentence ending at or before the last delivered end is a duplicate, with its events."""
    line = Timeline()
    assert line.event(end(1, 100, 700)) is not None
    line.start_task(0)  # a task that hears the same audio again
    assert line.event(SentenceBegan(1, 100)) is None
    assert line.event(ResultChanged("句", 1, 400)) is None
    assert line.event(end(1, 100, 700)) is None
    assert line.duplicates == 1
    assert line.delivered == 1


def test_timeline_announces_an_open_sentence_once() -> None:
    """A sentence begun before a reconnect is not announced again; its partials go on."""
    line = Timeline()
    assert line.event(SentenceBegan(1, 200)) is not None
    line.start_task(100)
    assert line.event(SentenceBegan(1, 100)) is None
    partial = line.event(ResultChanged("句", 1, 400))
    assert partial is not None
    assert (partial.kind, partial.index, partial.begin_time, partial.end_time) == (
        "partial",
        1,
        200,
        500,
    )
    assert line.event(object()) is None


def _leg(offset: int = 0) -> Leg:
    """A leg for the window's arithmetic; it never touches its connection."""
    return Leg(None, ClientProtocol(TRANSCRIBER, "appkey"), "token", offset)  # type: ignore[arg-type]


def test_window_bounds_what_is_sent_past_the_last_report() -> None:
    """room() is the window past the last report; a report moves it, a stale one does not."""
    flow = FlowWindow(3.0, RATE, 32)
    leg = _leg(offset=RATE)  # the leg hears the stream from 1 s on
    flow.start(leg, now=10.0)
    assert flow.room(leg) == 3 * RATE
    leg.sent = 4 * RATE
    assert flow.room(leg) == 0
    assert flow.report(leg, 2 * RATE, now=10.1)
    assert flow.room(leg) == RATE
    assert not flow.report(leg, 2 * RATE, now=10.2)  # nothing new
    assert flow.report(leg, 9 * RATE, now=10.3)  # past what was sent: capped
    assert leg.confirmed == leg.sent


def test_window_deadline_at_the_speed_the_gateway_showed() -> None:
    """Without a report the audio counts as heard once the gateway, at the speed its reports
    showed (never below real time), has had time to hear it; a later report corrects that."""
    flow = FlowWindow(3.0, RATE, 32)
    leg = _leg()
    flow.start(leg, now=0.0)
    leg.sent = 3 * RATE
    assert flow.speed == 1.0
    assert flow.deadline(leg) == pytest.approx(3.0)  # unknown gateway: real time
    flow.report(leg, RATE, now=0.1)  # 1 s of audio in 0.1 s: 10x real time
    assert flow.speed == pytest.approx(10.0)
    assert flow.deadline(leg) == pytest.approx(0.1 + 2 / 10)
    flow.assume_heard(leg, now=0.3)
    assert (leg.confirmed, flow.room(leg)) == (3 * RATE, 3 * RATE)
    leg.sent = 6 * RATE
    # The gateway was slower than it seemed: its report pulls the window back.
    assert flow.report(leg, 2 * RATE, now=0.5)
    assert flow.room(leg) == -RATE
    # The wait for the deadline (0.1 .. 0.3 s) is not counted as the gateway's time.
    assert flow.speed == pytest.approx(2 / (0.1 + 0.2))
    slow = FlowWindow(3.0, RATE, 32)
    crawling = _leg()
    slow.start(crawling, now=0.0)
    crawling.sent = RATE
    slow.report(crawling, RATE // 2, now=5.0)  # slower than real time: real time is assumed
    assert slow.speed == 1.0

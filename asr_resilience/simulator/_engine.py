"""Deterministic "recognition": sentences from an energy voice detector, words from features.

A sentence is a run of voiced 10 ms frames closed by ``max_sentence_silence`` of silence. Its
text comes from features that survive a shift of a frame or two — its duration in 100 ms steps,
its loudness band and its pitch band (zero crossings) — mapped onto a fixed vocabulary, or from a
scenario's transcript list. The same audio yields the same sentences and texts in whichever task
it arrives, so a resumed stream can be compared with an uninterrupted one.

For real-time transcription the detector also reports what happens *while* audio is heard
(``progress_every_ms``): the onset of a sentence once its voiced run is long enough to be speech
(:class:`Onset`), a snapshot of the open sentence at a regular cadence (:class:`Progress`), and the
sentence when it closes — each with the audio position at which it happened, so the gateway can
send it when its processing reaches that point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._audio import FRAME_MS, VOICE_RMS, frame_stats

VOCABULARY = (
    "你好", "今天", "天气", "不错", "我们", "开始", "会议", "请问", "明天", "上海",
    "北京", "识别", "语音", "测试", "谢谢", "好的", "没有", "问题", "可以", "时间",
    "下午", "电话", "订单", "查询", "帮我", "一下", "需要", "服务", "已经", "完成",
    "hello", "world",
)  # fmt: skip
MIN_SENTENCE_MS = 200
"""Voiced runs shorter than this are clicks, not speech."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """A detected sentence: times in ms of the task's audio, and its text."""

    begin_time: int
    end_time: int
    text: str
    confidence: float


def words_for(duration_ms: int, rms: float, zc_rate: float) -> str:
    """A deterministic phrase for a sentence's features."""
    steps = max(1, round(duration_ms / 100))
    loud = max(0, min(7, int((20 * math.log10(max(rms, 1.0)) - 40) // 6)))
    pitch = max(0, min(15, int(zc_rate * 40)))
    count = 2 + steps // 5
    seed = steps * 131 + loud * 17 + pitch * 7
    return "".join(
        VOCABULARY[(seed + i * (pitch + 3) * 11) % len(VOCABULARY)] for i in range(count)
    )


@dataclass(frozen=True, slots=True)
class Onset:
    """A sentence has begun at ``begin_time``; known once ``at_ms`` of audio is processed."""

    begin_time: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Progress:
    """The open sentence as heard so far (its text from the features so far), at ``at_ms``."""

    sentence: Sentence
    at_ms: int


@dataclass(frozen=True, slots=True)
class Closed:
    """A sentence ended; known once ``at_ms`` of audio is processed (its trailing silence)."""

    sentence: Sentence
    at_ms: int


Mark = Onset | Progress | Closed


@dataclass
class SentenceDetector:
    """Feed audio incrementally; collect finished sentences. Times count from the task start."""

    sample_rate: int = 16000
    max_sentence_silence: int = 800
    transcripts: Sequence[str] = ()
    voice_rms: float = VOICE_RMS
    _pending: bytes = b""
    _frame: int = 0  # frames consumed so far
    _begin: int | None = None  # frame index where the open sentence began
    _last_voiced: int = -1
    _rms_sum: float = 0.0
    _zc_sum: float = 0.0
    _voiced: int = 0
    finished: list[Sentence] = field(default_factory=list)
    total_voiced_ms: int = 0
    progress_every_ms: int | None = None
    """Record :class:`Mark` s (onsets, progress at this cadence, closes) for :meth:`take_marks`."""
    _marks: list[Mark] = field(default_factory=list)
    _announced: bool = False
    _last_progress: int = 0  # ms at which the open sentence last reported progress

    def take_marks(self) -> list[Mark]:
        """What happened since the last call, in audio order (with ``progress_every_ms`` set)."""
        marks, self._marks = self._marks, []
        return marks

    @property
    def processed_ms(self) -> int:
        return self._frame * FRAME_MS

    @property
    def open_begin_ms(self) -> int | None:
        """Begin time of a sentence that has started and not yet ended."""
        return None if self._begin is None else self._begin * FRAME_MS

    def feed(self, pcm: bytes) -> list[Sentence]:
        """Consume audio; return the sentences it closed."""
        data = self._pending + pcm
        n = self.sample_rate * FRAME_MS // 1000 * 2
        usable = len(data) - len(data) % n
        self._pending = data[usable:]
        if usable == 0:
            return []
        rms, zc = frame_stats(data[:usable], self.sample_rate)
        voiced = rms > self.voice_rms
        closed: list[Sentence] = []
        gap = self.max_sentence_silence // FRAME_MS
        for i in range(len(rms)):
            index = self._frame + i
            if voiced[i]:
                if self._begin is None:
                    self._begin = index
                    self._rms_sum = self._zc_sum = 0.0
                    self._voiced = 0
                self._last_voiced = index
                self._rms_sum += float(rms[i])
                self._zc_sum += float(zc[i])
                self._voiced += 1
            elif self._begin is not None and index - self._last_voiced >= gap:
                sentence = self._close()
                if sentence is not None:
                    closed.append(sentence)
                    self._mark(Closed(sentence, (index + 1) * FRAME_MS))
                continue
            if self._begin is not None:
                self._progress((index + 1) * FRAME_MS)
        self._frame += len(rms)
        self.finished.extend(closed)
        return closed

    def flush(self) -> list[Sentence]:
        """End of audio: close the open sentence, if any."""
        if self._begin is None:
            return []
        sentence = self._close()
        if sentence is None:
            return []
        self.finished.append(sentence)
        self._mark(Closed(sentence, self.processed_ms))
        return [sentence]

    def _mark(self, mark: Mark) -> None:
        if self.progress_every_ms is not None:
            self._marks.append(mark)

    def _progress(self, at_ms: int) -> None:
        """The open sentence after ``at_ms``: its onset once it is speech, then its progress."""
        assert self._begin is not None
        if self.progress_every_ms is None:
            return
        begin = self._begin * FRAME_MS
        heard = (self._last_voiced + 1) * FRAME_MS
        if not self._announced:
            # A voiced run shorter than MIN_SENTENCE_MS may still be a click: speech once longer.
            if heard - begin >= MIN_SENTENCE_MS:
                self._announced = True
                self._last_progress = at_ms
                self._marks.append(Onset(begin, at_ms))
        elif at_ms - self._last_progress >= self.progress_every_ms:
            self._last_progress = at_ms
            self._marks.append(Progress(self._sentence(begin, heard), at_ms))

    def _close(self) -> Sentence | None:
        assert self._begin is not None
        begin = self._begin * FRAME_MS
        end = (self._last_voiced + 1) * FRAME_MS
        self._begin = None
        self._announced = False
        duration = end - begin
        if duration < MIN_SENTENCE_MS:
            return None
        self.total_voiced_ms += duration
        return self._sentence(begin, end, len(self.finished))

    def _sentence(self, begin: int, end: int, index: int | None = None) -> Sentence:
        """The sentence from ``begin`` to ``end`` by its features so far; ``index`` (of a closed
        sentence) picks a scenario transcript, which an open sentence does not show yet."""
        duration = end - begin
        voiced = self._voiced
        frame_samples = self.sample_rate * FRAME_MS // 1000
        rms = self._rms_sum / max(voiced, 1)
        zc_rate = self._zc_sum / max(voiced, 1) / frame_samples
        if index is not None and index < len(self.transcripts):
            text = self.transcripts[index]
        else:
            text = words_for(duration, rms, zc_rate)
        confidence = round(min(0.99, 0.6 + voiced / max(duration // FRAME_MS, 1) * 0.39), 3)
        return Sentence(begin, end, text, confidence)

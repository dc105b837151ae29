"""One stream's sentence timeline across the tasks that carried it, sans I/O.

A resumed stream runs on several tasks in turn; each new task counts its times from 0 and its
sentence indexes from 1 (docs/protocol.md "Events": SentenceBegin ``index`` from 1, times in ms
of the task's audio). :class:`Timeline` maps every task's events onto the stream:

- times are offset by where the task's audio starts in the stream (``start_task(offset_ms)``);
- indexes are the stream's: sentences do not overlap, so the open sentence is always the one
  after the last delivered;
- a sentence end at or before the last delivered end is one an earlier task delivered: dropped
  (dedupe by audio time), as are begin and partial events of such a sentence;
- a sentence whose begin event went out before a reconnect is not announced a second time.

Replay starts at the last delivered sentence's end, so duplicates should not arise at all; the
dedupe keeps the promise "never twice" should a gateway place a boundary differently.
"""

from __future__ import annotations

from ..protocol import ResultChanged, SentenceBegan, SentenceEnded, Word
from ._results import SentenceEvent

__all__ = ["Timeline"]

_MAX_BEGINS = 16  # begin times remembered per task (sentences do not overlap: one is enough)


class Timeline:
    """Stream times and indexes for the sentence events of successive tasks."""

    __slots__ = ("_announced", "_begins", "delivered", "duplicates", "last_end", "offset_ms")

    def __init__(self) -> None:
        self.offset_ms = 0
        """Where the current task's audio starts in the stream (ms)."""
        self.delivered = 0
        """Sentences delivered so far (the last index)."""
        self.last_end: int | None = None
        """Stream end time of the last delivered sentence."""
        self.duplicates = 0
        self._begins: dict[int, int] = {}  # the current task's index -> stream begin time
        self._announced = False  # a begin event went out for sentence `delivered + 1`

    def start_task(self, offset_ms: int) -> None:
        """A new task starts hearing the stream at ``offset_ms``."""
        self.offset_ms = offset_ms
        self._begins = {}

    def event(self, event: object) -> SentenceEvent | None:
        """The stream's view of a task event; None when it is not shown (repeat, duplicate)."""
        if isinstance(event, SentenceBegan):
            return self._began(event)
        if isinstance(event, ResultChanged):
            return self._changed(event)
        if isinstance(event, SentenceEnded):
            return self._ended(event)
        return None

    def _stale(self, time: int) -> bool:
        """A time inside or before the last delivered sentence: it belongs to that sentence."""
        return self.last_end is not None and time < self.last_end

    def _began(self, event: SentenceBegan) -> SentenceEvent | None:
        time = self.offset_ms + event.time
        if len(self._begins) >= _MAX_BEGINS and event.index not in self._begins:
            # Only the open sentence's begin is ever looked up: a gateway announcing sentences
            # without ending them must not grow this map.
            del self._begins[next(iter(self._begins))]
        self._begins[event.index] = time
        if self._stale(time) or self._announced:
            return None
        self._announced = True
        return SentenceEvent("begin", self.delivered + 1, "", time, time)

    def _changed(self, event: ResultChanged) -> SentenceEvent | None:
        time = self.offset_ms + event.time
        begin = self._begins.get(event.index, time)
        if self._stale(begin):
            return None
        return SentenceEvent(
            "partial",
            self.delivered + 1,
            event.text,
            begin,
            time,
            event.confidence,
            self._words(event.words),
        )

    def _ended(self, event: SentenceEnded) -> SentenceEvent | None:
        end = self.offset_ms + event.end_time
        if self.last_end is not None and end <= self.last_end:
            self.duplicates += 1
            return None
        self.delivered += 1
        self.last_end = end
        self._announced = False
        return SentenceEvent(
            "end",
            self.delivered,
            event.text,
            self.offset_ms + event.begin_time,
            end,
            event.confidence,
            self._words(event.words),
            event.timed_out,
        )

    def _words(self, words: tuple[Word, ...]) -> tuple[Word, ...]:
        if not self.offset_ms:
            return words
        shift = self.offset_ms
        return tuple(Word(w.text, w.start_time + shift, w.end_time + shift) for w in words)

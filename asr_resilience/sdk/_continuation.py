"""A transcription through the official SDK, continued across its attempts.

The SDK never resumes, but nothing in it ties a task to the start of a file: each attempt is a
new ``NlsSpeechTranscriber`` and a new task, and the adapter chooses the audio it sends. So, as
:class:`~asr_resilience.Transcriber` does, an attempt after a failure starts at the end of the
last sentence delivered: the audio before it belongs to sentences the caller has. The new task
counts its times from 0 and its indexes from 1 (docs/protocol.md "Events"), so its sentences are
offset by where its audio starts, numbered on, and one that ends at or before the last delivered
end (heard again) is dropped. Cutting by time needs PCM; other formats start again from the
beginning, and the same dedupe keeps each sentence once.
"""

from __future__ import annotations

from dataclasses import replace

from ..clients._results import SentenceEvent
from ..protocol import Word

__all__ = ["Continuation"]


class Continuation:
    """The sentences delivered so far, and where the next attempt's audio starts."""

    __slots__ = ("_bytes_per_ms", "offset_ms", "sentences")

    def __init__(self, bytes_per_second: int | None) -> None:
        # docs/protocol.md "Audio frames": 16-bit mono PCM, 2 * sample_rate bytes a second;
        # None: a format that cannot be cut by time.
        self._bytes_per_ms = bytes_per_second // 1000 if bytes_per_second else 0
        self.offset_ms = 0
        """Where the next attempt's audio starts (ms): the end of the last delivered sentence."""
        self.sentences: list[SentenceEvent] = []

    @property
    def offset(self) -> int:
        """The next attempt's first byte of audio."""
        return self.offset_ms * self._bytes_per_ms

    def take(self, events: list[SentenceEvent]) -> None:
        """An attempt ended (completed or not): keep its new sentences, on the call's times."""
        shift = self.offset_ms
        for event in events:
            if event.kind != "end":
                continue
            end = event.end_time + shift
            if self.sentences and end <= self.sentences[-1].end_time:
                continue  # heard again by this attempt: delivered already
            self.sentences.append(
                replace(
                    event,
                    index=len(self.sentences) + 1,
                    begin_time=event.begin_time + shift,
                    end_time=end,
                    words=tuple(
                        Word(w.text, w.start_time + shift, w.end_time + shift) for w in event.words
                    ),
                )
            )
        if self._bytes_per_ms and self.sentences:
            self.offset_ms = self.sentences[-1].end_time

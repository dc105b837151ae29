"""Helpers for testing code that uses asr_resilience (public API).

- :func:`no_wait` and :class:`FakeClock`: every retry decision as usual, without real waiting.
- :func:`speech`, :func:`speech_wav`, :func:`write_speech_wav`: audio of N "sentences" (tone
  bursts the simulator's voice detector hears as speech) and the texts the simulator returns
  for them, so a test needs no recording and no ``wave`` code.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
import sys
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ._clock import Clock, enter_no_wait, exit_no_wait
from ._extras import requires_extra


@contextmanager
def no_wait() -> Iterator[None]:
    """Inside this block every decision is the same, but no retry wait sleeps."""
    enter_no_wait()
    try:
        yield
    finally:
        exit_no_wait()


class FakeClock:
    """A clock that only moves when something sleeps on it: deterministic deadlines in tests."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> Clock:
        """A Clock for ``resilient(clock=...)`` and ``retrying(clock=...)``."""
        return Clock(
            monotonic=self.monotonic, wall=self.wall, sleep=self.sleep, async_sleep=self.async_sleep
        )


SENTENCE_GAP_MS = 1000
"""Silence after each sentence: more than the 800 ms that ends one, so each burst is a sentence
(docs/protocol.md "Simulator choices")."""
LEAD_MS = 300
"""Silence before the first sentence, as a microphone's recording starts."""
_AMPLITUDE = 8000
_MAX_SENTENCES = 100


@dataclass(frozen=True, slots=True)
class SpeechSample:
    """Generated speech: ``pcm`` (16-bit mono) and the texts the simulator recognises in it.

    ``texts`` are the sentences a real-time transcription reports (``SentenceEnd`` events, in
    order); ``text`` is what one-sentence recognition (``Recognizer``, ``RestRecognizer``)
    returns for the whole audio. Both hold for the simulator's default sentence silence (800 ms)
    and no ``transcripts`` configured; the real service hears tones, not words.
    """

    pcm: bytes
    sample_rate: int = 16000

    @property
    def wav(self) -> bytes:
        """The audio with a canonical 44-byte RIFF/WAVE header (mono, 16-bit)."""
        rate, size = self.sample_rate, len(self.pcm)
        header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
        header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        return header + b"data" + struct.pack("<I", size) + self.pcm

    @property
    def duration_ms(self) -> int:
        """Length of the audio in milliseconds."""
        return len(self.pcm) * 1000 // (2 * self.sample_rate)

    @property
    def texts(self) -> tuple[str, ...]:
        """The sentences' texts as the simulator recognises them (needs the simulator extra)."""
        with requires_extra("asr_resilience.testing.SpeechSample.texts"):
            from .simulator._engine import SentenceDetector

        detector = SentenceDetector(sample_rate=self.sample_rate)
        detector.feed(self.pcm)
        detector.flush()
        return tuple(sentence.text for sentence in detector.finished)

    @property
    def text(self) -> str:
        """The one-sentence result: the texts joined as the simulator joins them."""
        with requires_extra("asr_resilience.testing.SpeechSample.text"):
            from .simulator._recognition import join_texts

        return join_texts(self.texts)


def speech(sentences: int = 3, *, sample_rate: int = 16000, sentence_ms: int = 800) -> SpeechSample:
    """``sentences`` tone bursts of ``sentence_ms`` each, apart by 1 s of silence.

    The bursts differ in pitch and length, so their texts differ too (see
    :attr:`SpeechSample.texts`). 16-bit mono PCM at ``sample_rate`` (8000 or 16000, the rates
    NLS takes); a burst is 300 ms to 10 s long.
    """
    if not 1 <= sentences <= _MAX_SENTENCES:
        raise ValueError(f"sentences must be 1..{_MAX_SENTENCES}, got {sentences}")
    if sample_rate not in (8000, 16000):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
    if not 300 <= sentence_ms <= 10_000:
        raise ValueError(f"sentence_ms must be 300..10000, got {sentence_ms}")
    samples = array("h", bytes(2 * (sample_rate * LEAD_MS // 1000)))
    gap = array("h", bytes(2 * (sample_rate * SENTENCE_GAP_MS // 1000)))
    for index in range(sentences):
        # Pitch and length vary by sentence: they are what the simulator's words depend on.
        freq = 220.0 * (1 + index % 7)
        ms = sentence_ms + 100 * (index % 3)
        step = 2 * math.pi * freq / sample_rate
        count = sample_rate * ms // 1000
        samples.extend(round(_AMPLITUDE * math.sin(step * n)) for n in range(count))
        samples.extend(gap)
    if sys.byteorder != "little":  # pragma: no cover - PCM is little-endian on the wire
        samples.byteswap()
    return SpeechSample(samples.tobytes(), sample_rate)


def speech_wav(sentences: int = 3, *, sample_rate: int = 16000, sentence_ms: int = 800) -> bytes:
    """:func:`speech` as WAV bytes; ``speech(...).texts`` are what the simulator recognises."""
    return speech(sentences, sample_rate=sample_rate, sentence_ms=sentence_ms).wav


def write_speech_wav(
    path: str | os.PathLike[str],
    sentences: int = 3,
    *,
    sample_rate: int = 16000,
    sentence_ms: int = 800,
) -> SpeechSample:
    """Write :func:`speech` to ``path`` as a WAV file; the sample, for its ``texts``."""
    sample = speech(sentences, sample_rate=sample_rate, sentence_ms=sentence_ms)
    Path(path).write_bytes(sample.wav)
    return sample


__all__ = [
    "FakeClock",
    "SpeechSample",
    "no_wait",
    "speech",
    "speech_wav",
    "write_speech_wav",
]

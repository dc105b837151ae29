"""Synthetic audio for tests: tones that the simulator hears as speech, silence, clicks, WAV.

16-bit little-endian mono PCM, 16 kHz unless told otherwise. A tone of a few hundred ms at an
amplitude of 6000-8000 is a "sentence" to the simulator's voice detector; silence between tones
longer than the sentence silence (800 ms by default) separates sentences.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

RATE = 16000
FRAME_BYTES = 3200
"""100 ms of 16 kHz audio: the real-time pacing of docs/protocol.md "Audio frames"."""


def tone(ms: int, freq: int, amp: int = 8000, rate: int = RATE) -> bytes:
    """A sine tone of ``ms`` milliseconds."""
    n = rate * ms // 1000
    t = np.arange(n, dtype=np.float64) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(ms: int, rate: int = RATE) -> bytes:
    """Digital silence of ``ms`` milliseconds."""
    return bytes(2 * (rate * ms // 1000))


def speech_like(sentences: list[tuple[int, int]], gap_ms: int = 1000) -> bytes:
    """Tones of ``(duration ms, frequency)``, each followed by ``gap_ms`` of silence."""
    return b"".join(tone(ms, freq) + silence(gap_ms) for ms, freq in sentences)


def clicks(count: int = 3, click_ms: int = 50, gap_ms: int = 1000, amp: int = 8000) -> bytes:
    """Short loud bursts apart by more than the sentence silence: voiced, yet each too short
    to be a sentence (noise, not speech)."""
    return b"".join(tone(click_ms, 1000, amp) + silence(gap_ms) for _ in range(count))


def wav(pcm: bytes, rate: int = RATE) -> bytes:
    """``pcm`` with a canonical 44-byte RIFF/WAVE header (mono, 16-bit)."""
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(pcm))
    return header + pcm


def frames(audio: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """``audio`` cut into frames of ``size`` bytes (the last one may be shorter)."""
    for start in range(0, len(audio), size):
        yield audio[start : start + size]

"""Generated audio for the demo: tones shaped like speech (syllables, pauses), and silence.

Nothing is downloaded: each "sentence" is a run of syllables (amplitude-enveloped tones around a
pitch), so the simulator's voice detector hears sentences where a listener would.
"""

from __future__ import annotations

import struct

import numpy as np

RATE = 16000


def silence(ms: int, rate: int = RATE) -> bytes:
    """Digital silence."""
    return bytes(2 * (rate * ms // 1000))


def sentence(ms: int, pitch: float, rate: int = RATE, amp: float = 7000.0) -> bytes:
    """``ms`` of speech-like sound: syllables of ~200 ms with a smooth envelope, no gaps."""
    n = rate * ms // 1000
    t = np.arange(n, dtype=np.float64) / rate
    syllables = 0.6 + 0.4 * np.abs(np.sin(np.pi * t / 0.2))  # 5 syllables a second
    vibrato = 1.0 + 0.02 * np.sin(2 * np.pi * 5 * t)
    wave = amp * syllables * np.sin(2 * np.pi * pitch * vibrato * t)
    return wave.astype("<i2").tobytes()


def speech(sentences: list[tuple[int, float]], gap_ms: int = 1000, lead_ms: int = 300) -> bytes:
    """Sentences of ``(ms, pitch)`` separated by ``gap_ms`` of silence."""
    parts = [silence(lead_ms)]
    for ms, pitch in sentences:
        parts += [sentence(ms, pitch), silence(gap_ms)]
    return b"".join(parts)


def recording(seconds: int, seed: int = 7) -> bytes:
    """A longer recording: sentences of 1–3 s with pauses, about ``seconds`` long."""
    rng = np.random.default_rng(seed)
    plan: list[tuple[int, float]] = []
    total = 300
    while total < seconds * 1000:
        ms = int(rng.integers(10, 30)) * 100
        plan.append((ms, float(rng.choice([140.0, 180.0, 220.0, 260.0, 320.0]))))
        total += ms + 1000
    return speech(plan)


def wav(pcm: bytes, rate: int = RATE) -> bytes:
    """``pcm`` in a canonical 44-byte WAV header."""
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm

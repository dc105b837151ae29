"""Shared pieces of the load benchmarks: audio, policies, a counting token provider."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import asr_resilience as ar
from asr_resilience.tokens import Token

RATE = 16000


def tone_audio(ms: int = 300, freq: float = 440.0, amp: int = 7000) -> bytes:
    """``ms`` of a tone: one short sentence of 16 kHz 16-bit mono PCM."""
    n = RATE * ms // 1000
    return b"".join(
        int(amp * math.sin(2 * math.pi * freq * i / RATE)).to_bytes(2, "little", signed=True)
        for i in range(n)
    )


def policy(body: str, name: str) -> ar.Policy:
    """A policy extending the default with ``body`` (YAML), written to a temporary file."""
    folder = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    path = folder / f"{name}.yaml"
    path.write_text(f"version: 1\nextends: default\nname: {name}\n{body}", encoding="utf-8")
    return ar.load_policy(path)


class SimTokens:
    """A provider that issues real simulator tokens and counts its calls."""

    def __init__(self, issue: object) -> None:
        self._issue = issue
        self.calls = 0

    def __call__(self) -> Token:
        self.calls += 1
        value = self._issue()  # type: ignore[operator]
        assert isinstance(value, str)
        return Token(value)

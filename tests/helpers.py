"""Policies and small fakes for the resilient-call tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import asr_resilience as ar
from asr_resilience.tokens import Token

_counter = itertools.count()


def write_policy(tmp_path: Path, body: str, *, extends: str = "default") -> ar.Policy:
    """A policy file extending ``extends`` with ``body``, loaded."""
    path = tmp_path / f"policy{next(_counter)}.yaml"
    path.write_text(f"version: 1\nextends: {extends}\n{body}", encoding="utf-8")
    return ar.load_policy(path)


class CountingProvider:
    """A token provider that hands out tok-1, tok-2, ... and counts its calls."""

    def __init__(self, expires_at: float | None = None) -> None:
        self.calls = 0
        self.expires_at = expires_at

    def __call__(self) -> Token:
        self.calls += 1
        return Token(f"secret-token-{self.calls:04d}", self.expires_at)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Re-check ``condition`` every few milliseconds until it holds; fail after ``timeout``.

    Only for state that gives no notification to wait on (leases in Redis, a limiter's queue
    joined from other threads, a stream's inbox filling up); the gateway's slots have
    ``SimulatorStats.wait_slots``.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)

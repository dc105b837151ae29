"""Overhead of a successful call: bare, tenacity, stamina, backoff, asr_resilience.

Each wrapper is set up as a user would for the happy path; the number is microseconds per call,
the best of several repeats (the minimum is the least noisy estimate of the cost itself).
asr_resilience runs with the shipped default policy (retry budget and circuit breaker on) and a
TokenManager that fills the ``token`` keyword.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import backoff
import stamina
import tenacity

import asr_resilience as ar

N = 50_000
REPEATS = 7


def _sync_funcs() -> dict[str, Callable[[], Any]]:
    def bare(*, token: str = "") -> int:
        return 1

    @tenacity.retry(stop=tenacity.stop_after_attempt(5), wait=tenacity.wait_random_exponential())
    def with_tenacity(*, token: str = "") -> int:
        return 1

    @stamina.retry(on=ConnectionError, attempts=5)
    def with_stamina(*, token: str = "") -> int:
        return 1

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=5)
    def with_backoff(*, token: str = "") -> int:
        return 1

    tokens = ar.TokenManager(ar.StaticToken("bench-token-value"))

    @ar.resilient("default", tokens=tokens, scope="bench-overhead-sync")
    def with_ar(*, token: str = "") -> int:
        return 1

    return {
        "bare": bare,
        "tenacity": with_tenacity,
        "stamina": with_stamina,
        "backoff": with_backoff,
        "asr_resilience": with_ar,
    }


def _async_funcs() -> dict[str, Callable[[], Awaitable[Any]]]:
    async def bare(*, token: str = "") -> int:
        return 1

    @tenacity.retry(stop=tenacity.stop_after_attempt(5), wait=tenacity.wait_random_exponential())
    async def with_tenacity(*, token: str = "") -> int:
        return 1

    @stamina.retry(on=ConnectionError, attempts=5)
    async def with_stamina(*, token: str = "") -> int:
        return 1

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=5)
    async def with_backoff(*, token: str = "") -> int:
        return 1

    tokens = ar.TokenManager(ar.StaticToken("bench-token-value"))

    @ar.resilient("default", tokens=tokens, scope="bench-overhead-async")
    async def with_ar(*, token: str = "") -> int:
        return 1

    return {
        "bare": bare,
        "tenacity": with_tenacity,
        "stamina": with_stamina,
        "backoff": with_backoff,
        "asr_resilience": with_ar,
    }


def _time_sync(fn: Callable[[], Any], n: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


async def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def run(n: int = N) -> dict[str, dict[str, float]]:
    """Microseconds per successful call, sync and async, per wrapper."""
    stamina.set_active(True)
    sync = {name: round(_time_sync(fn, n), 3) for name, fn in _sync_funcs().items()}

    async def all_async() -> dict[str, float]:
        funcs = _async_funcs()
        return {name: round(await _time_async(fn, n), 3) for name, fn in funcs.items()}

    return {"sync": sync, "async": asyncio.run(all_async())}


def main() -> None:
    results = run()
    for mode, row in results.items():
        added = row["asr_resilience"] - row["bare"]
        cells = "  ".join(f"{k}={v:.2f}" for k, v in row.items())
        print(f"{mode:5}  {cells}  (asr_resilience adds {added:.2f} µs)")


if __name__ == "__main__":
    main()

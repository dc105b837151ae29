"""Finding an unknown quota: 200 calls at concurrency 50 against an account quota of 10.

The simulator holds every session for a fixed service time S, so no schedule can finish faster
than the physical limit 200 / 10 × S. Completion runs from the first call's start to the last
call's end. asr_resilience runs with adaptive concurrency on (default settings) and is never
told the quota; plain tenacity retries 40000005 with exponential jitter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tenacity

import asr_resilience as ar
from asr_resilience.simulator import Account, Simulator, SimulatorConfig

from .common import policy, tone_audio

CALLS = 200
CONCURRENCY = 50
QUOTA = 10
SERVICE_TIME = 0.2


async def _run(kind: str) -> dict[str, float]:
    account = Account(name="bench", appkeys=("bench-appkey",), quota=QUOTA)
    config = SimulatorConfig(service_time=SERVICE_TIME)
    async with Simulator(accounts=[account], config=config) as sim:
        token = sim.token()
        audio = tone_audio(300)
        if kind == "asr_resilience":
            pol = policy("concurrency: {adaptive: true}\n", "bench-quota")
        else:
            pol = policy(
                "retry_budget: {enabled: false}\ncircuit_breaker: {enabled: false}\n"
                "defaults: {max_attempts: 1}\n",
                "bench-quota-single",
            )
        recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, token, pol, scope=f"quota-{kind}")
        call: Callable[[bytes], Awaitable[ar.clients.Recognition]]
        if kind == "tenacity":
            call = tenacity.retry(
                retry=tenacity.retry_if_exception(
                    lambda e: isinstance(e.__cause__, ar.NlsError) and e.__cause__.code == 40000005
                ),
                wait=tenacity.wait_random_exponential(multiplier=0.1, max=5.0),
                stop=tenacity.stop_after_attempt(50),
                reraise=True,
            )(recognizer.recognize)
        else:
            call = recognizer.recognize
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> Any:
            async with gate:
                return await call(audio)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(CALLS)))
        elapsed = time.perf_counter() - start
        stats = sim.stats.snapshot()
    limit = CALLS / QUOTA * SERVICE_TIME
    return {
        "completion_ratio": round(elapsed / limit, 3),
        "throttled_per_call": round(stats["throttled"] / CALLS, 3),
        "completion_s": round(elapsed, 3),
    }


def run() -> dict[str, Any]:
    """Both contenders, side by side, and the physical limit."""
    return {
        "physical_limit_s": CALLS / QUOTA * SERVICE_TIME,
        "asr_resilience": asyncio.run(_run("asr_resilience")),
        "tenacity": asyncio.run(_run("tenacity")),
    }


if __name__ == "__main__":
    print(run())

"""An outage: 2000 calls from 50 concurrent callers while the gateway answers 100% 50000000.

Counts the attempts that reached the gateway per call. asr_resilience runs the default policy
(retry budget and circuit breaker as shipped); tenacity retries every failure up to 5 attempts.
Waits are shortened for both (the question is how many attempts, not how long they wait).
"""

from __future__ import annotations

import asyncio
from typing import Any

import tenacity

import asr_resilience as ar
from asr_resilience.simulator import Account, Fault, Scenario, Simulator

from .common import policy, tone_audio

CALLS = 2000
CONCURRENCY = 50


async def _run(kind: str) -> dict[str, float]:
    account = Account(name="outage", appkeys=("outage-appkey",), quota=1000)
    scenario = Scenario([Fault("code", "start", code=50000000)])
    async with Simulator(accounts=[account], scenario=scenario) as sim:
        token = sim.token()
        audio = tone_audio(200)
        if kind == "asr_resilience":
            pol = policy("defaults: {backoff: {initial: 5ms, max: 50ms}}\n", "bench-outage")
            call = ar.Recognizer(sim.gateway_url, sim.appkey, token, pol, scope="outage").recognize
        else:
            single = policy(
                "retry_budget: {enabled: false}\ncircuit_breaker: {enabled: false}\n"
                "defaults: {max_attempts: 1}\n",
                "bench-outage-single",
            )
            recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, token, single, scope="t")
            call = tenacity.retry(
                wait=tenacity.wait_random_exponential(multiplier=0.005, max=0.05),
                stop=tenacity.stop_after_attempt(5),
                reraise=True,
            )(recognizer.recognize)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> Any:
            async with gate:
                try:
                    return await call(audio)
                except ar.ResilienceError:
                    return None

        await asyncio.gather(*(one() for _ in range(CALLS)))
        attempts = sim.stats.snapshot()["failed"].get(50000000, 0)
    return {"attempts_per_call": round(attempts / CALLS, 3)}


def run() -> dict[str, Any]:
    return {
        "asr_resilience": asyncio.run(_run("asr_resilience")),
        "tenacity": asyncio.run(_run("tenacity")),
    }


if __name__ == "__main__":
    print(run())

"""An outage: the gateway answers 100% 50000000.

* :func:`run`: 2000 calls from 50 concurrent callers during the outage. Counts the attempts that
  reached the gateway per call. asr_resilience runs the default policy (retry budget and circuit
  breaker as shipped); tenacity retries every failure up to 5 attempts. Waits are shortened for
  both (the question is how many attempts, not how long they wait).
* :func:`recovery`: 50 callers call on (10 ms apart after a failure) through an outage of
  ``OUTAGE`` seconds that then ends, with the breaker's ``open_for`` at ``OPEN_FOR``. Figures:
  seconds from the end of the outage to the first success (goal: within ``open_for`` + 1 s),
  and the sessions that reached the gateway while the breaker was not closed, against the
  probes it let through (goal: equal).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import tenacity

import asr_resilience as ar
from asr_resilience.limits import BreakerState, get_scope
from asr_resilience.simulator import Account, Fault, Scenario, Simulator

from .common import policy, tone_audio

CALLS = 2000
CONCURRENCY = 50
OUTAGE = 4.0
OPEN_FOR = 2.0


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


async def _recovery() -> dict[str, Any]:
    account = Account(name="recovery", appkeys=("recovery-appkey",), quota=1000)
    scenario = Scenario([Fault("code", "start", code=50000000)])
    async with Simulator(accounts=[account], scenario=scenario) as sim:
        pol = policy(
            f"circuit_breaker: {{open_for: {OPEN_FOR}s}}\n"
            "defaults: {backoff: {initial: 5ms, max: 50ms}}\n",
            "bench-recovery",
        )
        scope = f"recovery-{time.monotonic_ns()}"
        opened: list[int] = []  # gateway connections when the breaker left "closed"
        closed: list[int] = []  # ... and when it closed again
        probes = 0

        def changed(old: BreakerState, new: BreakerState) -> None:
            nonlocal probes
            if old == "closed":
                opened.append(sim.stats.connections)
            if new == "closed":
                closed.append(sim.stats.connections)
            if new == "half_open":
                probes += 1

        get_scope(scope, pol, on_breaker_change=changed)  # the recognizer's scope from here on
        recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, sim.token(), pol, scope=scope)
        audio = tone_audio(200)
        ended_at: float | None = None
        first_success: float | None = None
        succeeded = asyncio.Event()
        running = True

        async def caller() -> None:
            nonlocal first_success
            while running:
                try:
                    await recognizer.recognize(audio)
                except ar.ResilienceError:
                    await asyncio.sleep(0.01)
                    continue
                if ended_at is not None and first_success is None:
                    first_success = time.perf_counter()
                    succeeded.set()

        callers = [asyncio.create_task(caller()) for _ in range(CONCURRENCY)]
        await asyncio.sleep(OUTAGE)
        opened_before_end = bool(opened)
        sim.set_scenario(None)
        ended_at = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # no success: reported as None
            await asyncio.wait_for(succeeded.wait(), OPEN_FOR + 10)
        running = False
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
    while_open = (closed[0] if closed else sim.stats.connections) - opened[0] if opened else None
    return {
        "open_for_s": OPEN_FOR,
        "breaker_opened": opened_before_end,
        "first_success_after_s": None
        if first_success is None
        else round(first_success - ended_at, 3),
        "gateway_sessions_while_open": while_open,
        "probes": probes,
    }


def recovery() -> dict[str, Any]:
    """Recovery after an outage ends (asr_resilience's breaker)."""
    return asyncio.run(_recovery())


def run() -> dict[str, Any]:
    return {
        "asr_resilience": asyncio.run(_run("asr_resilience")),
        "tenacity": asyncio.run(_run("tenacity")),
    }


if __name__ == "__main__":
    print(run())
    print(recovery())

"""Finding an unknown quota, and following it when it moves.

* :func:`run`: 200 calls at concurrency 50 against an account quota of 10. The simulator holds
  every session for a fixed service time S, so no schedule can finish faster than the physical
  limit 200 / 10 × S. Completion runs from the first call's start to the last call's end.
* :func:`follow`: 50 callers call without pause while the account's quota moves 10 -> 5 -> 10
  (``PHASES``). Per change: seconds until the client follows (the limiter's slots reach the
  new quota; for a rise, also the gateway holding the new quota's sessions again), and per
  phase the throttled answers per call and the sessions completed over what the quota allows.

asr_resilience runs with adaptive concurrency on (default settings) and is never told the
quota; plain tenacity retries 40000005 with exponential jitter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tenacity

import asr_resilience as ar
from asr_resilience.limits import AdaptiveLimiter, get_scope
from asr_resilience.simulator import Account, Simulator, SimulatorConfig

from .common import policy, tone_audio

CALLS = 200
CONCURRENCY = 50
QUOTA = 10
SERVICE_TIME = 0.2
PHASES = ((10, 4.0), (5, 6.0), (10, 8.0))
"""The moving quota: (quota, seconds) in turn."""
_SAMPLE = 0.005


def _contender(
    kind: str, sim: Simulator, scope: str
) -> tuple[Callable[[bytes], Awaitable[ar.clients.Recognition]], AdaptiveLimiter | None]:
    """The call to make (and the limiter it learns with, for asr_resilience)."""
    token = sim.token()
    if kind == "asr_resilience":
        pol = policy("concurrency: {adaptive: true}\n", "bench-quota")
    else:
        pol = policy(
            "retry_budget: {enabled: false}\ncircuit_breaker: {enabled: false}\n"
            "defaults: {max_attempts: 1}\n",
            "bench-quota-single",
        )
    recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, token, pol, scope=scope)
    if kind == "asr_resilience":
        limiter = get_scope(scope, pol).limiter
        assert isinstance(limiter, AdaptiveLimiter)
        return recognizer.recognize, limiter
    call = tenacity.retry(
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e.__cause__, ar.NlsError) and e.__cause__.code == 40000005
        ),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5.0),
        stop=tenacity.stop_after_attempt(50),
        reraise=True,
    )(recognizer.recognize)
    return call, None


async def _run(kind: str) -> dict[str, float]:
    account = Account(name="bench", appkeys=("bench-appkey",), quota=QUOTA)
    config = SimulatorConfig(service_time=SERVICE_TIME)
    async with Simulator(accounts=[account], config=config) as sim:
        audio = tone_audio(300)
        call, _ = _contender(kind, sim, f"quota-{kind}-{time.monotonic_ns()}")
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


async def _follow(kind: str) -> dict[str, Any]:
    first = PHASES[0][0]
    account = Account(name="follow", appkeys=("follow-appkey",), quota=first)
    config = SimulatorConfig(service_time=SERVICE_TIME)
    async with Simulator(accounts=[account], config=config) as sim:
        audio = tone_audio(300)
        call, limiter = _contender(kind, sim, f"follow-{kind}-{time.monotonic_ns()}")
        done = 0
        running = True

        async def caller() -> None:
            nonlocal done
            while running:
                try:
                    await call(audio)
                    done += 1
                except ar.ResilienceError:
                    pass  # tenacity gave up after 50 attempts: the caller goes on

        callers = [asyncio.create_task(caller()) for _ in range(CONCURRENCY)]
        phases: list[dict[str, Any]] = []
        previous = first
        for quota, seconds in PHASES:
            sim.store.set_quota(account.name, quota)
            began = time.perf_counter()
            throttled, completed = sim.stats.throttled, done
            slots_at: float | None = None
            gateway_at: float | None = None
            while (now := time.perf_counter()) - began < seconds:
                held = sim.stats.concurrent.get(account.name, 0)
                slots = limiter.slots if limiter is not None else None
                lower = quota < previous
                if (
                    slots_at is None
                    and slots is not None
                    and ((lower and slots <= quota) or (not lower and slots >= quota))
                ):
                    slots_at = now - began
                if gateway_at is None and quota > previous and held >= quota:
                    gateway_at = now - began
                await asyncio.sleep(_SAMPLE)
            calls = done - completed
            phases.append(
                {
                    "quota": quota,
                    "seconds": seconds,
                    "limiter_followed_s": None if slots_at is None else round(slots_at, 3),
                    "gateway_full_s": None if gateway_at is None else round(gateway_at, 3),
                    "throttled_per_call": round(
                        (sim.stats.throttled - throttled) / max(1, calls), 3
                    ),
                    "use_of_quota": round(calls * SERVICE_TIME / (quota * seconds), 3),
                }
            )
            previous = quota
        running = False
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
    return {"phases": phases}


def run() -> dict[str, Any]:
    """Both contenders, side by side, and the physical limit."""
    return {
        "physical_limit_s": CALLS / QUOTA * SERVICE_TIME,
        "asr_resilience": asyncio.run(_run("asr_resilience")),
        "tenacity": asyncio.run(_run("tenacity")),
    }


def follow() -> dict[str, Any]:
    """Both contenders while the quota moves ``PHASES``."""
    return {
        "asr_resilience": asyncio.run(_follow("asr_resilience")),
        "tenacity": asyncio.run(_follow("tenacity")),
    }


def follow_table(results: dict[str, Any]) -> str:
    """The human-readable summary of :func:`follow`."""
    moves = " -> ".join(str(quota) for quota, _ in PHASES)
    lines = [f"quota moving {moves} (50 callers, {SERVICE_TIME} s per session)"]
    for who in ("asr_resilience", "tenacity"):
        cells = []
        for phase in results[who]["phases"]:
            followed = phase["limiter_followed_s"]
            gateway = phase["gateway_full_s"]
            cell = f"[{phase['quota']}] use {phase['use_of_quota']:.2f} "
            cell += f"thr/call {phase['throttled_per_call']:.3f}"
            if followed is not None:
                cell += f" limit in {followed:.2f}s"
            if gateway is not None:
                cell += f" full in {gateway:.2f}s"
            cells.append(cell)
        lines.append(f"  {who:15} " + " | ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
    print(follow_table(follow()))

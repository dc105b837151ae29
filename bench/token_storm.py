"""A token storm: 1000 concurrent calls in flight when the server revokes their token.

The simulator revokes the shared token as the first session starts; every call that presents it
afterwards gets 40000001. Counts the provider calls the refresh caused (goal: 1).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asr_resilience as ar
from asr_resilience.simulator import Account, Fault, Scenario, Simulator, SimulatorConfig

from .common import SimTokens, tone_audio

CALLS = 1000


async def _run() -> dict[str, Any]:
    account = Account(name="storm", appkeys=("storm-appkey",), quota=5000)
    scenario = Scenario([Fault("revoke_token", "start", sessions=(1,))])
    async with Simulator(
        accounts=[account], scenario=scenario, config=SimulatorConfig(service_time=0.05)
    ) as sim:
        provider = SimTokens(sim.token)
        tokens = ar.TokenManager(provider)
        await tokens.get()
        before = provider.calls
        recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, tokens, "default", scope="storm")
        audio = tone_audio(200)
        results = await asyncio.gather(
            *(recognizer.recognize(audio) for _ in range(CALLS)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        rejected = sim.stats.snapshot()["failed"].get(40000001, 0)
    return {
        "provider_calls": provider.calls - before,
        "calls": CALLS,
        "rejected_with_40000001": rejected,
        "failed_calls": len(failures),
    }


def run() -> dict[str, Any]:
    return asyncio.run(_run())


if __name__ == "__main__":
    print(run())

"""Streams hold their concurrency slot for the life of each leg, under a local or a fleet quota.

A stream leg is a response that lasts as long as its audio (STYLE.md §17): its attempt keeps the
scope's permit until the leg closes, and a resumed leg is a new attempt that queues for a new
one. The judge is the simulator's own count of the account's concurrent sessions, and its count
of 40000005 answers (a quota the client overran).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asr_resilience.clients import StreamEvent, Transcriber
from asr_resilience.limits import get_scope
from asr_resilience.limits._limiter import Limiter
from asr_resilience.policy import Policy
from asr_resilience.simulator import Account, Fault, Simulator

from . import fleet_support as fs
from .audio_fixtures import speech_like
from .helpers import until, write_policy
from .streaming_support import Collector, chunks, ends, reconnects, run

QUOTA = 2
SCOPE = "small-account"
# Three sentences (4.6 s of audio), sent unpaced: a stream takes a moment, not seconds.
AUDIO = speech_like([(500, 300), (700, 500), (600, 700)])
EVERY_SENTENCE = [1, 2, 3]
TOO_MANY_REQUESTS = 40000005

redis_url = pytest.fixture(fs.redis_url)
prefix = pytest.fixture(fs.prefix)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """One account with two appkeys and a quota of two concurrent sessions."""
    account = Account(name="small", appkeys=("small-a", "small-b"), quota=QUOTA)
    async with Simulator(accounts=[account]) as simulator:
        yield simulator


@pytest.fixture(params=["local", "fleet"])
def policy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Policy]:
    """A limit of two: the process's adaptive limiter, or the fleet's quota in Redis."""
    if request.param == "local":
        yield write_policy(tmp_path, "concurrency: {adaptive: true, initial: 2, max: 2}\n")
        return
    fs.require_redis_py()
    from asr_resilience.fleet import close_shared_connections

    url = request.getfixturevalue("redis_url")
    key_prefix = request.getfixturevalue("prefix")
    try:
        yield write_policy(
            tmp_path,
            f"fleet: {{enabled: true, redis_url: '{url}', key_prefix: '{key_prefix}', "
            f"quota: {QUOTA}, lease_ttl: 5s}}\n",
        )
    finally:
        from asr_resilience.limits import reset_scopes

        reset_scopes()  # the fleet limiter gives its leases back and stops renewing
        close_shared_connections()


def stream(sim: Simulator, policy: Policy, appkey: str) -> Transcriber:
    """A Transcriber on one of the account's appkeys, in the account-wide scope."""
    return Transcriber(
        sim.gateway_url,
        appkey,
        sim.token("small"),
        policy,
        scope=SCOPE,
        replay_speed=None,  # the simulator has no pacing
        stop_timeout=5.0,
    )


def limiter(policy: Policy) -> Limiter:
    """The scope's limiter (the one every stream here settles with)."""
    scope_limiter = get_scope(SCOPE, policy).limiter
    assert scope_limiter is not None
    return scope_limiter


async def assert_settled(sim: Simulator, policy: Policy) -> None:
    """Nothing leaked: no permit in flight, no session open at the gateway."""
    scope_limiter = limiter(policy)
    assert scope_limiter.in_flight == 0
    assert scope_limiter.stats()["waiting"] == 0
    fleet_stats = getattr(scope_limiter, "fleet_stats", None)
    if fleet_stats is not None:
        # The limiter's worker thread hands the leases back to Redis shortly after the release.
        await until(lambda: fleet_stats()["in_flight"] == 0, "the fleet's leases in Redis")
    await sim.stats.wait_slots(lambda slots: slots.get("small", 0) == 0, timeout=10.0)


def indexes(events: list[StreamEvent]) -> list[int]:
    """The indexes of the sentences a stream delivered, in order."""
    return [event.index for event in ends(events)]


def assert_within_quota(sim: Simulator) -> None:
    stats = sim.stats.snapshot()
    assert stats["max_concurrent"]["small"] <= QUOTA, stats
    assert stats["failed"].get(TOO_MANY_REQUESTS, 0) == 0, stats
    assert stats["throttled"] == 0, stats


async def test_four_streams_share_two_slots(sim: Simulator, policy: Policy) -> None:
    """Two groups of two streams, one quota of two: never a third session, never a 40000005."""
    group_a = [stream(sim, policy, "small-a") for _ in range(2)]
    group_b = [stream(sim, policy, "small-b") for _ in range(2)]
    results = await asyncio.gather(*(run(t, AUDIO) for t in group_a + group_b))
    assert [indexes(events) for events in results] == [EVERY_SENTENCE] * 4
    assert all(not reconnects(events) for events in results)
    assert_within_quota(sim)
    assert sim.stats.sessions_completed == 4
    await assert_settled(sim, policy)


async def test_a_resumed_leg_takes_a_new_slot(sim: Simulator, policy: Policy) -> None:
    """A dropped leg gives its slot back; the resumed leg holds a new one until it closes."""
    sim.set_scenario([Fault("close", "audio", after_ms=1900, sessions=(1,))])
    first, second = stream(sim, policy, "small-a"), stream(sim, policy, "small-b")
    async with first, second:  # sessions 1 and 2: both slots taken
        events = Collector(first)
        await first.send_all(chunks(AUDIO, 0, 2500), realtime=False)
        await events.wait_for("reconnect")  # session 1 dropped at 1.9 s; session 3 took over
        # Two more streams while both legs are up: they must queue for a slot.
        later = [stream(sim, policy, key) for key in ("small-a", "small-b")]
        waiting = [asyncio.create_task(run(t, AUDIO)) for t in later]
        try:
            await until(lambda: limiter(policy).stats()["waiting"] == 2, "two streams queued")
            assert sim.stats.connections == 3  # the queued streams have not reached the gateway
            await first.send_all(chunks(AUDIO, 2500), realtime=False)
            await first.finish()
            await second.send_all(chunks(AUDIO), realtime=False)
            await second.finish()
        except BaseException:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            raise
    results = [await task for task in waiting]
    resumed = await events.done()
    assert indexes(resumed) == EVERY_SENTENCE  # none lost, none twice across the resume
    assert len(reconnects(resumed)) == 1
    assert [indexes(r) for r in results] == [EVERY_SENTENCE] * 2
    assert_within_quota(sim)
    await assert_settled(sim, policy)

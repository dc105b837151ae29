"""The fleet behind Redis Sentinel (``redis+sentinel://``): one master, one sentinel, on loopback.

The client asks the sentinel where the master is on every new connection; the master going away
is an outage like any other, and the fleet is back on it when it answers again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import fleet_support as fs

fs.require_redis_py()

from asr_resilience.fleet import FleetConnection, FleetLimiter, RedisTokenCache  # noqa: E402

from .helpers import CountingProvider  # noqa: E402
from .redis_topologies import SentinelServers  # noqa: E402

events = pytest.fixture(fs.events)


@pytest.fixture
def connection(redis_sentinel: SentinelServers) -> Iterator[FleetConnection]:
    """A connection of the test's own, through the session's sentinel."""
    conn = FleetConnection.from_url(redis_sentinel.url, probe_interval=0.05)
    yield conn
    conn.close()


def test_limiter_and_token_work_through_the_sentinel(
    connection: FleetConnection, redis_sentinel: SentinelServers
) -> None:
    """Quota 2 holds, leases live on the master the sentinel names, the token is shared."""
    prefix = f"asr-test:{uuid.uuid4().hex}:"
    assert connection.label == f"sentinel:127.0.0.1:{redis_sentinel.sentinel.port}/fleet/0"
    limiter = FleetLimiter(connection, f"{prefix}limiter:{{acct}}", quota=2, lease_ttl=5)
    try:
        permits = [limiter.acquire_sync(timeout=5) for _ in range(2)]
        assert all(p is not None for p in permits)
        assert limiter.acquire_sync(timeout=0.05) is None
        assert limiter.fleet_stats()["in_flight"] == 2
        for permit in permits:
            assert permit is not None
            permit.release("success")
        provider = CountingProvider()
        first, second = (
            RedisTokenCache(provider, connection=connection, key_prefix=prefix, name="tok")
            for _ in range(2)
        )
        assert first.get_sync() == second.get_sync()
        assert provider.calls == 1
        assert connection.outages == 0
    finally:
        limiter.close()
        fs.delete_prefix(f"redis://127.0.0.1:{redis_sentinel.master.port}/0", prefix)


def test_master_restart_is_an_outage_the_fleet_recovers_from(
    connection: FleetConnection, redis_sentinel: SentinelServers, events: list[str]
) -> None:
    """The master killed: calls go local; started again: the fleet re-registers and admits."""
    prefix = f"asr-test:{uuid.uuid4().hex}:"
    # fallback_share 1: the whole quota locally, the held fleet permit counting in it.
    key = f"{prefix}limiter:{{acct}}"
    limiter = FleetLimiter(connection, key, quota=2, lease_ttl=5, fallback_share=1.0)
    try:
        held = limiter.acquire_sync(timeout=5)
        assert held is not None
        assert limiter.stats()["admitting"] == 1
        redis_sentinel.master.kill()
        local = limiter.acquire_sync(timeout=5)  # the worker finds Redis gone: a local slot
        assert local is not None
        fs.wait_until(lambda: not connection.healthy, what="the outage to be noticed")
        redis_sentinel.master.start()  # empty: as after a crash
        fs.wait_until(lambda: limiter.stats()["admitting"] == 1, timeout=15, what="fleet again")
        # Both calls still in flight are leases on the restarted master.
        assert limiter.fleet_stats()["in_flight"] == 2
        assert events.count("asr_resilience.fleet_recovered") >= 1
        held.release("success")
        local.release("success")
        fs.wait_until(lambda: limiter.fleet_stats()["in_flight"] == 0, what="leases back")
    finally:
        limiter.close()
        redis_sentinel.master.ensure_running()  # for the session's other tests
        fs.delete_prefix(f"redis://127.0.0.1:{redis_sentinel.master.port}/0", prefix)


def test_failover_to_the_replica_is_an_outage_the_fleet_recovers_from(
    tmp_path: Path, events: list[str]
) -> None:
    """The master killed, the sentinel promotes its replica: the fleet is back on the new master
    with every call still in flight counted there."""
    servers = SentinelServers(tmp_path, replica=True)
    servers.start()
    assert servers.replica is not None
    connection = FleetConnection.from_url(servers.url, probe_interval=0.05)
    key = f"asr-test:{uuid.uuid4().hex}:limiter:{{acct}}"
    limiter = FleetLimiter(connection, key, quota=2, lease_ttl=5, fallback_share=1.0)
    try:
        held = limiter.acquire_sync(timeout=5)
        assert held is not None
        servers.master.kill()
        local = limiter.acquire_sync(timeout=5)  # Redis gone: a local slot
        assert local is not None
        fs.wait_until(
            lambda: servers.master_port() == servers.replica.port,  # type: ignore[union-attr]
            timeout=30,
            what="the sentinel to promote the replica",
        )
        fs.wait_until(lambda: limiter.stats()["admitting"] == 1, timeout=30, what="fleet again")
        assert limiter.fleet_stats()["in_flight"] == 2  # both calls are leases on the new master
        assert events.count("asr_resilience.fleet_recovered") >= 1
        held.release("success")
        local.release("success")
        fs.wait_until(lambda: limiter.fleet_stats()["in_flight"] == 0, what="leases back")
    finally:
        limiter.close()
        connection.close()
        servers.stop()

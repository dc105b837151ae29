"""The fleet on a real 3-master Redis Cluster (``redis+cluster://``), started by the tests.

Every multi-key script of a component runs on the node of its keys' one hash slot; scripts in
pipelines go as EVAL; a node that restarts empty (its script cache too) is an outage the fleet
falls back through and recovers from.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from . import fleet_support as fs

fs.require_redis_py()

from redis.cluster import RedisCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from asr_resilience.fleet import (  # noqa: E402
    FleetConnection,
    FleetLimiter,
    RedisTokenCache,
)
from asr_resilience.policy._model import FleetSettings  # noqa: E402

from .helpers import CountingProvider  # noqa: E402
from .redis_topologies import ClusterServers  # noqa: E402

events = pytest.fixture(fs.events)


@pytest.fixture
def connection(redis_cluster: ClusterServers) -> Iterator[FleetConnection]:
    """A connection of the test's own to the session's cluster."""
    conn = FleetConnection.from_url(redis_cluster.url, probe_interval=0.05)
    yield conn
    conn.close()


@pytest.fixture
def prefix(connection: FleetConnection) -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted from every master afterwards."""
    value = f"asr-test:{uuid.uuid4().hex}:"
    yield value
    if connection.healthy:  # redis-py scans every node, and splits DEL by slot
        keys = list(connection.client.scan_iter(match=f"{value}*", count=500))
        if keys:
            connection.client.delete(*keys)


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_each_components_keys_share_one_slot(connection: FleetConnection, prefix: str) -> None:
    """A scope's five limiter keys, and a token with its lock, each hash to one cluster slot."""
    settings = FleetSettings(key_prefix=prefix, quota=2)
    limiter = FleetLimiter.from_settings(settings, "appkey-1", connection=connection)
    provider = CountingProvider()
    cache = RedisTokenCache(provider, connection=connection, key_prefix=prefix, name="tok")
    try:
        assert len(_slots(limiter._keys)) == 1
        assert limiter.key == f"{prefix}limiter:{{appkey-1}}"
        assert len(_slots([cache.key, cache.redis_store.lock_key])) == 1
        assert cache.key == f"{prefix}token:{{tok}}"
    finally:
        limiter.close()


def test_quota_holds_across_workers_on_the_cluster(
    connection: FleetConnection, redis_cluster: ClusterServers, prefix: str
) -> None:
    """Two limiters (two workers) with quota 3 and 8 threads never hold more than 3 slots."""
    other = FleetConnection.from_url(redis_cluster.url, probe_interval=0.05)
    key = f"{prefix}limiter:{{acct}}"
    workers = [FleetLimiter(c, key, quota=3, lease_ttl=5) for c in (connection, other)]
    lock = threading.Lock()
    held = high = granted = 0

    def work(limiter: FleetLimiter) -> None:
        nonlocal held, high, granted
        for _ in range(15):
            permit = limiter.acquire_sync(timeout=20)
            assert permit is not None
            with lock:
                held += 1
                high = max(high, held)
            limiter.fleet_stats()  # the "call": a real round trip with the slot held
            with lock:
                held -= 1
                granted += 1
            permit.release("success")

    threads = [threading.Thread(target=work, args=(workers[i % 2],)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert granted == 8 * 15
        assert high == 3
        assert all(c.outages == 0 for c in (connection, other))  # no CROSSSLOT, no NOSCRIPT
        fs.wait_until(lambda: workers[0].fleet_stats()["in_flight"] == 0, what="leases back")
    finally:
        for limiter in workers:
            limiter.close()
        other.close()


def test_scripts_are_loaded_again_after_every_node_forgets_them(
    connection: FleetConnection, redis_cluster: ClusterServers, prefix: str
) -> None:
    """SCRIPT FLUSH on every master: single scripts reload (NOSCRIPT), pipelined ones send EVAL."""
    limiter = FleetLimiter(connection, f"{prefix}limiter:{{acct}}", quota=2, lease_ttl=5)
    try:
        for _ in range(2):
            redis_cluster.run_on_every_node("SCRIPT", "FLUSH")
            permits = [limiter.acquire_sync(timeout=5) for _ in range(2)]  # ACQUIRE by hash
            assert all(p is not None for p in permits)
            for permit in permits:
                assert permit is not None
                permit.release("success")  # RELEASE in a pipeline
            fs.wait_until(lambda: limiter.fleet_stats()["in_flight"] == 0, what="releases")
        assert connection.outages == 0
    finally:
        limiter.close()


def test_token_is_shared_through_the_cluster(connection: FleetConnection, prefix: str) -> None:
    """Two workers on the cluster: one provider call; the failed token is dropped fleet-wide."""
    provider = CountingProvider()
    first, second = (
        RedisTokenCache(provider, connection=connection, key_prefix=prefix, name="tok")
        for _ in range(2)
    )
    value = first.get_sync()
    assert second.get_sync() == value
    assert provider.calls == 1
    second.invalidate(value)
    renewed = second.get_sync()
    assert renewed != value
    first.invalidate(value)
    assert first.get_sync() == renewed  # the stale worker adopts the new token, no third call
    assert provider.calls == 2
    assert connection.outages == 0


def test_unreachable_cluster_at_start_falls_back_to_local_slots(events: list[str]) -> None:
    """No node answers when the connection is made: no exception, calls get local slots."""
    url = f"redis+cluster://127.0.0.1:{fs.free_port()}"
    connection = FleetConnection.from_url(url, probe_interval=0.05)
    limiter = FleetLimiter(connection, "asr-test:none:limiter:{acct}", quota=8, fallback_share=0.25)
    try:
        assert not connection.healthy
        assert connection.client is None
        permits = [limiter.acquire_sync(timeout=1) for _ in range(2)]
        assert all(p is not None for p in permits)
        assert limiter.acquire_sync(timeout=0.05) is None  # ceil(8 * 0.25) local slots
        assert events.count("asr_resilience.fleet_unavailable") == 1
        for permit in permits:
            assert permit is not None
            permit.release("success")
    finally:
        limiter.close()
        connection.close()


def test_a_cluster_that_comes_up_later_is_used(
    redis_cluster: ClusterServers, events: list[str], prefix: str
) -> None:
    """A connection made while the cluster was down connects once the probe reaches a node."""
    calls: list[int] = []

    def connect() -> Any:
        calls.append(1)
        if len(calls) < 3:  # the cluster is not there yet on the first tries
            raise ConnectionRefusedError("not yet")
        port = next(iter(redis_cluster.nodes))
        return RedisCluster(host="127.0.0.1", port=port, decode_responses=True)

    connection = FleetConnection(None, probe_interval=0.02, connect=connect, label="cluster:test")
    try:
        fs.wait_until(lambda: connection.healthy, what="the probe to connect")
        limiter = FleetLimiter(connection, f"{prefix}limiter:{{acct}}", quota=1)
        try:
            permit = limiter.acquire_sync(timeout=5)
            assert permit is not None
            assert limiter.fleet_stats()["in_flight"] == 1
            permit.release("success")
        finally:
            limiter.close()
        assert events.count("asr_resilience.fleet_recovered") == 1
    finally:
        connection.close()

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

from redis.cluster import key_slot  # noqa: E402

from asr_resilience.fleet import (  # noqa: E402
    FleetConnection,
    FleetLimiter,
    RedisTokenCache,
)
from asr_resilience.policy._model import FleetSettings  # noqa: E402

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
    client = connection.client
    if client is not None and connection.healthy:
        for node in client.get_primaries():
            keys = list(node.redis_connection.scan_iter(match=f"{value}*", count=500))
            if keys:
                node.redis_connection.delete(*keys)


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_each_components_keys_share_one_slot(connection: FleetConnection, prefix: str) -> None:
    """A scope's five limiter keys, and a token with its lock, each hash to one cluster slot."""
    settings = FleetSettings(key_prefix=prefix, quota=2)
    limiter = FleetLimiter.from_settings(settings, "appkey-1", connection=connection)
    cache = RedisTokenCache(fs_provider(), connection=connection, key_prefix=prefix, name="tok")
    try:
        assert len(_slots(limiter._keys)) == 1
        assert limiter.key == f"{prefix}limiter:{{appkey-1}}"
        assert len(_slots([cache.key, cache.redis_store.lock_key])) == 1
        assert cache.key == f"{prefix}token:{{tok}}"
    finally:
        limiter.close()


def fs_provider() -> Any:
    """A provider that counts its calls in the process (the cluster holds the token)."""
    from .helpers import CountingProvider

    return CountingProvider(expires_at=None)


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

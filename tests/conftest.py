"""Shared fixtures: every test starts with fresh scopes (budgets, breakers, limiters) and no
held-back repeated warnings; a Redis Cluster and a Sentinel for the session, started on first
use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from asr_resilience.limits import reset_scopes
from asr_resilience.observe._events import repeats

if TYPE_CHECKING:
    from .redis_topologies import ClusterServers, SentinelServers


@pytest.fixture(autouse=True)
def _fresh_scopes() -> Iterator[None]:
    """Scopes are process-wide; a test must not inherit another's breaker or budget."""
    reset_scopes()
    repeats.reset()
    yield
    reset_scopes()
    repeats.reset()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """A 3-master Redis Cluster on loopback for the whole session; every node killed after."""
    from . import fleet_support as fs
    from .redis_topologies import ClusterServers, missing_binaries

    fs.require_redis_py()
    missing = missing_binaries()
    if missing:
        fs.unavailable(missing)
    servers = ClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    """A master and a Sentinel watching it, on loopback for the whole session; killed after."""
    from . import fleet_support as fs
    from .redis_topologies import SentinelServers, missing_binaries

    fs.require_redis_py()
    missing = missing_binaries()
    if missing:
        fs.unavailable(missing)
    servers = SentinelServers(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()

"""Shared fixtures: every test starts with fresh scopes (budgets, breakers, limiters), no
held-back repeated warnings, and no proxy from the environment of whoever runs the suite; a Redis
Cluster and a Sentinel for the session, started on first use.

The vendor's credentials library reads its environment variables once, when first imported: it
is imported here, before any test changes the environment, so that a variable one test sets
cannot linger in the library for the next. Its chain never asks an ECS instance's metadata
service from the tests (it cannot be reached from here, and asking it starts a refresh thread).
Tests of the chain itself run it in a fresh interpreter (tests/test_credentials.py).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from asr_resilience.limits import reset_scopes
from asr_resilience.observe._events import repeats

if TYPE_CHECKING:
    from .redis_topologies import ClusterServers, SentinelServers

os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
with contextlib.suppress(ImportError):
    importlib.import_module("alibabacloud_credentials.client")


def pytest_configure(config: pytest.Config) -> None:
    if sys.version_info < (3, 11):
        # Python 3.10's asyncio (its sslproto, rewritten in 3.11) never marks the TLS transport
        # of a failed handshake closed, and warns when the garbage collector meets it, in
        # whichever test runs then: the TLS and proxy tests fail handshakes on purpose.
        for line in (
            "ignore:unclosed transport <asyncio.sslproto._SSLProtocolTransport:ResourceWarning",
            "ignore:Exception ignored in. <function _SSLProtocolTransport.__del__"
            ":pytest.PytestUnraisableExceptionWarning",
        ):
            config.addinivalue_line("filterwarnings", line)


PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy")
    for name in (base, base.upper())
)


@pytest.fixture(autouse=True)
def _no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests talk to loopback servers; a developer's proxy variables must not reroute them
    (the proxy tests set the variables they test)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


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

"""The fleet's Redis client, and whether the fleet may use it right now.

Every fleet operation goes through :meth:`FleetConnection.run`. The first Redis error marks the
connection *down* (one ``asr_resilience.fleet_unavailable`` warning) and every fleet component
falls back to per-process limits and local tokens; while down, ``run`` refuses at once instead of
waiting for a socket timeout on every call. One daemon thread then pings every
``probe_interval`` seconds; the first answer marks the connection up again (one
``asr_resilience.fleet_recovered`` warning). So each outage costs at most one Redis timeout per
operation in flight when it starts, and never an unbounded wait. Components that must act on a
transition (the limiter re-registers its local holders on recovery) :meth:`~FleetConnection.
subscribe`; :attr:`~FleetConnection.outages` counts the outages, so a component can tell that
one came and went between two of its looks.

A server that answers ``WRONGTYPE`` is up: a key the library uses holds a value of another type
(someone wrote over it). That is not an outage -- marking Redis down would only bring a
``fleet_unavailable``/``fleet_recovered`` pair every probe, forever -- so :meth:`~FleetConnection.
run` raises :class:`FleetKeyConflict` for the component that owns the key to repair it.

The client has short socket timeouts and no retries of its own: a slow Redis is treated as a
missing one, because the calls it would hold up have deadlines of their own.

Cluster and Sentinel
--------------------
:meth:`FleetConnection.from_url` also takes ``redis+cluster://`` and ``redis+sentinel://`` URLs
(:mod:`asr_resilience._redis_url`). On a cluster every multi-key script runs on the node that
owns its keys' slot, so each component's keys share one hash tag (``limiter:{scope}:leases``,
``token:{name}:lock``; see :func:`slot_keys`). redis-py refuses ``EVALSHA`` inside a cluster
pipeline, so on a cluster the operations see a client whose pipelines send a script's text
(``EVAL``: one round trip per node, and no ``NOSCRIPT`` to recover from); outside pipelines the
scripts go by hash as everywhere. A cluster that cannot be reached when the connection is made
leaves it *down*, probing, as a server that goes away later does. Behind Sentinel, the client
asks the sentinels for the master on every new connection: a failover is an outage that ends
when the probe reaches the new master.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from .._clock import SYSTEM_CLOCK, Clock
from .._errors import AsrResilienceError
from .._redis_url import RedisTarget, parse_redis_url
from ..observe import emit
from ..policy._model import FleetSettings
from ._scripts import Scripts

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_SOCKET_TIMEOUT",
    "FleetConnection",
    "FleetKeyConflict",
    "FleetUnavailable",
    "close_shared_connections",
    "resolve_url",
    "shared_connection",
    "slot_keys",
]

T = TypeVar("T")

# What redis-py raises when a server cannot be used: RedisClusterException (a cluster with no
# reachable node, a slot no node serves) is not a RedisError.
_DOWN = (redis.RedisError, RedisClusterException, OSError)

# redis-py leaves these untyped.
_node: Any = ClusterNode
_sentinel: Any = Sentinel

# A command's own error, or a pipeline's ("Command # 3 (...) of pipeline caused error: ...").
_WRONGTYPE = re.compile(r"(?:^|caused error: )WRONGTYPE\b")

DEFAULT_SOCKET_TIMEOUT = 1.0
"""Seconds one Redis command may take before the fleet counts Redis as unavailable."""
DEFAULT_CONNECT_TIMEOUT = 0.5
"""Seconds to open a connection (a blackholed host must not hold a call up for long)."""
DEFAULT_PROBE_INTERVAL = 1.0
"""Seconds between pings while Redis is unavailable."""


class FleetUnavailable(AsrResilienceError):
    """Redis cannot be used now; the caller falls back to per-process limits or local tokens."""


class FleetKeyConflict(FleetUnavailable):
    """Redis answered WRONGTYPE: one of the library's keys holds another type of value.

    The server is up (the connection stays healthy); the component that owns the key repairs it.
    """


def resolve_url(settings: FleetSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """``settings.redis_url``, else the environment variable it names, else ``None``."""
    if settings.redis_url:
        return settings.redis_url
    env = os.environ if environ is None else environ
    return env.get(settings.redis_url_env) or None


def hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes, if not the whole key (Redis's own rule).

    The first ``{`` and the first ``}`` after it enclose the tag; with nothing between them, or
    no ``}``, the whole key is hashed (docs/architecture.md "Local and fleet", after the Redis
    cluster specification).
    """
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def slot_keys(base: str, parts: tuple[str, ...], *, what: str) -> list[str]:
    """``base:part`` for each part: the keys of one component, all in one cluster slot.

    A multi-key script fails with CROSSSLOT on a cluster unless its keys share a hash tag, so
    ``base`` must carry one (``asr_resilience:limiter:{appkey}``); ValueError otherwise.
    """
    keys = [f"{base}:{part}" for part in parts]
    tags = {hash_tag(key) for key in (base, *keys)}
    if len(tags) != 1 or None in tags:
        raise ValueError(
            f"{what} {base!r} has no Redis hash tag: put the part that names it in braces "
            "(e.g. 'myapp:limiter:{appkey}') so that all its keys share one Redis Cluster slot"
        )
    return keys


def _label(client: Any) -> str:
    """Where the client points, without credentials (a URL may carry a password)."""
    if isinstance(client, RedisCluster):
        cluster: Any = client
        return "cluster:" + ",".join(node.name for node in cluster.get_nodes())
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


class FleetConnection:
    """A Redis client with health tracking; ``client=None`` means "no Redis configured"."""

    def __init__(
        self,
        client: Any,
        *,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        clock: Clock = SYSTEM_CLOCK,
        label: str | None = None,
        connect: Callable[[], Any] | None = None,
        closing: tuple[Any, ...] = (),
    ) -> None:
        """``client`` (``None``: no Redis); ``connect`` builds it when it could not be built yet
        (a cluster that did not answer): the connection starts down and the probe retries it.
        ``closing`` are more clients to close with this one (a Sentinel's own connections)."""
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be > 0 seconds, not {probe_interval!r}")
        self._client: Any = None
        self._view: Any = None
        self._scripts: Scripts | None = None
        self._connect = connect
        self._closing = closing
        self._probe_interval = probe_interval
        if label is not None:
            self._label = label
        else:
            self._label = _label(client) if client is not None else "none"
        self._healthy = client is not None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._clock = clock
        self._outages = 0
        self._listeners: list[Callable[[bool], None]] = []
        if client is not None:
            self._attach(client)
        elif connect is not None:
            self._healthy = True  # so that mark_down counts the outage and starts the probe
            self.mark_down(ConnectionError("not reachable when the connection was made"))
        else:
            emit("fleet_unavailable", level="warning", redis="none", error="no Redis URL")

    def _attach(self, client: Any) -> None:
        """Use ``client``: register the scripts, and wrap a cluster client's pipelines."""
        scripts = Scripts.register(client)
        self._view = _ClusterView(client, scripts) if isinstance(client, RedisCluster) else client
        self._scripts = scripts
        self._client = client

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
    ) -> FleetConnection:
        """A connection to ``url`` (``None``: no Redis, the fleet runs per process).

        ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL, a ``redis+cluster://`` or a
        ``redis+sentinel://`` one (see :mod:`asr_resilience._redis_url`); a malformed one raises
        :class:`~asr_resilience._redis_url.RedisUrlError` (a ValueError) saying what is wrong.
        """
        if not url:
            return cls(None, probe_interval=probe_interval)
        target = parse_redis_url(url)
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            # Our own fallback is the retry: redis-py retrying would multiply the timeout.
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": True,
        }
        if target.kind == "cluster":
            return cls._cluster(target, options, probe_interval)
        if target.kind == "sentinel":
            return cls._sentinel(target, options, probe_interval)
        return cls(redis.Redis.from_url(url, **options), probe_interval=probe_interval)

    @classmethod
    def _cluster(
        cls, target: RedisTarget, options: dict[str, Any], probe_interval: float
    ) -> FleetConnection:
        def connect() -> RedisCluster:
            return RedisCluster(
                startup_nodes=[_node(host, port) for host, port in target.nodes],
                username=target.username,
                password=target.password,
                ssl=target.tls,
                # Slots of a node that is down fail on their own; the others keep working.
                require_full_coverage=False,
                **options,
            )

        try:
            client = connect()  # redis-py asks the cluster for its slots at once
        except _DOWN:
            return cls(None, probe_interval=probe_interval, label=target.label, connect=connect)
        return cls(client, probe_interval=probe_interval, label=target.label)

    @classmethod
    def _sentinel(
        cls, target: RedisTarget, options: dict[str, Any], probe_interval: float
    ) -> FleetConnection:
        sentinel = _sentinel(
            list(target.nodes),
            sentinel_kwargs={
                "socket_timeout": options["socket_timeout"],
                "socket_connect_timeout": options["socket_connect_timeout"],
                "username": target.sentinel_username,
                "password": target.sentinel_password,
                "ssl": target.tls,
            },
        )
        client = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            **options,
        )
        return cls(
            client,
            probe_interval=probe_interval,
            label=target.label,
            closing=tuple(sentinel.sentinels),
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Whether fleet operations are attempted (``False`` while Redis is unavailable)."""
        return self._healthy

    @property
    def outages(self) -> int:
        """How many times the connection has been marked down (0 for a missing Redis)."""
        return self._outages

    @property
    def probe_interval(self) -> float:
        """Seconds between pings while Redis is unavailable."""
        return self._probe_interval

    def subscribe(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``listener(healthy)`` after every transition (from the thread that saw it).

        Returns a function that unsubscribes. A listener must not block: it runs on the probe
        thread or on whichever thread hit the error.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, healthy: bool) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(healthy)

    @property
    def label(self) -> str:
        """``host:port/db`` of the server, without credentials."""
        return self._label

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` or ``RedisCluster`` client (``None`` when there is none yet)."""
        return self._client

    @property
    def scripts(self) -> Scripts:
        """The fleet's Lua scripts, registered with this client."""
        if self._scripts is None:
            raise FleetUnavailable("no Redis configured")
        return self._scripts

    def run(self, operation: Callable[[Any], T]) -> T:
        """``operation(client)``; on any Redis error mark the fleet down and raise FleetUnavailable.

        Raises FleetUnavailable at once while the fleet is down, and FleetKeyConflict (without
        marking anything down) when Redis answered WRONGTYPE.
        """
        if not self._healthy:
            raise FleetUnavailable(self._label)
        try:
            return operation(self._view)
        except redis.ResponseError as exc:
            if _WRONGTYPE.search(str(exc)):
                raise FleetKeyConflict(self._label) from exc
            self.mark_down(exc)
            raise FleetUnavailable(self._label) from exc
        except _DOWN as exc:
            self.mark_down(exc)
            raise FleetUnavailable(self._label) from exc

    def mark_down(self, error: BaseException) -> None:
        """Stop using Redis until a probe answers; warn once per transition."""
        with self._lock:
            if not self._healthy or (self._client is None and self._connect is None):
                return
            self._healthy = False
            self._outages += 1
            prober = self._prober
            if prober is None or not prober.is_alive():
                self._prober = threading.Thread(
                    target=self._probe, name="asr-resilience-fleet-probe", daemon=True
                )
                self._prober.start()
        emit("fleet_unavailable", level="warning", redis=self._label, error=type(error).__name__)
        self._notify(False)

    def _probe(self) -> None:
        # A poll: under ``testing.no_wait`` it does not pause between pings.
        while not self._stop.wait(self._clock.pause(self._probe_interval)):
            try:
                client = self._client
                if client is None:
                    assert self._connect is not None
                    client = self._connect()
                elif isinstance(client, RedisCluster):
                    client.ping(target_nodes=RedisCluster.PRIMARIES)  # the nodes that hold keys
                else:
                    client.ping()
            except _DOWN:
                continue
            with self._lock:
                if self._stop.is_set():
                    if client is not self._client:
                        client.close()
                    return
                if self._client is None:
                    self._attach(client)
                self._healthy = True
            emit("fleet_recovered", level="warning", redis=self._label)
            self._notify(True)
            return

    def close(self) -> None:
        """Stop probing and close the client's connections (the object is unusable after)."""
        with self._lock:
            self._stop.set()
            self._healthy = False
            self._outages += 1
            prober = self._prober
        if prober is not None and prober is not threading.current_thread():
            prober.join()
        if self._client is not None:
            self._client.close()
        for client in self._closing:
            client.close()

    def __repr__(self) -> str:
        return f"FleetConnection({self._label}, healthy={self._healthy})"


class _ClusterView:
    """A cluster client whose pipelines take the fleet's scripts (operations see this).

    redis-py refuses ``EVALSHA`` in a cluster pipeline; a script queued in one (``script(...,
    client=pipe)``, which calls ``pipe.evalsha``) is sent as ``EVAL`` with its text instead, to
    the node that owns its keys' slot. Everything else is the cluster client's own.
    """

    __slots__ = ("_client", "_sources")

    def __init__(self, client: RedisCluster, scripts: Scripts) -> None:
        self._client: Any = client
        self._sources = scripts.sources()

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> Any:
        return _ClusterPipeline(self._client.pipeline(transaction, shard_hint), self._sources)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _ClusterPipeline:
    """A cluster pipeline whose ``evalsha`` queues ``EVAL`` with the script's text."""

    __slots__ = ("_pipe", "_sources")

    def __init__(self, pipe: Any, sources: Mapping[str, str]) -> None:
        self._pipe = pipe
        self._sources = sources

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        source = self._sources.get(sha)
        if source is None:  # not one of the fleet's scripts: as redis-py would (it refuses)
            return self._pipe.evalsha(sha, numkeys, *keys_and_args)
        self._pipe.execute_command("EVAL", source, numkeys, *keys_and_args)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


_shared: dict[str | None, FleetConnection] = {}
_shared_lock = threading.Lock()


def shared_connection(url: str | None) -> FleetConnection:
    """The process's connection to ``url``: one pool and one health state per server.

    Every limiter scope and token cache of a process that names the same URL shares it, so one
    outage gives one warning, not one per scope.
    """
    with _shared_lock:
        connection = _shared.get(url)
        if connection is None:
            connection = FleetConnection.from_url(url)
            _shared[url] = connection
        return connection


def close_shared_connections() -> None:
    """Close and forget every shared connection (for tests and orderly shutdown)."""
    with _shared_lock:
        connections = list(_shared.values())
        _shared.clear()
    for connection in connections:
        connection.close()

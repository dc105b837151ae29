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
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .._clock import SYSTEM_CLOCK, Clock
from .._errors import AsrResilienceError
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
]

T = TypeVar("T")

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


def _label(client: Any) -> str:
    """Where the client points, without credentials (a URL may carry a password)."""
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
    ) -> None:
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be > 0 seconds, not {probe_interval!r}")
        self._client = client
        self._probe_interval = probe_interval
        self._label = _label(client) if client is not None else "none"
        self._scripts = Scripts.register(client) if client is not None else None
        self._healthy = client is not None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._clock = clock
        self._outages = 0
        self._listeners: list[Callable[[bool], None]] = []
        if client is None:
            emit("fleet_unavailable", level="warning", redis="none", error="no Redis URL")

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
    ) -> FleetConnection:
        """A connection to ``url`` (``None``: no Redis, the fleet runs per process)."""
        if not url:
            return cls(None, probe_interval=probe_interval)
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            # Our own fallback is the retry: redis-py retrying would multiply the timeout.
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        return cls(client, probe_interval=probe_interval)

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
        """The ``redis.Redis`` client (``None`` when no Redis is configured)."""
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
            return operation(self._client)
        except redis.ResponseError as exc:
            if _WRONGTYPE.search(str(exc)):
                raise FleetKeyConflict(self._label) from exc
            self.mark_down(exc)
            raise FleetUnavailable(self._label) from exc
        except (redis.RedisError, OSError) as exc:
            self.mark_down(exc)
            raise FleetUnavailable(self._label) from exc

    def mark_down(self, error: BaseException) -> None:
        """Stop using Redis until a probe answers; warn once per transition."""
        with self._lock:
            if not self._healthy or self._client is None:
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
                self._client.ping()
            except (redis.RedisError, OSError):
                continue
            with self._lock:
                if self._stop.is_set():
                    return
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

    def __repr__(self) -> str:
        return f"FleetConnection({self._label}, healthy={self._healthy})"


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

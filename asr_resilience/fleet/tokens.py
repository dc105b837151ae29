"""One NLS token for the whole fleet: kept in Redis, refreshed by one worker at a time.

:class:`RedisTokenCache` is a :class:`~asr_resilience.tokens.TokenManager` (same methods, same
hot path) whose refresh asks Redis before it asks the provider:

* **Hot path.** ``current()`` is TokenManager's: the token is cached in the process and its
  expiry checked locally; Redis is consulted only when the local copy is missing, due for
  renewal, expired or invalidated.
* **Single flight, two levels.** Within a process, TokenManager's single flight makes any number
  of concurrent callers one refresh. That refresh runs one script (``CLAIM_TOKEN``): a fresh
  shared token is adopted as it is; otherwise the script takes the fleet's refresh lock
  (``SET NX PX`` with a random owner), and only its holder calls the provider, stores the token
  with its expiry and frees the lock (compare-and-delete: a lock that expired and was taken by
  another worker is not freed). Workers that did not get the lock poll the token with a jittered
  backoff; if the holder dies, its lock expires after ``lock_ttl`` and a waiter takes over. A
  token that is due for renewal but still valid is used meanwhile.
* **Compare-and-invalidate.** ``invalidate(value)`` drops the local copy at once (no I/O: it is
  called on the failure path, possibly inside an event loop) and remembers the value; the refresh
  that follows drops the shared token in the same script only if it still is that value. A worker
  holding a stale token cannot drop the fresh one another worker just stored.
* **Never stuck.** Redis unavailable (see :mod:`.connection`): the provider is called locally,
  as a plain TokenManager would. A wait for another worker's refresh longer than
  ``wait_timeout`` also ends with a local provider call. Async refreshes run their Redis steps in
  a worker thread, so an event loop never waits on a socket.

The token is a bearer credential and sits in Redis in clear: give the fleet's Redis the access
controls (ACL, TLS with ``rediss://``) that the AccessKey itself would need.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..observe import emit
from ..policy.model import Backoff, FleetSettings
from ..tokens.manager import DEFAULT_PROVIDER_BACKOFF, TokenManager
from ..tokens.token import Provider, Token
from .connection import FleetConnection, FleetUnavailable, resolve_url, shared_connection

__all__ = ["DEFAULT_LOCK_TTL", "RedisTokenCache"]

DEFAULT_LOCK_TTL = 10.0
"""Seconds a refresher holds the fleet's lock before another worker may take over."""
_POLL_MIN = 0.01
_POLL_MAX = 0.2
_MAX_REJECTED = 8


class RedisTokenCache(TokenManager):
    """A TokenManager whose token is shared through Redis by every worker using ``name``.

    ``name`` identifies the credentials (one token per AccessKey); the keys are
    ``{key_prefix}token:{name}`` and its ``:lock``. ``connection`` (else the shared connection to
    ``redis_url``, else to ``$ASR_RESILIENCE_REDIS_URL``) is where the token lives. The other
    keywords are TokenManager's.
    """

    __slots__ = ("_connection", "_key", "_lock_key", "_lock_ttl", "_rejected", "_wait_timeout")

    def __init__(
        self,
        provider: Provider,
        *,
        redis_url: str | None = None,
        key_prefix: str = "asr_resilience:",
        name: str = "default",
        connection: FleetConnection | None = None,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        wait_timeout: float | None = None,
        refresh_ahead: float | None = None,
        clock: Callable[[], float] = time.time,
        provider_attempts: int = 3,
        provider_backoff: Backoff = DEFAULT_PROVIDER_BACKOFF,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            provider,
            refresh_ahead=refresh_ahead,
            clock=clock,
            provider_attempts=provider_attempts,
            provider_backoff=provider_backoff,
            sleep=sleep,
            async_sleep=async_sleep,
        )
        if not lock_ttl > 0:
            raise ValueError(f"lock_ttl must be > 0 seconds, not {lock_ttl!r}")
        if wait_timeout is not None and not wait_timeout >= 0:
            raise ValueError(f"wait_timeout must be >= 0 seconds, not {wait_timeout!r}")
        self._connection = connection or shared_connection(
            resolve_url(FleetSettings(redis_url=redis_url))
        )
        self._key = f"{key_prefix}token:{{{name}}}"
        self._lock_key = f"{self._key}:lock"
        self._lock_ttl = lock_ttl
        # Long enough for a dead refresher's lock to expire and another worker to refresh.
        self._wait_timeout = lock_ttl * 1.5 if wait_timeout is None else wait_timeout
        self._rejected: list[str] = []

    @classmethod
    def from_settings(
        cls,
        provider: Provider,
        settings: FleetSettings,
        *,
        name: str = "default",
        connection: FleetConnection | None = None,
        **kwargs: Any,
    ) -> RedisTokenCache:
        """A cache on the Redis server and key prefix of a policy's ``fleet:`` section."""
        return cls(
            provider,
            key_prefix=settings.key_prefix,
            name=name,
            connection=connection or shared_connection(resolve_url(settings)),
            **kwargs,
        )

    @property
    def connection(self) -> FleetConnection:
        """The Redis connection and its health."""
        return self._connection

    @property
    def key(self) -> str:
        """The Redis key of the shared token."""
        return self._key

    def __repr__(self) -> str:
        return (
            f"RedisTokenCache({self._key!r}, token={self.peek_token()!r}, "
            f"healthy={self._connection.healthy}, provider_calls={self.provider_calls})"
        )

    # -- invalidation --------------------------------------------------------------------------

    def invalidate(self, value: str) -> bool:
        """Drop the held token if its value is ``value``; the fleet's copy on the next refresh.

        Returns whether the local copy was dropped. Never blocks on Redis.
        """
        dropped = super().invalidate(value)
        with self._lock:
            if value not in self._rejected:
                self._rejected.append(value)
                del self._rejected[:-_MAX_REJECTED]
        return dropped

    # -- refreshing (called by TokenManager's single flight, one caller per process) ----------

    def _obtain_sync(self) -> Token:
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_timeout
        delay = _POLL_MIN
        while True:
            try:
                claim = self._claim(owner)
            except FleetUnavailable:
                return super()._obtain_sync()
            if isinstance(claim, Token):
                return claim
            if claim:
                try:
                    token = super()._obtain_sync()
                except BaseException:
                    self._quietly(self._unlock, owner)
                    raise
                self._quietly(self._store, token, owner)
                return token
            if time.monotonic() >= deadline:
                self._waited_too_long()
                return super()._obtain_sync()
            time.sleep(self._pause(delay, deadline))
            delay = min(_POLL_MAX, delay * 2)

    async def _obtain_async(self) -> Token:
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_timeout
        delay = _POLL_MIN
        while True:
            try:
                claim = await asyncio.to_thread(self._claim, owner)
            except FleetUnavailable:
                return await super()._obtain_async()
            if isinstance(claim, Token):
                return claim
            if claim:
                try:
                    token = await super()._obtain_async()
                except BaseException:
                    # Possibly cancelled: free the lock without awaiting anything.
                    self._in_background(self._unlock, owner)
                    raise
                await asyncio.to_thread(self._quietly, self._store, token, owner)
                return token
            if time.monotonic() >= deadline:
                self._waited_too_long()
                return await super()._obtain_async()
            await asyncio.sleep(self._pause(delay, deadline))
            delay = min(_POLL_MAX, delay * 2)

    # -- Redis steps ---------------------------------------------------------------------------

    def _claim(self, owner: str) -> Token | bool:
        """The fleet's fresh token, or ``True`` if this caller now holds the refresh lock."""
        with self._lock:
            rejected = list(self._rejected)
        script = self._connection.scripts.claim_token
        args: list[Any] = [
            owner,
            max(1, round(self._lock_ttl * 1000)),
            repr(self._clock()),
            repr(self.refresh_ahead),
            *rejected,
        ]
        locked, value, expires_at, _issued_at = self._connection.run(
            lambda client: script(keys=[self._key, self._lock_key], args=args)
        )
        if rejected:
            with self._lock:  # dropped from the fleet (if still there): forget them
                self._rejected = [v for v in self._rejected if v not in rejected]
        if int(locked):
            return True
        if not value:
            return False
        token = Token(value, float(expires_at) if expires_at else None)
        if token.expires_at is not None and token.expires_at <= self._clock():
            return False  # our clock is ahead of the writer's: treat it as missing
        return token

    def _store(self, token: Token, owner: str) -> None:
        now = self._clock()
        expires_at = token.expires_at
        if expires_at is None:
            expiry, ttl_ms = "", ""
        else:
            expiry = repr(float(expires_at))
            ttl_ms = str(max(1, math.ceil((expires_at - now) * 1000)))
        script = self._connection.scripts.store_token
        args = [token.value, expiry, repr(now), ttl_ms, owner]
        self._connection.run(lambda client: script(keys=[self._key, self._lock_key], args=args))

    def _unlock(self, owner: str) -> None:
        script = self._connection.scripts.unlock
        self._connection.run(lambda client: script(keys=[self._lock_key], args=[owner]))

    @staticmethod
    def _quietly(step: Callable[..., None], *args: Any) -> None:
        """A best-effort step: if Redis is gone, the lock and the token expire by themselves."""
        with contextlib.suppress(FleetUnavailable):
            step(*args)

    def _in_background(self, step: Callable[..., None], *args: Any) -> None:
        threading.Thread(
            target=self._quietly,
            args=(step, *args),
            name="asr-resilience-fleet-unlock",
            daemon=True,
        ).start()

    def _pause(self, delay: float, deadline: float) -> float:
        # Jittered, so the fleet's waiters do not poll Redis in lockstep.
        return max(0.0, min(random.uniform(delay / 2, delay), deadline - time.monotonic()))

    def _waited_too_long(self) -> None:
        emit(
            "fleet_token_wait_timeout",
            level="warning",
            key=self._key,
            waited=round(self._wait_timeout, 3),
        )

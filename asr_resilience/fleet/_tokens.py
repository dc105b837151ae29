"""One NLS token for the whole fleet: kept in Redis, refreshed by one worker at a time.

:class:`RedisTokenStore` is a :class:`~asr_resilience.tokens.TokenStore`: handed to a
:class:`~asr_resilience.tokens.TokenManager` (``TokenManager(provider, store=...)``), it makes the
manager's refresh ask Redis before it asks the provider. :class:`RedisTokenCache` is that
TokenManager, built from a Redis URL or connection and a name.

* **Hot path.** ``current()`` is TokenManager's: the token is cached in the process and its
  expiry checked locally; Redis is consulted only when the local copy is missing, due for
  renewal, expired or invalidated.
* **Single flight, two levels.** Within a process, TokenManager's single flight makes any number
  of concurrent callers one refresh. That refresh runs one script (``CLAIM_TOKEN``): a fresh
  shared token is adopted as it is; otherwise the script takes the fleet's refresh lock
  (``SET NX PX`` with a random owner), and only its holder calls the provider, stores the token
  with its expiry and frees the lock (compare-and-delete: a lock that expired and was taken by
  another worker is not freed). Workers that did not get the lock poll the token with a jittered
  backoff (through the manager's clock); if the holder dies, its lock expires after ``lock_ttl``
  and a waiter takes over. A token that is due for renewal but still valid is used meanwhile.
* **Compare-and-invalidate.** ``invalidate(value)`` drops the local copy at once (no I/O: it is
  called on the failure path, possibly inside an event loop) and the store remembers the value;
  the refresh that follows drops the shared token in the same script only if it still is that
  value. A worker holding a stale token cannot drop the fresh one another worker just stored.
* **Never stuck.** Redis unavailable (see :mod:`.connection`): the provider is called locally,
  as a plain TokenManager would. A wait for another worker's refresh longer than
  ``wait_timeout`` also ends with a local provider call. A lock key without a TTL or of another
  type, or a token key that is not a hash, would stall (or fail) every refresh: the script
  replaces it, and the worker that did so emits one ``fleet_token_key_repaired`` warning. Async
  refreshes run their Redis steps in a worker thread, so an event loop never waits on a socket.

The token is a bearer credential and sits in Redis in clear: give the fleet's Redis the access
controls (ACL, TLS with ``rediss://``) that the AccessKey itself would need.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._clock import Clock
from ..observe import emit
from ..policy._model import Backoff, FleetSettings
from ..tokens._manager import DEFAULT_FAILURE_COOLDOWN, DEFAULT_PROVIDER_BACKOFF, TokenManager
from ..tokens._store import Claim
from ..tokens._token import Provider, Token
from ._connection import (
    FleetConnection,
    FleetUnavailable,
    resolve_url,
    shared_connection,
    slot_keys,
)

__all__ = ["DEFAULT_LOCK_TTL", "RedisTokenCache", "RedisTokenStore"]

DEFAULT_LOCK_TTL = 10.0
"""Seconds a refresher holds the fleet's lock before another worker may take over."""
_MAX_REJECTED = 8


class RedisTokenStore:
    """A token shared through Redis by every worker using ``name`` (a :class:`TokenStore`).

    ``name`` identifies the credentials (one token per AccessKey; see ``_store_name``); the
    keys are ``{key_prefix}token:{name}`` and its ``:lock``. What is read from Redis is
    validated (token characters, a finite expiry): garbage is dropped and replaced.
    ``lock_ttl`` is how long a refresher may hold the lock, ``wait_timeout`` how long another
    worker waits for it (default ``1.5 × lock_ttl``: long enough for a dead refresher's lock to
    expire and another worker to refresh).
    """

    __slots__ = (
        "_connection",
        "_key",
        "_lock",
        "_lock_key",
        "_lock_ttl",
        "_rejected",
        "_wait_timeout",
    )

    blocking = True

    def __init__(
        self,
        connection: FleetConnection,
        *,
        key_prefix: str = "asr_resilience:",
        name: str,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        wait_timeout: float | None = None,
    ) -> None:
        if not lock_ttl > 0:
            raise ValueError(f"lock_ttl must be > 0 seconds, not {lock_ttl!r}")
        if wait_timeout is not None and not wait_timeout >= 0:
            raise ValueError(f"wait_timeout must be >= 0 seconds, not {wait_timeout!r}")
        self._connection = connection
        self._key = f"{key_prefix}token:{{{_store_name(None, name)}}}"
        # Token and lock in one slot: the scripts read and write both (Redis Cluster).
        (self._lock_key,) = slot_keys(self._key, ("lock",), what="the token key")
        self._lock_ttl = lock_ttl
        self._wait_timeout = lock_ttl * 1.5 if wait_timeout is None else wait_timeout
        self._lock = threading.Lock()
        self._rejected: list[str] = []

    @property
    def connection(self) -> FleetConnection:
        """The Redis connection and its health."""
        return self._connection

    @property
    def key(self) -> str:
        """The Redis key of the shared token."""
        return self._key

    @property
    def lock_key(self) -> str:
        """The Redis key of the fleet's refresh lock."""
        return self._lock_key

    @property
    def wait_timeout(self) -> float:
        """Seconds to wait for another worker's refresh before calling the provider locally."""
        return self._wait_timeout

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._key!r}, healthy={self._connection.healthy})"

    # -- the TokenStore steps ------------------------------------------------------------------

    def claim(self, owner: str, now: float, refresh_ahead: float) -> Token | Claim:
        """The fleet's fresh token, LEAD if this refresh now holds the lock, else BUSY or LOCAL."""
        with self._lock:
            rejected = list(self._rejected)
        args: list[Any] = [
            owner,
            max(1, round(self._lock_ttl * 1000)),
            repr(now),
            repr(refresh_ahead),
            *rejected,
        ]
        try:
            script = self._connection.scripts.claim_token
            locked, value, expires_at, _issued_at, repaired = self._connection.run(
                lambda client: script(keys=[self._key, self._lock_key], args=args)
            )
        except FleetUnavailable:
            return Claim.LOCAL
        if rejected:
            with self._lock:  # dropped from the fleet (if still there): forget them
                self._rejected = [v for v in self._rejected if v not in rejected]
        for key, found in zip(repaired[::2], repaired[1::2], strict=True):
            emit("fleet_token_key_repaired", level="warning", key=key, found=found)
        if int(locked):
            return Claim.LEAD
        if not value:
            return Claim.BUSY
        expiry = _finite(expires_at) if expires_at else None
        if expires_at and expiry is None:  # the script validates; never use one it let through
            self.reject(value)
            return Claim.BUSY
        token = Token(value, expiry)
        if token.expires_at is not None and token.expires_at <= now:
            return Claim.BUSY  # our clock is ahead of the writer's: treat it as missing
        return token

    def publish(self, owner: str, token: Token, now: float) -> None:
        """Store ``token`` for the fleet and free the lock (best effort)."""
        expires_at = token.expires_at
        if expires_at is None:
            expiry, ttl_ms = "", ""
        else:
            expiry = repr(float(expires_at))
            ttl_ms = str(max(1, math.ceil((expires_at - now) * 1000)))
        args = [token.value, expiry, repr(now), ttl_ms, owner]
        self._quietly(
            lambda client: self._connection.scripts.store_token(
                keys=[self._key, self._lock_key], args=args
            )
        )

    def release(self, owner: str) -> None:
        """Free the lock ``owner`` holds; in a background thread when called on an event loop."""

        def unlock(client: Any) -> object:
            return self._connection.scripts.unlock(keys=[self._lock_key], args=[owner])

        if _in_event_loop():  # a refresh cancelled by its loop: never wait on a socket there
            name = "asr-resilience-fleet-unlock"
            threading.Thread(target=self._quietly, args=(unlock,), name=name, daemon=True).start()
        else:
            self._quietly(unlock)

    def reject(self, value: str) -> None:
        """Remember ``value``: the next claim drops the fleet's token if it still is that value."""
        with self._lock:
            if value not in self._rejected:
                self._rejected.append(value)
                del self._rejected[:-_MAX_REJECTED]

    def wait_expired(self, waited: float) -> None:
        """One warning: another worker's refresh took too long, this one goes on alone."""
        emit("fleet_token_wait_timeout", level="warning", key=self._key, waited=round(waited, 3))

    def _quietly(self, operation: Callable[[Any], object]) -> None:
        """A best-effort step: if Redis is gone, the lock and the token expire by themselves."""
        with contextlib.suppress(FleetUnavailable):
            self._connection.run(operation)


def _finite(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _store_name(provider: object, name: str | None) -> str:
    """The name a shared token is kept under: ``name``, else the provider's identity.

    One token per set of credentials: a provider that knows its credentials (``identity``, as
    :class:`~asr_resilience.tokens.AliyunTokenProvider` has: a hash of the AccessKey id and the
    endpoint) names its token itself; any other provider needs an explicit ``name``. There is no
    shared default, under which two services with different AccessKeys on one Redis would hand
    each other their tokens (and fail with 40020106).
    """
    if name is None:
        identity = getattr(provider, "identity", None)
        if isinstance(identity, str) and identity:
            return f"id-{identity}"
        raise ValueError(
            "RedisTokenCache needs name= for this provider: it has no identity (an "
            "AliyunTokenProvider has one), and a shared default would give one account's token to "
            "every service on this Redis. Name the credentials the token belongs to, e.g. "
            "name='<AccessKey id>-<region>'"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            "name must be 1-200 visible characters without braces (it is part of a Redis key)"
        )
    return name


_NAME = re.compile(r"[\x21-\x7a\x7c\x7e]{1,200}")  # visible ASCII without { and }


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RedisTokenCache(TokenManager):
    """A :class:`TokenManager` whose token is shared through Redis by every worker using ``name``.

    Only a constructor: it builds a :class:`RedisTokenStore` on ``connection`` (else the shared
    connection to ``redis_url``, else to ``$ASR_RESILIENCE_REDIS_URL``) and hands it to
    TokenManager. ``name`` defaults to the provider's identity (an
    :class:`~asr_resilience.tokens.AliyunTokenProvider` has one: a hash of its AccessKey id and
    endpoint); a provider without one needs an explicit ``name`` (``ValueError`` otherwise).
    ``key_prefix``, ``lock_ttl`` and ``wait_timeout`` are the store's (see there); the other
    keywords are TokenManager's.
    """

    __slots__ = ("_redis_store",)

    def __init__(
        self,
        provider: Provider,
        *,
        redis_url: str | None = None,
        key_prefix: str = "asr_resilience:",
        name: str | None = None,
        connection: FleetConnection | None = None,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        wait_timeout: float | None = None,
        refresh_ahead: float | None = None,
        clock: Callable[[], float] | Clock = time.time,
        provider_attempts: int = 3,
        provider_backoff: Backoff = DEFAULT_PROVIDER_BACKOFF,
        failure_cooldown: float = DEFAULT_FAILURE_COOLDOWN,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        name = _store_name(provider, name)  # before any connection is made
        store = RedisTokenStore(
            connection or shared_connection(resolve_url(FleetSettings(redis_url=redis_url))),
            key_prefix=key_prefix,
            name=name,
            lock_ttl=lock_ttl,
            wait_timeout=wait_timeout,
        )
        self._redis_store = store
        super().__init__(
            provider,
            store=store,
            refresh_ahead=refresh_ahead,
            clock=clock,
            provider_attempts=provider_attempts,
            provider_backoff=provider_backoff,
            failure_cooldown=failure_cooldown,
            sleep=sleep,
            async_sleep=async_sleep,
        )

    @classmethod
    def from_settings(
        cls,
        provider: Provider,
        settings: FleetSettings,
        *,
        name: str | None = None,
        connection: FleetConnection | None = None,
        **kwargs: Any,
    ) -> RedisTokenCache:
        """A cache on the Redis server and key prefix of a policy's ``fleet:`` section."""
        name = _store_name(provider, name)
        return cls(
            provider,
            key_prefix=settings.key_prefix,
            name=name,
            connection=connection or shared_connection(resolve_url(settings)),
            **kwargs,
        )

    @property
    def redis_store(self) -> RedisTokenStore:
        """The store: the Redis keys and connection."""
        return self._redis_store

    @property
    def connection(self) -> FleetConnection:
        """The Redis connection and its health."""
        return self.redis_store.connection

    @property
    def key(self) -> str:
        """The Redis key of the shared token."""
        return self.redis_store.key

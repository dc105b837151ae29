"""Tests for asr_resilience.fleet._tokens against a real Redis: one token for the whole fleet."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from . import fleet_support as fs

fs.require_redis_py()

from asr_resilience.fleet import FleetConnection, RedisTokenCache  # noqa: E402
from asr_resilience.fleet._tokens import RedisTokenStore  # noqa: E402
from asr_resilience.tokens import Claim, Token, TokenManager  # noqa: E402

redis_url = pytest.fixture(fs.redis_url)
prefix = pytest.fixture(fs.prefix)
events = pytest.fixture(fs.events)
private_redis = pytest.fixture(fs.private_redis)


@pytest.fixture
def connection(redis_url: str) -> Iterator[FleetConnection]:
    """A connection of the test's own (its health state is not shared with other tests)."""
    conn = FleetConnection.from_url(redis_url, probe_interval=0.05)
    yield conn
    conn.close()


class Provider:
    """Hands out tokens fleet-0001, fleet-0002, ... expiring ``lifetime`` after ``clock()``."""

    def __init__(self, clock: Any = time.time, lifetime: float = 3600.0) -> None:
        self.calls = 0
        self._clock = clock
        self._lifetime = lifetime

    def __call__(self) -> Token:
        self.calls += 1
        return Token(f"fleet-{self.calls:04d}-secret", self._clock() + self._lifetime)


class Clock:
    """A unix clock that moves only when told (shared by the caches of one test)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _held(cache: RedisTokenCache) -> str | None:
    token = cache.peek_token()
    return None if token is None else token.value


def _cache(
    connection: FleetConnection, prefix: str, provider: Any, **kwargs: Any
) -> RedisTokenCache:
    kwargs.setdefault("name", "test")
    return RedisTokenCache(provider, connection=connection, key_prefix=prefix, **kwargs)


def test_is_a_token_manager(connection: FleetConnection, prefix: str) -> None:
    """RedisTokenCache is a drop-in TokenManager (the resilient wrapper accepts it as one)."""
    cache = _cache(connection, prefix, Provider())
    assert isinstance(cache, TokenManager)
    assert cache.current() is None
    assert cache.key == f"{prefix}token:{{test}}"


def test_second_worker_adopts_the_shared_token(connection: FleetConnection, prefix: str) -> None:
    """The first worker calls the provider; another worker reads the token from Redis."""
    provider = Provider()
    first, second = _cache(connection, prefix, provider), _cache(connection, prefix, provider)
    value = first.get_sync()
    assert second.get_sync() == value
    assert (first.provider_calls, second.provider_calls) == (1, 0)
    assert second.current() == value  # cached locally: the hot path does not ask Redis
    assert connection.client.hget(first.key, "value") == value


async def test_250_callers_in_one_process_make_one_provider_call(
    connection: FleetConnection, prefix: str
) -> None:
    """250 concurrent tasks on a cold cache: one refresh, one provider call, one value."""
    provider = Provider()
    cache = _cache(connection, prefix, provider)
    values = await asyncio.gather(*(cache.get() for _ in range(250)))
    assert set(values) == {"fleet-0001-secret"}
    assert provider.calls == 1


def test_single_flight_across_processes(redis_url: str, prefix: str) -> None:
    """4 processes x 25 threads ask at once on a cold fleet: the provider is called once."""
    start = fs.CONTEXT.Event()
    results = fs.CONTEXT.Queue()
    workers = [
        fs.spawn(fs.fetch_tokens, redis_url, prefix, 25, start, results, 3600.0) for _ in range(4)
    ]
    start.set()
    reports = [results.get(timeout=60) for _ in workers]
    fs.join_all(workers)
    provider = fs.CountingRedisProvider(redis_url, prefix)
    try:
        assert provider.calls() == 1
    finally:
        provider.close()
    values = {value for report in reports for value in report[0]}
    assert len(values) == 1
    assert sum(report[1] for report in reports) == 1


def test_invalidate_drops_only_the_token_that_failed(
    connection: FleetConnection, prefix: str
) -> None:
    """Compare-and-invalidate: a worker holding the stale token cannot drop the fresh one."""
    provider = Provider()
    worker_a, worker_b = _cache(connection, prefix, provider), _cache(connection, prefix, provider)
    stale = worker_a.get_sync()
    assert worker_b.get_sync() == stale
    assert worker_a.invalidate(stale)  # 40000001 on worker A
    fresh = worker_a.get_sync()
    assert fresh != stale
    assert provider.calls == 2
    assert worker_b.invalidate(stale)  # worker B hits 40000001 with the old token too
    assert worker_b.get_sync() == fresh  # adopted: the fresh token was not dropped
    assert provider.calls == 2
    assert connection.client.hget(worker_a.key, "value") == fresh
    assert not worker_b.invalidate(stale)  # not held any more: nothing to drop


def test_dead_refresher_lock_expires(connection: FleetConnection, prefix: str) -> None:
    """A refresher that died holding the lock blocks the fleet only until the lock's TTL."""
    provider = Provider()
    cache = _cache(connection, prefix, provider)
    connection.client.set(f"{cache.key}:lock", "dead-worker", px=300)
    started = time.monotonic()
    value = cache.get_sync()
    waited = time.monotonic() - started
    assert value == "fleet-0001-secret"
    assert provider.calls == 1
    assert 0.2 < waited < 2.0, waited
    assert connection.client.get(f"{cache.key}:lock") is None  # released after the refresh


def test_wait_for_another_refresher_is_bounded(
    connection: FleetConnection, prefix: str, events: list[str]
) -> None:
    """A lock that never frees in time ends the wait: the provider is called locally."""
    provider = Provider()
    cache = _cache(connection, prefix, provider, wait_timeout=0.3)
    lock = f"{cache.key}:lock"
    connection.client.set(lock, "slow-worker", px=60_000)
    started = time.monotonic()
    assert cache.get_sync() == "fleet-0001-secret"
    assert time.monotonic() - started < 2.0
    assert "asr_resilience.fleet_token_wait_timeout" in events
    assert connection.client.get(lock) == "slow-worker"  # never free someone else's lock


class WatchedStore(RedisTokenStore):
    """A Redis store that tells when one of its claims found another worker holding the lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saw_lock = threading.Event()

    def claim(self, owner: str, now: float, refresh_ahead: float) -> Token | Claim:
        claim = super().claim(owner, now, refresh_ahead)
        if claim is Claim.BUSY:
            self.saw_lock.set()
        return claim


async def test_async_waiter_adopts_the_refreshers_token(
    connection: FleetConnection, prefix: str
) -> None:
    """An async worker that finds the lock taken waits, then uses the token the fleet stores."""
    provider = Provider()
    store = WatchedStore(connection, key_prefix=prefix, name="test")
    waiter = TokenManager(provider, store=store)
    other = _cache(connection, prefix, provider)
    lock = f"{other.key}:lock"
    connection.client.set(lock, "another-worker", px=10_000)
    pending = asyncio.ensure_future(waiter.get())
    assert await asyncio.to_thread(store.saw_lock.wait, 10)
    assert not pending.done()
    connection.client.delete(lock)  # the lock holder is gone; whoever takes it next refreshes
    value = await other.get()
    assert await pending == value
    assert provider.calls == 1


def test_proactive_refresh_is_shared(connection: FleetConnection, prefix: str) -> None:
    """Near expiry one worker renews in the background; the others adopt its token."""
    clock = Clock()
    provider = Provider(clock, lifetime=100.0)
    worker_a = _cache(connection, prefix, provider, clock=clock, refresh_ahead=10.0)
    worker_b = _cache(connection, prefix, provider, clock=clock, refresh_ahead=10.0)
    old = worker_a.get_sync()
    assert worker_b.get_sync() == old
    clock.now += 95.0  # within refresh_ahead of expiry
    assert worker_a.current() == old  # still valid: served while a refresh runs behind
    fs.wait_until(lambda: _held(worker_a) != old, what="A's background refresh")
    new = worker_a.get_sync()
    assert new != old
    assert worker_b.current() == old
    fs.wait_until(lambda: worker_b.current() == new, what="B to adopt the new token")
    assert provider.calls == 2


def test_redis_down_at_start_tokens_are_local(events: list[str]) -> None:
    """No Redis: the cache works as a local TokenManager, with one warning."""
    connection = FleetConnection.from_url(f"redis://127.0.0.1:{fs.free_port()}/0")
    try:
        provider = Provider()
        cache = RedisTokenCache(provider, connection=connection, name="test")
        started = time.monotonic()
        assert cache.get_sync() == "fleet-0001-secret"
        assert cache.invalidate("fleet-0001-secret")
        assert cache.get_sync() == "fleet-0002-secret"
        assert time.monotonic() - started < 1.0
        assert events.count("asr_resilience.fleet_unavailable") == 1
    finally:
        connection.close()


def test_no_redis_url_means_local_tokens(
    monkeypatch: pytest.MonkeyPatch, events: list[str]
) -> None:
    """Without a URL (argument or $ASR_RESILIENCE_REDIS_URL) the cache is local, with a warning."""
    from asr_resilience.fleet import close_shared_connections

    monkeypatch.delenv("ASR_RESILIENCE_REDIS_URL", raising=False)
    try:
        cache = RedisTokenCache(Provider(), name="test")
        assert not cache.connection.healthy
        assert cache.get_sync() == "fleet-0001-secret"
        assert "asr_resilience.fleet_unavailable" in events
    finally:
        close_shared_connections()


def test_redis_restart_mid_run(private_redis: fs.RedisServer, events: list[str]) -> None:
    """Tokens keep flowing through a Redis restart; afterwards the fleet cache is used again."""
    connection = FleetConnection.from_url(private_redis.url, probe_interval=0.05)
    try:
        provider = Provider()
        cache = RedisTokenCache(provider, connection=connection, name="test")
        first = cache.get_sync()
        private_redis.kill()
        cache.invalidate(first)
        second = cache.get_sync()  # Redis is gone: a local refresh
        assert second != first
        assert events.count("asr_resilience.fleet_unavailable") == 1
        private_redis.start()
        fs.wait_until(lambda: connection.healthy, what="the probe to see Redis again")
        cache.invalidate(second)
        third = cache.get_sync()
        assert connection.client.hget(cache.key, "value") == third  # shared again
        assert events.count("asr_resilience.fleet_recovered") == 1
        assert provider.calls == 3
    finally:
        connection.close()


async def test_async_refresh_with_redis_gone(private_redis: fs.RedisServer) -> None:
    """An async refresh falls back to the provider when Redis dies between two refreshes."""
    connection = FleetConnection.from_url(private_redis.url, probe_interval=0.05)
    try:
        provider = Provider()
        cache = RedisTokenCache(provider, connection=connection, name="test")
        first = await cache.get()
        private_redis.kill()
        cache.invalidate(first)
        assert await cache.get() == "fleet-0002-secret"
    finally:
        connection.close()


def test_failing_provider_frees_the_lock(connection: FleetConnection, prefix: str) -> None:
    """A refresher whose provider fails frees the fleet's lock for the next worker."""
    from asr_resilience._errors import TokenRefreshError

    def broken() -> Token:
        raise ConnectionError("meta endpoint down")

    cache = _cache(connection, prefix, broken, provider_attempts=1)
    with pytest.raises(TokenRefreshError):
        cache.get_sync()
    assert connection.client.get(f"{cache.key}:lock") is None
    provider = Provider()
    assert _cache(connection, prefix, provider).get_sync() == "fleet-0001-secret"


# -- broken keys are repaired, not waited out -------------------------------------------------


def _break_lock(connection: FleetConnection, lock: str, kind: str) -> None:
    client = connection.client
    if kind == "no-ttl":
        client.set(lock, "forgotten-by-hand")
    elif kind == "hash":
        client.hset(lock, "owner", "someone")
    else:
        client.rpush(lock, "x")


@pytest.mark.parametrize(
    ("kind", "found"),
    [("no-ttl", "string without a TTL"), ("hash", "hash"), ("list", "list")],
)
def test_broken_lock_is_repaired_with_one_warning(
    connection: FleetConnection, prefix: str, events: list[str], kind: str, found: str
) -> None:
    """A lock key without a TTL or of another type: one warning, then the refresh goes on."""
    from asr_resilience.observe import Event, add_hook

    provider = Provider()
    cache = _cache(connection, prefix, provider)
    lock = f"{cache.key}:lock"
    _break_lock(connection, lock, kind)
    repairs: list[Event] = []
    remove = add_hook(lambda e: repairs.append(e) if e.name.endswith("key_repaired") else None)
    try:
        started = time.monotonic()
        assert cache.get_sync(timeout=5.0) == "fleet-0001-secret"
        assert time.monotonic() - started < 2.0  # not wait_timeout (15 s)
    finally:
        remove()
    assert events.count("asr_resilience.fleet_token_key_repaired") == 1
    assert dict(repairs[0].fields) == {"key": lock, "found": found}
    assert "asr_resilience.fleet_token_wait_timeout" not in events
    assert provider.calls == 1
    assert connection.client.exists(lock) == 0  # freed after the refresh
    assert connection.client.hget(cache.key, "value") == "fleet-0001-secret"


def test_broken_lock_is_repaired_once_for_many_workers(
    connection: FleetConnection, prefix: str, events: list[str]
) -> None:
    """Eight workers meet a lock without a TTL at once: one repair, one warning, one token."""
    provider = Provider()
    workers = [_cache(connection, prefix, provider) for _ in range(8)]
    _break_lock(connection, f"{workers[0].key}:lock", "no-ttl")
    barrier = threading.Barrier(len(workers))
    values: list[str] = []

    def fetch(cache: RedisTokenCache) -> None:
        barrier.wait(10)
        values.append(cache.get_sync(timeout=5.0))

    threads = [threading.Thread(target=fetch, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert values == ["fleet-0001-secret"] * len(workers)
    assert events.count("asr_resilience.fleet_token_key_repaired") == 1
    assert provider.calls == 1


def test_token_key_of_the_wrong_type_is_repaired(
    connection: FleetConnection, prefix: str, events: list[str]
) -> None:
    """A token key that is not a hash is replaced; Redis is not taken for unavailable."""
    provider = Provider()
    cache = _cache(connection, prefix, provider)
    connection.client.set(cache.key, "not-a-hash")
    assert cache.get_sync(timeout=5.0) == "fleet-0001-secret"
    assert events.count("asr_resilience.fleet_token_key_repaired") == 1
    assert "asr_resilience.fleet_unavailable" not in events
    assert connection.healthy
    assert connection.client.hget(cache.key, "value") == "fleet-0001-secret"


# -- waits through the clock, cancellation -----------------------------------------------------


def test_polling_under_no_wait_stays_bounded(
    connection: FleetConnection, prefix: str, events: list[str]
) -> None:
    """Under no_wait() polling for another worker does not sleep, and still ends."""
    from asr_resilience.testing import no_wait

    provider = Provider()
    cache = _cache(connection, prefix, provider, wait_timeout=5.0)
    lock = f"{cache.key}:lock"
    connection.client.set(lock, "slow-worker", px=60_000)
    started = time.monotonic()
    with no_wait():
        assert cache.get_sync(timeout=10.0) == "fleet-0001-secret"
    assert time.monotonic() - started < 2.0  # the 5 s of pauses were not slept
    assert "asr_resilience.fleet_token_wait_timeout" in events
    assert connection.client.get(lock) == "slow-worker"


def test_refresh_cancelled_by_its_loop_frees_the_lock(
    connection: FleetConnection, prefix: str
) -> None:
    """A refresh task cancelled when its loop shuts down frees the fleet's lock for others."""
    entered = threading.Event()

    async def hanging() -> Token:
        entered.set()
        await asyncio.Event().wait()  # until cancelled
        raise AssertionError("not reached")

    cache = _cache(connection, prefix, hanging)
    lock = f"{cache.key}:lock"

    async def main() -> None:
        waiter = asyncio.ensure_future(cache.get())
        await asyncio.to_thread(entered.wait, 10)
        assert connection.client.get(lock) is not None  # held by this refresh
        waiter.cancel()  # the waiter goes; the refresh task is cancelled by asyncio.run's end

    asyncio.run(main())
    fs.wait_until(lambda: connection.client.get(lock) is None, what="the lock to be freed")
    provider = Provider()
    assert _cache(connection, prefix, provider).get_sync(timeout=5.0) == "fleet-0001-secret"


def test_composed_store_is_the_same_as_the_cache(connection: FleetConnection, prefix: str) -> None:
    """TokenManager(provider, store=RedisTokenStore(...)) shares the token as RedisTokenCache."""
    provider = Provider()
    composed = TokenManager(
        provider, store=RedisTokenStore(connection, key_prefix=prefix, name="test")
    )
    cache = _cache(connection, prefix, provider)
    assert composed.get_sync() == cache.get_sync() == "fleet-0001-secret"
    assert provider.calls == 1
    assert cache.redis_store.key == cache.key == f"{prefix}token:{{test}}"
    assert "RedisTokenStore" in repr(cache)


# -- whose token: the name, and what is read back --------------------------------------------------


class IdentifiedProvider(Provider):
    """A Provider that knows whose credentials it holds (as AliyunTokenProvider does)."""

    def __init__(self, identity: str) -> None:
        super().__init__()
        self.identity = identity


def test_a_provider_without_identity_needs_a_name(connection: FleetConnection) -> None:
    """No name and no provider identity: a clear ValueError, never a shared default key."""
    with pytest.raises(ValueError, match="needs name="):
        RedisTokenCache(Provider(), connection=connection)
    with pytest.raises(ValueError, match="braces"):
        RedisTokenCache(Provider(), connection=connection, name="a}b")


def test_two_accesskeys_on_one_redis_get_their_own_tokens(
    connection: FleetConnection, prefix: str
) -> None:
    """Two services with different credentials on one Redis each get their own token; two
    workers with the same credentials share one."""
    first, second = IdentifiedProvider("ak-one"), IdentifiedProvider("ak-two")
    a = RedisTokenCache(first, connection=connection, key_prefix=prefix)
    b = RedisTokenCache(second, connection=connection, key_prefix=prefix)
    assert a.key != b.key
    assert a.get_sync() == b.get_sync() == "fleet-0001-secret"  # each its own provider's
    assert (first.calls, second.calls) == (1, 1)
    same = RedisTokenCache(IdentifiedProvider("ak-one"), connection=connection, key_prefix=prefix)
    assert same.key == a.key
    assert same.get_sync() == "fleet-0001-secret"


def test_aliyun_provider_identity_keys_the_shared_token(
    connection: FleetConnection, prefix: str
) -> None:
    """AliyunTokenProvider's identity hashes the AccessKey id and endpoint, never the secret;
    RedisTokenCache uses it as the name."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228")
    from asr_resilience.tokens import AliyunTokenProvider

    one = AliyunTokenProvider("LTAI-one", "secret-one-123456", endpoint="http://127.0.0.1:1/")
    again = AliyunTokenProvider("LTAI-one", "other-secret-6543", endpoint="http://127.0.0.1:1/")
    two = AliyunTokenProvider("LTAI-two", "secret-one-123456", endpoint="http://127.0.0.1:1/")
    elsewhere = AliyunTokenProvider("LTAI-one", "secret-one-123456", endpoint="http://127.0.0.1:2/")
    assert one.identity == again.identity
    assert len({one.identity, two.identity, elsewhere.identity}) == 3
    cache = RedisTokenCache(one, connection=connection, key_prefix=prefix)
    assert cache.key == f"{prefix}token:{{id-{one.identity}}}"
    assert "secret-one" not in cache.key
    assert "LTAI-one" not in cache.key


@pytest.mark.parametrize(
    "fields",
    [
        {"value": "has space", "expires_at": "4102444800"},
        {"value": "line\nbreak", "expires_at": "4102444800"},
        {"value": "ok-token-value", "expires_at": "nan"},
        {"value": "ok-token-value", "expires_at": "inf"},
        {"value": "ok-token-value", "expires_at": "soon"},
        {"value": "x" * 5000, "expires_at": "4102444800"},
        {"expires_at": "4102444800"},
        {"value": "ok-token-value", "expires_at": "4102444800", "issued_at": "nan"},
    ],
)
def test_garbage_in_redis_is_replaced_not_used(
    connection: FleetConnection, prefix: str, fields: dict[str, str], events: list[str]
) -> None:
    """A token hash holding garbage (bad characters, an expiry that is not a finite number,
    no value) is dropped and replaced by a fresh token; it is never handed out."""
    provider = Provider()
    cache = _cache(connection, prefix, provider)
    connection.client.hset(cache.key, mapping=fields)
    value = cache.get_sync()
    if fields.get("issued_at") == "nan":  # a valid token with a bad issued_at: used as it is
        assert value == "ok-token-value"
        assert provider.calls == 0
        return
    assert value == "fleet-0001-secret"
    assert provider.calls == 1
    assert connection.client.hget(cache.key, "value") == "fleet-0001-secret"
    assert "asr_resilience.fleet_token_key_repaired" in events

"""Tests for asr_resilience.tokens: single-flight refresh, proactive refresh, failures, secrecy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from asr_resilience._errors import TokenRefreshError
from asr_resilience.policy._model import Backoff, TokenSettings
from asr_resilience.tokens import (
    DEFAULT_FAILURE_COOLDOWN,
    StaticToken,
    Token,
    TokenManager,
    TokenProviderError,
    fingerprint,
)

SECRET = "s3cr3t-token-value-0123456789"
NO_JITTER = Backoff(initial=0.1, max=1.0, multiplier=2.0, jitter="none")
WAIT = 10.0  # safety timeout of every Event/join: a bug fails the test instead of hanging it


class FakeClock:
    """A clock that only moves when the test moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A sync sleep that only records the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class AsyncRecorder:
    """An async sleep that only records the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Arrivals:
    """Counts callers as they arrive and sets ``all_in`` when the last one does."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.all_in = threading.Event()
        self._lock = threading.Lock()

    def arrive(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.expected:
                self.all_in.set()


def _refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "asr-resilience-token-refresh"]


async def _drain_background_tasks() -> None:
    me = asyncio.current_task()
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not me))


# -- Token, fingerprint, StaticToken ----------------------------------------------------------


def test_fingerprint_is_short_stable_and_hides_the_value() -> None:
    """fingerprint() is 'tok:' + 8 hex digits, the same for the same value, without the value."""
    fp = fingerprint(SECRET)
    assert fp == fingerprint(SECRET)
    assert fp.startswith("tok:")
    assert len(fp) == 12
    int(fp[4:], 16)
    assert fp != fingerprint(SECRET + "x")
    assert SECRET not in fp


def test_token_repr_and_str_do_not_show_the_value() -> None:
    """repr() and str() of a Token show its fingerprint, never its value."""
    token = Token(SECRET, 123.0)
    assert SECRET not in repr(token)
    assert SECRET not in str(token)
    assert fingerprint(SECRET) in repr(token)
    assert str(token) == fingerprint(SECRET)
    assert "123.0" in repr(token)


def test_manager_repr_does_not_show_the_value() -> None:
    """repr() of a TokenManager and of StaticToken holding a token never shows its value."""
    provider = StaticToken(SECRET)
    manager = TokenManager(provider)
    assert manager.get_sync() == SECRET
    assert SECRET not in repr(manager)
    assert fingerprint(SECRET) in repr(manager)
    assert SECRET not in repr(provider)


def test_static_token_provider() -> None:
    """StaticToken always returns the same Token, and the manager serves it."""
    provider = StaticToken(SECRET, expires_at=5_000.0)
    assert provider() == Token(SECRET, 5_000.0)
    assert provider() is provider()
    manager = TokenManager(provider, clock=FakeClock(0.0))
    assert manager.get_sync() == SECRET
    assert manager.peek_token() == Token(SECRET, 5_000.0)
    assert manager.provider_calls == 1


def test_plain_string_provider_never_expires() -> None:
    """A provider returning a str gives a token that never expires nor refreshes."""
    clock = FakeClock(0.0)
    manager = TokenManager(lambda: "plain", clock=clock)
    assert manager.current() is None
    assert manager.get_sync() == "plain"
    assert manager.peek_token() == Token("plain", None)
    clock.now = 1e12
    assert manager.current() == "plain"
    assert manager.provider_calls == 1
    assert _refresh_threads() == []


# -- sync and async providers from either entry point ------------------------------------------


async def test_sync_provider_from_async_get_runs_in_a_worker_thread() -> None:
    """A sync provider called from get() runs off the event loop's thread."""
    loop_thread = threading.get_ident()
    provider_threads: list[int] = []

    def provider() -> str:
        provider_threads.append(threading.get_ident())
        return "from-sync"

    manager = TokenManager(provider)
    assert await manager.get() == "from-sync"
    assert await manager.get() == "from-sync"
    assert len(provider_threads) == 1
    assert provider_threads[0] != loop_thread


def test_async_provider_from_get_sync() -> None:
    """An async provider called from get_sync() runs in a fresh event loop (a worker thread)."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def provider() -> Token:
        loops.append(asyncio.get_running_loop())
        return Token("from-async", None)

    manager = TokenManager(provider)
    assert manager.get_sync() == "from-async"
    assert manager.get_sync() == "from-async"
    assert len(loops) == 1
    assert loops[0].is_closed()


def test_lambda_returning_a_coroutine_from_get_sync() -> None:
    """A sync callable that returns an awaitable is awaited too."""

    async def fetch() -> str:
        return "lazy"

    manager = TokenManager(lambda: fetch())
    assert manager.get_sync() == "lazy"


async def test_get_sync_refuses_an_async_provider_inside_a_running_loop() -> None:
    """get_sync() inside a running loop with an async provider raises instead of deadlocking."""

    async def provider() -> str:
        return "never"

    manager = TokenManager(provider)
    with pytest.raises(RuntimeError, match="await get"):
        manager.get_sync()
    assert manager.provider_calls == 0
    assert await manager.get() == "never"
    assert manager.get_sync() == "never"  # a held token is fine anywhere


# -- single flight -----------------------------------------------------------------------------


async def test_thousand_tasks_share_one_provider_call() -> None:
    """1000 concurrent get() on an empty manager cause exactly one provider call."""
    n = 1000
    arrivals = Arrivals(n)
    everyone_waiting = asyncio.Event()

    async def provider() -> Token:
        await everyone_waiting.wait()
        return Token("shared", None)

    manager = TokenManager(provider)

    async def caller() -> str:
        arrivals.arrive()
        if arrivals.all_in.is_set():
            everyone_waiting.set()
        return await manager.get()

    values = await asyncio.gather(*(caller() for _ in range(n)))
    assert manager.provider_calls == 1
    assert values == ["shared"] * n


async def test_thousand_mixed_tasks_and_threads_after_invalidation() -> None:
    """500 tasks + 500 threads needing a new token after invalidation cause one provider call."""
    n_tasks = n_threads = 500
    arrivals = Arrivals(n_tasks + n_threads)
    overlapped: list[bool] = []
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:  # the refresh: hold it until every caller has arrived
            overlapped.append(arrivals.all_in.wait(WAIT))
        return f"token-{calls}"

    manager = TokenManager(provider)
    first = await manager.get()
    assert first == "token-1"
    assert manager.invalidate(first)
    assert manager.current() is None

    thread_values: list[str] = []
    thread_errors: list[BaseException] = []

    def thread_caller() -> None:
        arrivals.arrive()
        try:
            thread_values.append(manager.get_sync())
        except BaseException as exc:  # pragma: no cover - reported by the asserts below
            thread_errors.append(exc)

    async def task_caller() -> str:
        arrivals.arrive()
        return await manager.get()

    threads = [threading.Thread(target=thread_caller) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    task_values = await asyncio.gather(*(task_caller() for _ in range(n_tasks)))
    for thread in threads:
        await asyncio.to_thread(thread.join, WAIT)

    assert thread_errors == []
    assert overlapped == [True]
    assert manager.provider_calls == 2  # the first token, then exactly one refresh
    assert task_values == ["token-2"] * n_tasks
    assert thread_values == ["token-2"] * n_threads


def test_threads_only_share_one_provider_call() -> None:
    """Plain threads calling get_sync() concurrently cause one provider call."""
    n = 64
    arrivals = Arrivals(n)
    barrier = threading.Barrier(n)

    def provider() -> str:
        arrivals.all_in.wait(WAIT)
        return "threaded"

    manager = TokenManager(provider)
    values: list[str] = []

    def caller() -> None:
        barrier.wait(WAIT)
        arrivals.arrive()
        values.append(manager.get_sync())

    threads = [threading.Thread(target=caller) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert values == ["threaded"] * n
    assert manager.provider_calls == 1


async def test_cancelling_the_leader_does_not_strand_the_followers() -> None:
    """Cancelling the task that started the refresh leaves it running for the others."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def provider() -> str:
        started.set()
        await release.wait()
        return "survivor"

    manager = TokenManager(provider)
    leader = asyncio.create_task(manager.get())
    await started.wait()
    followers = [asyncio.create_task(manager.get()) for _ in range(10)]
    leader.cancel()
    release.set()
    assert await asyncio.gather(*followers) == ["survivor"] * 10
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert manager.provider_calls == 1
    assert manager.current() == "survivor"


# -- compare-and-invalidate --------------------------------------------------------------------


def test_compare_and_invalidate() -> None:
    """invalidate() drops the held token only when given its value, and never calls the provider."""
    values = iter(["first", "second"])
    manager = TokenManager(lambda: next(values))
    assert manager.invalidate("anything") is False  # nothing held
    assert manager.get_sync() == "first"
    assert manager.invalidate("stale") is False
    assert manager.current() == "first"
    assert manager.invalidate("first") is True
    assert manager.current() is None
    assert manager.peek_token() is None
    assert manager.invalidate("first") is False
    assert manager.provider_calls == 1
    assert manager.get_sync() == "second"
    assert manager.invalidate("first") is False  # a late caller with the old value
    assert manager.current() == "second"


# -- expiry and proactive refresh --------------------------------------------------------------


def test_expired_token_is_not_served() -> None:
    """current() returns None from expires_at on, and get_sync() fetches a new token."""
    clock = FakeClock(0.0)
    tokens = iter([Token("one", 1_000.0), Token("two", 5_000.0)])
    manager = TokenManager(lambda: next(tokens), clock=clock, refresh_ahead=0.0)
    assert manager.get_sync() == "one"
    clock.now = 999.999
    assert manager.current() == "one"
    clock.now = 1_000.0
    assert manager.current() is None
    assert manager.provider_calls == 1  # current() alone never refreshes an expired token
    assert manager.get_sync() == "two"
    assert manager.provider_calls == 2


def test_proactive_refresh_in_a_background_thread() -> None:
    """Within refresh_ahead, current() serves the old token and starts exactly one refresh."""
    clock = FakeClock(0.0)
    started = threading.Event()
    release = threading.Event()
    calls = 0

    def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Token("old", 1_000.0)
        started.set()
        release.wait(WAIT)
        return Token("new", 2_000.0)

    manager = TokenManager(provider, clock=clock, refresh_ahead=300.0)
    assert manager.get_sync() == "old"
    clock.now = 699.0
    assert manager.current() == "old"
    assert manager.provider_calls == 1
    clock.now = 750.0
    assert manager.current() == "old"
    assert started.wait(WAIT)
    for _ in range(100):
        assert manager.current() == "old"
    assert manager.get_sync() == "old"
    assert manager.provider_calls == 2
    assert len(_refresh_threads()) == 1
    release.set()
    for thread in _refresh_threads():
        thread.join(WAIT)
    assert manager.current() == "new"
    assert manager.peek_token() == Token("new", 2_000.0)
    assert manager.provider_calls == 2


async def test_proactive_refresh_in_a_background_task() -> None:
    """Inside a running loop, the proactive refresh is a task; callers keep the old token."""
    clock = FakeClock(0.0)
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def provider() -> Token:
        loops.append(asyncio.get_running_loop())
        if len(loops) == 1:
            return Token("old", 1_000.0)
        started.set()
        await release.wait()
        return Token("new", 2_000.0)

    manager = TokenManager(provider, clock=clock, refresh_ahead=300.0)
    assert await manager.get() == "old"
    clock.now = 800.0
    assert manager.current() == "old"
    await started.wait()
    for _ in range(100):
        assert manager.current() == "old"
        assert await manager.get() == "old"
    assert manager.provider_calls == 2
    release.set()
    await _drain_background_tasks()
    assert manager.current() == "new"
    assert loops == [loop, loop]
    assert _refresh_threads() == []


async def test_blocking_callers_join_the_background_refresh() -> None:
    """When the token expires during a background refresh, get() waits for that same refresh."""
    clock = FakeClock(0.0)
    started = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Token("old", 1_000.0)
        started.set()
        await release.wait()
        return Token("new", 2_000.0)

    manager = TokenManager(provider, clock=clock, refresh_ahead=300.0)
    await manager.get()
    clock.now = 900.0
    assert manager.current() == "old"
    await started.wait()
    clock.now = 1_000.0
    waiters = [asyncio.create_task(manager.get()) for _ in range(5)]
    release.set()
    assert await asyncio.gather(*waiters) == ["new"] * 5
    assert manager.provider_calls == 2


async def test_failed_background_refresh_keeps_the_token_and_pauses() -> None:
    """A failed proactive refresh keeps serving the valid token and is not retried on every call."""
    clock = FakeClock(0.0)
    calls = 0

    async def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Token("old", 1_000.0)
        raise ConnectionError("meta endpoint down")

    manager = TokenManager(provider, clock=clock, refresh_ahead=300.0, provider_attempts=1)
    await manager.get()
    clock.now = 800.0
    assert manager.current() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 2
    assert manager.current() == "old"
    assert await manager.get() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 2  # paused
    clock.now = 811.0
    assert manager.current() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 3


def test_short_lived_token_is_renewed_at_half_its_lifetime() -> None:
    """A token living less than refresh_ahead is not refreshed on every call."""
    clock = FakeClock(0.0)
    manager = TokenManager(StaticToken("short", 100.0), clock=clock, refresh_ahead=300.0)
    assert manager.get_sync() == "short"
    clock.now = 49.0
    assert manager.current() == "short"
    assert manager.provider_calls == 1
    assert _refresh_threads() == []


# -- refresh_ahead and configure() -------------------------------------------------------------


def test_configure_respects_an_explicit_refresh_ahead() -> None:
    """configure() adopts settings.refresh_ahead only when none was given explicitly."""
    explicit = TokenManager(StaticToken("x"), refresh_ahead=60.0)
    explicit.configure(TokenSettings(refresh_ahead=900.0))
    assert explicit.refresh_ahead == 60.0

    implicit = TokenManager(StaticToken("x"))
    assert implicit.refresh_ahead == 300.0
    implicit.configure(TokenSettings(refresh_ahead=900.0))
    assert implicit.refresh_ahead == 900.0


def test_configure_applies_to_the_held_token() -> None:
    """A refresh_ahead adopted by configure() moves the refresh time of the held token."""
    clock = FakeClock(0.0)
    manager = TokenManager(StaticToken("held", 10_000.0), clock=clock)
    assert manager.get_sync() == "held"
    manager.configure(TokenSettings(refresh_ahead=100.0))
    clock.now = 9_800.0  # inside the default 300 s, outside the configured 100 s
    assert manager.current() == "held"
    assert _refresh_threads() == []
    assert manager.provider_calls == 1


def test_invalid_arguments() -> None:
    """A negative refresh_ahead or fewer than one provider attempt is refused."""
    with pytest.raises(ValueError, match="refresh_ahead"):
        TokenManager(StaticToken("x"), refresh_ahead=-1.0)
    with pytest.raises(ValueError, match="provider_attempts"):
        TokenManager(StaticToken("x"), provider_attempts=0)


# -- provider failures -------------------------------------------------------------------------


def test_provider_failing_twice_then_succeeding() -> None:
    """Two failures then a token: success after three calls and two backoff sleeps."""
    sleep = Recorder()
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"attempt {calls}")
        return "third-time"

    manager = TokenManager(provider, provider_attempts=3, provider_backoff=NO_JITTER, sleep=sleep)
    assert manager.get_sync() == "third-time"
    assert manager.provider_calls == 3
    assert sleep.delays == [0.1, 0.2]


async def test_async_provider_failing_twice_then_succeeding() -> None:
    """The same through get(): the async sleep gets the backoff delays."""
    sleep = AsyncRecorder()
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"attempt {calls}")
        return "third-time"

    manager = TokenManager(
        provider, provider_attempts=3, provider_backoff=NO_JITTER, async_sleep=sleep
    )
    assert await manager.get() == "third-time"
    assert manager.provider_calls == 3
    assert sleep.delays == [0.1, 0.2]


@pytest.mark.parametrize("bad", ["", 42, None, Token("", None)])
def test_bad_provider_results_count_as_failures(bad: object) -> None:
    """An empty value or something that is not a Token/str is retried like an exception."""
    results: Iterator[Any] = iter([bad, "good"])
    manager = TokenManager(lambda: next(results), sleep=Recorder())
    assert manager.get_sync() == "good"
    assert manager.provider_calls == 2


def test_already_expired_token_counts_as_a_failure() -> None:
    """A token that has expired when it arrives is not stored, and not asked for again at once."""
    manager = TokenManager(
        StaticToken("late", 10.0), clock=FakeClock(20.0), provider_attempts=2, sleep=Recorder()
    )
    with pytest.raises(TokenRefreshError, match="already expired"):
        manager.get_sync()
    assert manager.peek_token() is None
    assert manager.provider_calls == 1


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        (float("nan"), "expires at nan"),
        (float("inf"), "expires at inf"),
        (float("-inf"), "expires at -inf"),
        (5.0, "already expired"),
        ("tomorrow", "of type str"),
    ],
)
def test_unusable_expiry_is_refused_once_not_refreshed_on_every_use(
    expires_at: Any, reason: str
) -> None:
    """NaN, infinite, past or non-numeric expiry: refused, one provider call for 51 uses."""
    manager = TokenManager(
        StaticToken("odd-expiry", expires_at), clock=FakeClock(20.0), sleep=Recorder()
    )
    errors: list[TokenRefreshError] = []
    for _ in range(51):
        with pytest.raises(TokenRefreshError, match=reason) as info:
            manager.get_sync()
        errors.append(info.value)
    assert manager.provider_calls == 1
    assert manager.peek_token() is None
    assert "odd-expiry" not in str(errors[0])


def test_provider_failing_always_sync() -> None:
    """After provider_attempts failures, TokenRefreshError; tried again after the cool-down."""
    sleep = Recorder()
    raised: list[Exception] = []

    def provider() -> str:
        exc = ConnectionError(f"boom {len(raised) + 1}")
        raised.append(exc)
        raise exc

    clock = FakeClock(0.0)
    manager = TokenManager(provider, provider_attempts=3, sleep=sleep, clock=clock)
    with pytest.raises(TokenRefreshError) as info:
        manager.get_sync()
    error = info.value
    assert error.__cause__ is raised[-1]
    assert error.action == "refresh-token"
    assert error.code is None
    assert error.hint == "check the AccessKey pair and the meta endpoint"
    assert str(error.args[0]) == "could not get a token from the provider: ConnectionError: boom 3"
    assert manager.provider_calls == 3
    assert len(sleep.delays) == 2
    assert all(0.0 <= d <= 0.2 for d in sleep.delays)
    # Within the cool-down the failure is handed out again without a provider call ...
    with pytest.raises(TokenRefreshError) as again:
        manager.get_sync()
    assert again.value is not error
    assert again.value.__cause__ is raised[-1]
    assert manager.provider_calls == 3
    # ... but it is not cached for longer: after the cool-down the next call tries again.
    clock.now += DEFAULT_FAILURE_COOLDOWN
    with pytest.raises(TokenRefreshError):
        manager.get_sync()
    assert manager.provider_calls == 6


async def test_provider_failing_always_async_reaches_every_waiter() -> None:
    """Every task waiting on a failing refresh gets its own TokenRefreshError with the cause."""
    n = 50
    arrivals = Arrivals(n)
    everyone_waiting = asyncio.Event()
    raised: list[Exception] = []

    async def provider() -> str:
        await everyone_waiting.wait()
        exc = PermissionError("InvalidAccessKeyId")
        raised.append(exc)
        raise exc

    manager = TokenManager(provider, provider_attempts=2, async_sleep=AsyncRecorder())

    async def caller() -> str:
        arrivals.arrive()
        if arrivals.all_in.is_set():
            everyone_waiting.set()
        return await manager.get()

    results = await asyncio.gather(*(caller() for _ in range(n)), return_exceptions=True)
    assert manager.provider_calls == 2
    assert all(isinstance(r, TokenRefreshError) for r in results)
    errors = [r for r in results if isinstance(r, TokenRefreshError)]
    assert all(e.__cause__ is raised[-1] for e in errors)
    assert len({id(e) for e in errors}) == n  # one instance per waiter


def test_provider_failing_always_reaches_every_thread() -> None:
    """Every thread waiting on a failing refresh gets TokenRefreshError with the cause."""
    n = 32
    arrivals = Arrivals(n)
    raised: list[Exception] = []

    def provider() -> str:
        arrivals.all_in.wait(WAIT)
        exc = TimeoutError("meta endpoint timed out")
        raised.append(exc)
        raise exc

    manager = TokenManager(provider, provider_attempts=1)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def caller() -> None:
        arrivals.arrive()
        try:
            manager.get_sync()
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert manager.provider_calls == 1
    assert len(errors) == n
    assert all(isinstance(e, TokenRefreshError) and e.__cause__ is raised[0] for e in errors)


# -- timeouts: a caller gives up, the refresh goes on ------------------------------------------


def test_get_sync_timeout_leaves_the_refresh_running() -> None:
    """get_sync(timeout) raises TimeoutError past its timeout; the late token is kept for all."""
    entered = threading.Event()
    release = threading.Event()

    def provider() -> str:
        entered.set()
        release.wait(WAIT)
        return "late"

    manager = TokenManager(provider)
    with pytest.raises(TimeoutError):
        manager.get_sync(timeout=0.05)
    assert entered.wait(WAIT)
    with pytest.raises(TimeoutError):  # a second caller joins the same hanging refresh
        manager.get_sync(timeout=0.0)
    release.set()
    assert manager.get_sync(timeout=WAIT) == "late"
    assert manager.provider_calls == 1


async def test_get_timeout_leaves_the_refresh_running() -> None:
    """await get(timeout) raises TimeoutError past its timeout; the refresh task finishes."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def provider() -> str:
        entered.set()
        await release.wait()
        return "late"

    manager = TokenManager(provider)
    with pytest.raises(TimeoutError):
        await manager.get(timeout=0.05)
    await entered.wait()
    waiter = asyncio.create_task(manager.get())  # no timeout: waits for the same refresh
    release.set()
    assert await waiter == "late"
    assert await manager.get(timeout=0.0) == "late"
    assert manager.provider_calls == 1


async def test_sync_and_async_waiters_time_out_independently() -> None:
    """Threads and tasks on one hanging refresh: the bounded ones give up, the others get it."""
    entered = threading.Event()
    release = threading.Event()

    def provider() -> str:
        entered.set()
        release.wait(WAIT)
        return "shared"

    manager = TokenManager(provider)
    patient = asyncio.create_task(manager.get())
    assert await asyncio.to_thread(entered.wait, WAIT)
    with pytest.raises(TimeoutError):
        await manager.get(timeout=0.01)
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(manager.get_sync, 0.01)
    release.set()
    assert await patient == "shared"
    assert manager.provider_calls == 1


def test_backoff_that_outlasts_every_waiter_is_not_slept() -> None:
    """A retry that would start after the caller's timeout is not made: one call, the failure."""
    sleep = Recorder()
    slow = Backoff(initial=30.0, max=30.0, multiplier=2.0, jitter="none")

    def provider() -> str:
        raise ConnectionError("meta endpoint down")

    manager = TokenManager(provider, provider_backoff=slow, sleep=sleep)
    with pytest.raises(TokenRefreshError):
        manager.get_sync(timeout=WAIT)
    assert manager.provider_calls == 1
    assert sleep.delays == []


# -- failures do not amplify: cool-down, retry_after, non-retryable errors ----------------------


class Failing:
    """A provider that always raises ``error`` and counts its calls (thread-safe)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        raise self.error


def test_concurrent_failing_callers_share_one_cool_down() -> None:
    """32 threads x 5 tries on a failing provider: provider_attempts calls per cool-down window."""
    clock = FakeClock(0.0)
    provider = Failing(ConnectionError("meta endpoint down"))
    manager = TokenManager(provider, clock=clock, provider_attempts=3, sleep=Recorder())
    n, tries = 32, 5
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def caller() -> None:
        barrier.wait(WAIT)
        for _ in range(tries):
            try:
                manager.get_sync(timeout=WAIT)
            except BaseException as exc:
                with lock:
                    failures.append(exc)

    def storm() -> None:
        threads = [threading.Thread(target=caller) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)

    storm()
    assert len(failures) == n * tries
    assert all(isinstance(f, TokenRefreshError) for f in failures)
    assert provider.calls == 3  # not n * tries * 3: the clock did not move
    clock.now += DEFAULT_FAILURE_COOLDOWN  # the next window
    storm()
    assert provider.calls == 6


async def test_concurrent_failing_tasks_share_one_cool_down() -> None:
    """The same with 200 tasks retrying: one refresh's attempts, then failures without calls."""
    clock = FakeClock(0.0)
    provider = Failing(ConnectionError("meta endpoint down"))
    manager = TokenManager(provider, clock=clock, provider_attempts=3, async_sleep=AsyncRecorder())

    async def caller() -> int:
        failed = 0
        for _ in range(5):
            with pytest.raises(TokenRefreshError):
                await manager.get(timeout=WAIT)
            failed += 1
        return failed

    assert sum(await asyncio.gather(*(caller() for _ in range(200)))) == 1000
    assert provider.calls == 3


def test_retry_after_is_honoured() -> None:
    """A failure naming retry_after ends the refresh at once; no call before that time passes."""
    clock = FakeClock(0.0)
    throttled = TokenProviderError("Throttling.User", "slow down", http_status=400, retry_after=5.0)
    provider = Failing(throttled)
    sleep = Recorder()
    manager = TokenManager(provider, clock=clock, provider_attempts=3, sleep=sleep)
    with pytest.raises(TokenRefreshError) as first:
        manager.get_sync()
    assert first.value.__cause__ is throttled
    assert provider.calls == 1  # no in-loop retry: the service asked for 5 s
    assert sleep.delays == []
    for now in (1.0, 4.999):  # past the default cool-down, still inside retry_after
        clock.now = now
        with pytest.raises(TokenRefreshError) as again:
            manager.get_sync()
        assert again.value.__cause__ is throttled
    assert provider.calls == 1
    clock.now = 5.0
    with pytest.raises(TokenRefreshError):
        manager.get_sync()
    assert provider.calls == 2


def test_non_retryable_provider_error_is_not_retried() -> None:
    """An error whose retryable is false (e.g. SignatureDoesNotMatch) costs one provider call."""
    refused = TokenProviderError("SignatureDoesNotMatch", "bad secret", http_status=400)
    assert not refused.retryable
    provider = Failing(refused)
    manager = TokenManager(provider, provider_attempts=3, sleep=Recorder())
    with pytest.raises(TokenRefreshError, match="SignatureDoesNotMatch"):
        manager.get_sync()
    assert provider.calls == 1


async def test_failed_background_refresh_respects_retry_after() -> None:
    """A proactive refresh throttled with retry_after is not tried again before that time."""
    clock = FakeClock(0.0)
    calls = 0

    async def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Token("old", 1_000.0)
        raise TokenProviderError("Throttling.User", "slow down", retry_after=60.0)

    manager = TokenManager(provider, clock=clock, refresh_ahead=300.0)
    await manager.get()
    clock.now = 800.0
    assert manager.current() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 2
    clock.now = 850.0  # past PROACTIVE_RETRY_PAUSE, inside retry_after
    assert manager.current() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 2
    clock.now = 860.0
    assert manager.current() == "old"
    await _drain_background_tasks()
    assert manager.provider_calls == 3


# -- waits through the clock -------------------------------------------------------------------


def test_no_wait_removes_the_provider_backoff_sync() -> None:
    """Under testing.no_wait() the provider's backoff does not sleep (sync)."""
    from asr_resilience.testing import no_wait

    results: Iterator[Any] = iter([ConnectionError("1"), ConnectionError("2"), "third"])

    def provider() -> str:
        item = next(results)
        if isinstance(item, Exception):
            raise item
        return str(item)

    slow = Backoff(initial=3.0, max=3.0, multiplier=1.0, jitter="none")
    manager = TokenManager(provider, provider_backoff=slow)
    started = time.monotonic()
    with no_wait():
        assert manager.get_sync(timeout=WAIT) == "third"
    assert time.monotonic() - started < 2.0
    assert manager.provider_calls == 3


async def test_no_wait_removes_the_provider_backoff_async() -> None:
    """Under testing.no_wait() the provider's backoff does not sleep (async)."""
    from asr_resilience.testing import no_wait

    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(str(calls))
        return "third"

    slow = Backoff(initial=3.0, max=3.0, multiplier=1.0, jitter="none")
    manager = TokenManager(provider, provider_backoff=slow)
    started = time.monotonic()
    with no_wait():
        assert await manager.get(timeout=WAIT) == "third"
    assert time.monotonic() - started < 2.0
    assert manager.provider_calls == 3


def test_a_clock_object_gives_time_and_waits() -> None:
    """clock= may be a Clock: its wall clock dates tokens and its sleep takes the backoff."""
    from asr_resilience.testing import FakeClock as TestingClock

    fake = TestingClock(start=0.0, wall_start=0.0)
    results: Iterator[Any] = iter([ConnectionError("once"), Token("t", 100.0)])

    def provider() -> Token:
        item = next(results)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    manager = TokenManager(provider, clock=fake.clock(), provider_backoff=NO_JITTER)
    assert manager.get_sync() == "t"
    assert fake.sleeps == [0.1]
    fake.advance(100.0 - fake.now)
    assert manager.current() is None  # expired by the Clock's wall time


# -- against the simulated meta service (CreateToken) ------------------------------------------

_TEA_UTCNOW = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcnow\(\) is deprecated"
    r":DeprecationWarning:alibabacloud_tea_openapi\.utils"
)


class Counting:
    """Counts the CreateToken calls a provider makes (thread-safe), passing them on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Token:
        with self._lock:
            self.calls += 1
        token: Token = self.inner()
        return token


@_TEA_UTCNOW
@pytest.mark.parametrize(
    ("throttled", "secret", "expected"),
    [(True, None, 3), (False, "wrong-secret", 1)],
    ids=["throttled-retryable", "wrong-secret-not-retryable"],
)
def test_failing_create_token_is_not_amplified_by_concurrent_callers(
    throttled: bool, secret: str | None, expected: int
) -> None:
    """N threads retrying against a failing CreateToken: at most provider_attempts per window."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    from asr_resilience.simulator._config import SimulatorConfig
    from asr_resilience.simulator._server import SimulatorThread
    from asr_resilience.testing import no_wait
    from asr_resilience.tokens import AliyunTokenProvider

    config = SimulatorConfig(meta_throttle_interval=3600.0 if throttled else 0.0)
    with SimulatorThread(config=config) as sim:
        info = sim.info()
        aliyun = AliyunTokenProvider(
            info["access_key_id"], secret or info["access_key_secret"], endpoint=sim.meta_url
        )
        counting = Counting(aliyun.sync)
        clock = FakeClock(time.time())  # frozen: the cool-down never ends during the storm
        manager = TokenManager(counting, clock=clock, provider_attempts=3)
        if throttled:  # the one call the hour allows
            first = manager.get_sync(timeout=WAIT)
            assert manager.invalidate(first)
            counting.calls = 0
        n, tries = 16, 4
        barrier = threading.Barrier(n)
        outcomes: list[BaseException] = []
        lock = threading.Lock()

        def caller() -> None:
            barrier.wait(WAIT)
            for _ in range(tries):
                try:
                    manager.get_sync(timeout=WAIT)
                except BaseException as exc:
                    with lock:
                        outcomes.append(exc)

        with no_wait():
            threads = [threading.Thread(target=caller) for _ in range(n)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
    assert len(outcomes) == n * tries
    assert all(isinstance(o, TokenRefreshError) for o in outcomes)
    causes = {o.__cause__.code for o in outcomes if o.__cause__ is not None}  # type: ignore[attr-defined]
    assert causes == {"Throttling.User" if throttled else "SignatureDoesNotMatch"}
    assert counting.calls == expected

"""The token provider's retries are calls of the engine: its decisions, waits and events."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog

from asr_resilience._errors import TokenRefreshError
from asr_resilience.observe import add_hook
from asr_resilience.policy._model import Backoff
from asr_resilience.testing import FakeClock
from asr_resilience.tokens import Token, TokenManager, TokenProviderError

from .helpers import until

NO_JITTER = Backoff(initial=0.1, max=1.0, multiplier=2.0, jitter="none")
WAIT = 10.0  # a real-time safety bound: a bug fails the test instead of hanging it


class Flaky:
    """A provider that raises ``ConnectionError`` ``failures`` times, then returns a token."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> Token:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"meta endpoint down (secret-ish text {self.calls})")
        return Token("fresh-token-value", None)


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "asr_resilience." + name]


def test_provider_retries_are_scheduled_by_the_engine() -> None:
    """Two failures then a token: two retry_scheduled events of the provider's rule, the
    backoff slept through the manager's clock, the provider's text kept out of the events."""
    clock = FakeClock()
    provider = Flaky(2)
    manager = TokenManager(provider, clock=clock.clock(), provider_backoff=NO_JITTER)
    with structlog.testing.capture_logs() as logs:
        assert manager.get_sync() == "fresh-token-value"
    scheduled = _events(logs, "retry_scheduled")
    assert [(e["function"], e["rule"], e["attempt"], e["delay"]) for e in scheduled] == [
        ("token-provider", "provider.retry", 1, 0.1),
        ("token-provider", "provider.retry", 2, 0.2),
    ]
    assert all(e["message"] == "ConnectionError" for e in scheduled)
    assert clock.sleeps == [0.1, 0.2]
    assert provider.calls == manager.provider_calls == 3


async def test_async_provider_retries_reach_hooks_as_decisions_not_calls() -> None:
    """Through get(): hooks get the engine's retry_scheduled for the provider, but no call or
    attempt events of their own (call metrics count the application's calls only)."""
    clock = FakeClock()
    provider = Flaky(1)
    manager = TokenManager(provider, clock=clock.clock(), provider_backoff=NO_JITTER)
    seen: list[tuple[str, object]] = []
    remove = add_hook(lambda event: seen.append((event.name, event.fields.get("function"))))
    try:
        assert await manager.get() == "fresh-token-value"
    finally:
        remove()
    names = [(name.removeprefix("asr_resilience."), function) for name, function in seen]
    assert names == [("retry_scheduled", "token-provider"), ("token_refreshed", None)]
    assert clock.sleeps == [0.1]


def test_provider_retries_stop_at_the_callers_deadline() -> None:
    """A wait that would end after the caller's timeout is not slept: the engine gives up with
    the deadline, and the caller gets the provider's failure."""
    clock = FakeClock()
    provider = Flaky(100)
    slow = Backoff(initial=1.0, max=8.0, multiplier=2.0, jitter="none")
    manager = TokenManager(
        provider, clock=clock.clock(), provider_backoff=slow, provider_attempts=10
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(TokenRefreshError) as caught:
        manager.get_sync(timeout=3.5)
    assert clock.sleeps == [1.0, 2.0]  # 4.0 more would end at 7.0, past 3.5
    assert provider.calls == 3
    (gave_up,) = _events(logs, "gave_up")
    assert gave_up["error"] == "DeadlineExceededError"
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_provider_attempts_bound_the_engine_call() -> None:
    """provider_attempts is the rule's attempts: RetryExhausted after that many calls."""
    clock = FakeClock()
    provider = Flaky(100)
    manager = TokenManager(
        provider, clock=clock.clock(), provider_backoff=NO_JITTER, provider_attempts=2
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(TokenRefreshError):
        manager.get_sync()
    assert provider.calls == 2
    (gave_up,) = _events(logs, "gave_up")
    assert (gave_up["error"], gave_up["rule"]) == ("RetryExhaustedError", "provider.retry")


def test_retry_after_is_the_engines_decision_and_the_cool_down_keeps_it() -> None:
    """A failure naming retry_after: the engine gives up at once (rule provider.retry_after),
    and no caller reaches the provider before that time has passed on the clock."""
    clock = FakeClock()
    throttled = TokenProviderError("Throttling.User", "slow down", http_status=400, retry_after=5.0)
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise throttled
        return "after-the-wait"

    manager = TokenManager(provider, clock=clock.clock(), provider_attempts=3)
    with structlog.testing.capture_logs() as logs, pytest.raises(TokenRefreshError) as caught:
        manager.get_sync()
    assert caught.value.__cause__ is throttled
    (gave_up,) = _events(logs, "gave_up")
    assert (gave_up["error"], gave_up["rule"]) == ("FailFastError", "provider.retry_after")
    assert clock.sleeps == []
    clock.advance(4.9)
    with pytest.raises(TokenRefreshError):
        manager.get_sync()
    assert calls == 1
    clock.advance(0.1)
    assert manager.get_sync() == "after-the-wait"
    assert calls == 2


def test_a_non_retryable_error_is_decided_fail_fast() -> None:
    """retryable=False (SignatureDoesNotMatch): one call, the engine's fail-fast decision."""
    refused = TokenProviderError("SignatureDoesNotMatch", "bad secret", http_status=400)
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        raise refused

    manager = TokenManager(provider, clock=FakeClock().clock())
    with structlog.testing.capture_logs() as logs, pytest.raises(TokenRefreshError):
        manager.get_sync()
    assert calls == 1
    (gave_up,) = _events(logs, "gave_up")
    assert (gave_up["error"], gave_up["rule"]) == ("FailFastError", "provider.not_retryable")


async def test_a_caller_that_joins_later_extends_the_provider_deadline() -> None:
    """The deadline is the latest waiting caller's: after the first caller timed out, a retry
    the second caller's timeout still covers is made, and that caller gets its token."""
    clock = FakeClock()
    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            await release.wait()
            raise ConnectionError("meta endpoint down")
        return "second-call"

    manager = TokenManager(provider, clock=clock.clock(), provider_backoff=NO_JITTER)
    first = asyncio.create_task(manager.get(timeout=0.05))  # on the clock: 0.05 s, < one backoff
    await entered.wait()
    second = asyncio.create_task(manager.get(timeout=WAIT))
    await until(
        lambda: manager._inflight is not None and manager._inflight.deadline > clock.now + 1.0,
        "the second caller joined the refresh",
    )
    with pytest.raises(TimeoutError):
        await first
    release.set()
    assert await second == "second-call"
    assert clock.sleeps == [0.1]
    assert calls == 2

"""Tests for asr_resilience.limits._scope: the process-wide registry of shared limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asr_resilience.limits import (
    AdaptiveLimiter,
    CircuitBreaker,
    RetryBudget,
    get_scope,
    reset_scopes,
)
from asr_resilience.policy import (
    CircuitBreakerSettings,
    ConcurrencySettings,
    Policy,
    RetryBudgetSettings,
)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_scopes() -> Iterator[None]:
    """Every test starts and ends with an empty registry."""
    reset_scopes()
    yield
    reset_scopes()


def test_same_name_same_scope() -> None:
    """A name maps to one scope, whichever policy asks for it later."""
    first = get_scope("account-a", Policy())
    other_policy = Policy(concurrency=ConcurrencySettings(adaptive=True))
    assert get_scope("account-a", other_policy) is first
    assert first.limiter is None  # built from the first policy's settings
    assert get_scope("account-b", other_policy) is not first


def test_default_policy_builds_budget_and_breaker() -> None:
    """The default settings give a budget and a breaker, and no limiter."""
    scope = get_scope("defaults", Policy())
    assert scope.name == "defaults"
    assert isinstance(scope.budget, RetryBudget)
    assert isinstance(scope.breaker, CircuitBreaker)
    assert scope.limiter is None


def test_disabled_settings_give_none() -> None:
    """Disabled budget and breaker are left out; adaptive concurrency adds a limiter."""
    policy = Policy(
        retry_budget=RetryBudgetSettings(enabled=False),
        circuit_breaker=CircuitBreakerSettings(enabled=False),
        concurrency=ConcurrencySettings(adaptive=True, initial=7),
    )
    scope = get_scope("custom", policy)
    assert scope.budget is None
    assert scope.breaker is None
    assert isinstance(scope.limiter, AdaptiveLimiter)
    assert scope.limiter.limit == 7.0
    scope.on_success(0.0)  # nothing to book, nothing to fail


def test_on_success_books_budget_and_breaker() -> None:
    """``on_success`` deposits a call in the budget and a success in the breaker."""
    clock = FakeClock()
    policy = Policy(
        retry_budget=RetryBudgetSettings(ratio=0.5, min_per_second=0.0, window=10.0),
        circuit_breaker=CircuitBreakerSettings(failure_ratio=0.5, min_calls=4),
    )
    scope = get_scope("booked", policy, clock=clock)
    assert scope.budget is not None
    assert scope.breaker is not None
    for _ in range(4):
        scope.on_success(clock.now)
    assert scope.budget.available() == 2.0
    for _ in range(3):
        scope.breaker.record_failure()
    assert scope.breaker.state == "closed"  # 3 / 7 < 0.5


def test_callbacks_reach_the_members() -> None:
    """``on_breaker_change`` is wired to the breaker of a new scope."""
    changes: list[tuple[str, str]] = []
    policy = Policy(circuit_breaker=CircuitBreakerSettings(min_calls=1))
    scope = get_scope(
        "wired",
        policy,
        clock=FakeClock(),
        on_breaker_change=lambda old, new: changes.append((old, new)),
    )
    assert scope.breaker is not None
    scope.breaker.record_failure()
    assert changes == [("closed", "open")]


def test_reset_scopes_forgets_everything() -> None:
    """After ``reset_scopes`` the same name builds a new scope."""
    first = get_scope("account-a", Policy())
    reset_scopes()
    assert get_scope("account-a", Policy()) is not first

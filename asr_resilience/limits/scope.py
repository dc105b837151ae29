"""Scopes: the budget, breaker and limiter shared by every call aimed at one account or service.

The registry is process-wide: the first ``get_scope`` for a name builds the scope from that
policy's settings, and later calls with the same name get the same object, so two policies aimed
at one account share one quota, one retry budget and one breaker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..policy.policy import Policy
from .breaker import BreakerState, CircuitBreaker
from .budget import RetryBudget
from .limiter import AdaptiveLimiter

__all__ = ["Scope", "get_scope", "reset_scopes"]


@dataclass(eq=False, slots=True)
class Scope:
    """The limits one named scope shares; a member is ``None`` when its settings disable it."""

    name: str
    budget: RetryBudget | None
    breaker: CircuitBreaker | None
    limiter: AdaptiveLimiter | None

    def on_success(self, now: float) -> None:
        """Book a successful first attempt: a deposit in the budget, a success in the breaker."""
        budget = self.budget
        if budget is not None:
            budget.deposit(now)
        breaker = self.breaker
        if breaker is not None:
            breaker.record_success(now)


_scopes: dict[str, Scope] = {}
_scopes_lock = threading.Lock()


def get_scope(
    name: str,
    policy: Policy,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_breaker_change: Callable[[BreakerState, BreakerState], None] | None = None,
    on_limit_change: Callable[[float, float], None] | None = None,
) -> Scope:
    """The scope called ``name``, built from ``policy`` on first use; the same object after."""
    scope = _scopes.get(name)
    if scope is not None:
        return scope
    with _scopes_lock:
        scope = _scopes.get(name)
        if scope is None:
            scope = _build(name, policy, clock, on_breaker_change, on_limit_change)
            _scopes[name] = scope
        return scope


def _build(
    name: str,
    policy: Policy,
    clock: Callable[[], float],
    on_breaker_change: Callable[[BreakerState, BreakerState], None] | None,
    on_limit_change: Callable[[float, float], None] | None,
) -> Scope:
    budget = RetryBudget(policy.retry_budget, clock) if policy.retry_budget.enabled else None
    breaker = (
        CircuitBreaker(policy.circuit_breaker, clock, on_breaker_change)
        if policy.circuit_breaker.enabled
        else None
    )
    limiter = (
        AdaptiveLimiter(policy.concurrency, clock, on_limit_change)
        if policy.concurrency.adaptive
        else None
    )
    return Scope(name=name, budget=budget, breaker=breaker, limiter=limiter)


def reset_scopes() -> None:
    """Forget every scope (for tests): the next ``get_scope`` builds afresh."""
    with _scopes_lock:
        _scopes.clear()

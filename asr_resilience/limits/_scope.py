"""Scopes: the budget, breaker and limiter shared by every call aimed at one account or service.

The registry is process-wide: the first ``get_scope`` for a name builds the scope from that
policy's settings, and later calls with the same name get the same object, so two policies aimed
at one account share one quota, one retry budget and one breaker. With ``fleet.enabled`` the
limiter comes from the ``"redis"`` backend of :mod:`.backends` (the fleet's limiter, shared
through Redis by every process that names the scope) instead of one per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..policy._policy import Policy
from ._backends import limiter_backend
from ._breaker import BreakerState, CircuitBreaker
from ._budget import RetryBudget
from ._limiter import AdaptiveLimiter, Limiter

__all__ = ["Scope", "get_scope", "reset_scopes"]


@dataclass(eq=False, slots=True)
class Scope:
    """The limits one named scope shares; a member is ``None`` when its settings disable it."""

    name: str
    budget: RetryBudget | None
    breaker: CircuitBreaker | None
    limiter: Limiter | None
    closed: bool = False
    """Closed by :meth:`close` (or ``reset_scopes``): callers holding it ask the registry again."""

    def on_success(self, now: float) -> None:
        """Book a successful first attempt: a deposit in the budget, a success in the breaker.

        The hot path of every successful call: ``RetryBudget.deposit`` and the closed breaker's
        ``record_success`` inlined (same package; each is one bucket check and one ``+=``).
        """
        budget = self.budget
        if budget is not None:
            if now >= budget._next_at:
                budget._rotate(int(now / budget._width))
            budget._cur_a += 1
        breaker = self.breaker
        if breaker is not None:
            if breaker._fast:
                if now >= breaker._next_at:
                    breaker._rotate(int(now / breaker._width))
                breaker._cur_a += 1
            else:
                breaker.record_success(now)

    def close(self) -> None:
        """Close the scope's limiter: a fleet limiter's leases go back to Redis, and every
        caller waiting for a slot raises :class:`~asr_resilience.limits.LimiterClosedError`."""
        self.closed = True
        if self.limiter is not None:
            self.limiter.close()


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
    limiter: Limiter | None
    if policy.fleet.enabled:
        factory = limiter_backend("redis")
        limiter = factory(name, policy, clock=clock, on_change=on_limit_change)
    elif policy.concurrency.adaptive:
        limiter = AdaptiveLimiter(policy.concurrency, clock, on_limit_change)
    else:
        limiter = None
    return Scope(name=name, budget=budget, breaker=breaker, limiter=limiter)


def reset_scopes() -> None:
    """Close and forget every scope (at shutdown, or between tests): the next ``get_scope``
    builds afresh.

    Each scope is closed (:meth:`Scope.close`): fleet leases go back to the fleet, and callers
    still waiting for a slot raise :class:`~asr_resilience.limits.LimiterClosedError`.
    """
    with _scopes_lock:
        scopes = list(_scopes.values())
        _scopes.clear()
    for scope in scopes:
        scope.close()

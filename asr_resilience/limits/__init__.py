"""Limits shared per scope: retry budget, circuit breaker and adaptive concurrency limiter."""

from ._backends import LimiterFactory, limiter_backend, register_limiter_backend
from ._breaker import BreakerState, CircuitBreaker
from ._budget import RetryBudget
from ._limiter import AdaptiveLimiter, Limiter, LimiterClosedError, Outcome, Permit
from ._scope import Scope, get_scope, reset_scopes

__all__ = [
    "AdaptiveLimiter",
    "BreakerState",
    "CircuitBreaker",
    "Limiter",
    "LimiterClosedError",
    "LimiterFactory",
    "Outcome",
    "Permit",
    "RetryBudget",
    "Scope",
    "get_scope",
    "limiter_backend",
    "register_limiter_backend",
    "reset_scopes",
]

"""Limits shared per scope: retry budget, circuit breaker and adaptive concurrency limiter."""

from .backends import LimiterFactory, limiter_backend, register_limiter_backend
from .breaker import BreakerState, CircuitBreaker
from .budget import RetryBudget
from .limiter import AdaptiveLimiter, Limiter, Outcome, Permit
from .scope import Scope, get_scope, reset_scopes

__all__ = [
    "AdaptiveLimiter",
    "BreakerState",
    "CircuitBreaker",
    "Limiter",
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

"""Limits shared per scope: retry budget, circuit breaker and adaptive concurrency limiter."""

from .breaker import BreakerState, CircuitBreaker
from .budget import RetryBudget
from .limiter import AdaptiveLimiter, Outcome, Permit
from .scope import Scope, get_scope, reset_scopes

__all__ = [
    "AdaptiveLimiter",
    "BreakerState",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "RetryBudget",
    "Scope",
    "get_scope",
    "reset_scopes",
]

"""Before and after each attempt: the scope's breaker and limiter, the token, the bookkeeping.

Shared by the decorator's attempts and the block form, sync and async, so both keep one rule:
a call is admitted by the breaker, then waits for a limiter slot within its deadline, then gets
the current token; when it ends, the slot goes back with its outcome and a success is counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..extract import extract_failure
from .call import CallState, CircuitOpen, QueueTimeout, ResultFailure

if TYPE_CHECKING:
    from ..limits.limiter import Permit


def throttled(exc: BaseException) -> bool:
    """True when ``exc`` is the vendor's quota answer (40000005, or HTTP 429 without a code)."""
    failure = exc.failure if isinstance(exc, ResultFailure) else extract_failure(exc)
    return failure is not None and failure.throttled


def admit_sync(state: CallState) -> Permit | None:
    """Breaker, then a slot (blocking), then the token into ``state.token``."""
    s = state.settings
    scope = s.scope()
    if scope.breaker is not None and not scope.breaker.allow(s.clock.monotonic()):
        raise CircuitOpen()
    permit = None
    if scope.limiter is not None:
        permit = scope.limiter.acquire_sync(timeout=max(0.0, state.remaining()))
        if permit is None:
            raise QueueTimeout()
    if s.tokens is not None:
        try:
            state.token = s.tokens.current() or s.tokens.get_sync()
        except BaseException:
            if permit is not None:
                permit.release("dropped")
            raise
    return permit


async def admit_async(state: CallState) -> Permit | None:
    """Breaker, then a slot (awaited), then the token into ``state.token``."""
    s = state.settings
    scope = s.scope()
    if scope.breaker is not None and not scope.breaker.allow(s.clock.monotonic()):
        raise CircuitOpen()
    permit = None
    if scope.limiter is not None:
        permit = await scope.limiter.acquire(timeout=max(0.0, state.remaining()))
        if permit is None:
            raise QueueTimeout()
    if s.tokens is not None:
        try:
            state.token = s.tokens.current() or await s.tokens.get()
        except BaseException:
            if permit is not None:
                permit.release("dropped")
            raise
    return permit


def settle(state: CallState, permit: Permit | None, exc: BaseException | None) -> None:
    """Give the slot back with the attempt's outcome; count a success on the scope."""
    if exc is not None:
        if permit is not None:
            permit.release("throttled" if throttled(exc) else "dropped")
        return
    if permit is not None:
        permit.release("success")
    scope = state.settings.scope()
    now = state.settings.clock.monotonic()
    if not state.history:
        scope.on_success(now)  # the call's first attempt: deposit in the budget too
    elif scope.breaker is not None:
        scope.breaker.record_success(now)

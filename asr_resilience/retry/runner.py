"""Running attempts: the fast first attempt, and the retry loop on tenacity after a failure.

The happy path stays off tenacity: no limiter, a closed breaker and a fresh token mean one clock
read, the call, and one bookkeeping call on the scope. Anything else goes the full way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..extract import rest_result
from ..failure import Failure
from ._tenacity import async_retrying, sync_retrying
from .call import CallSettings, CallState, CircuitOpen, QueueTimeout, ResultFailure

R = TypeVar("R")
THROTTLE_CODE = 40000005


def _throttled(exc: BaseException) -> bool:
    from ..extract import extract_failure

    failure = exc.failure if isinstance(exc, ResultFailure) else extract_failure(exc)
    return failure is not None and (
        failure.code == THROTTLE_CODE or (failure.code is None and failure.http_status == 429)
    )


def _check(settings: CallSettings, result: Any) -> None:
    if settings.check_result:
        failure: Failure | None = rest_result(result)
        if failure is not None:
            raise ResultFailure(failure, result)


def attempt_sync(
    state: CallState, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    """One blocking attempt with the scope's breaker, limiter and the current token."""
    s = state.settings
    scope = s.scope()
    if scope.breaker is not None and not scope.breaker.allow(s.clock.monotonic()):
        raise CircuitOpen()
    permit = None
    if scope.limiter is not None:
        permit = scope.limiter.acquire_sync(timeout=max(0.0, state.remaining()))
        if permit is None:
            raise QueueTimeout()
    try:
        if s.tokens is not None:
            token = s.tokens.current() or s.tokens.get_sync()
            state.token = kwargs["token"] = token
        result = fn(*args, **kwargs)
        _check(s, result)
    except BaseException as exc:
        if permit is not None:
            permit.release("throttled" if _throttled(exc) else "dropped")
        raise
    if permit is not None:
        permit.release("success")
    _succeeded(state)
    return result


async def attempt_async(
    state: CallState,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """One asynchronous attempt with the scope's breaker, limiter and the current token."""
    s = state.settings
    scope = s.scope()
    if scope.breaker is not None and not scope.breaker.allow(s.clock.monotonic()):
        raise CircuitOpen()
    permit = None
    if scope.limiter is not None:
        permit = await scope.limiter.acquire(timeout=max(0.0, state.remaining()))
        if permit is None:
            raise QueueTimeout()
    try:
        if s.tokens is not None:
            token = s.tokens.current() or await s.tokens.get()
            state.token = kwargs["token"] = token
        result = await fn(*args, **kwargs)
        _check(s, result)
    except BaseException as exc:
        if permit is not None:
            permit.release("throttled" if _throttled(exc) else "dropped")
        raise
    if permit is not None:
        permit.release("success")
    _succeeded(state)
    return result


def _succeeded(state: CallState) -> None:
    scope = state.settings.scope()
    now = state.settings.clock.monotonic()
    if not state.history:
        scope.on_success(now)
    elif scope.breaker is not None:
        scope.breaker.record_success(now)


def call_sync(
    settings: CallSettings,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first_error: BaseException | None = None,
    state: CallState | None = None,
) -> R:
    """The full blocking call; ``first_error`` continues a fast first attempt that failed."""
    if state is None:
        state = CallState(settings, settings.clock.monotonic())
    pending = [first_error] if first_error is not None else []

    def attempt() -> R:
        if pending:
            raise pending.pop()
        return attempt_sync(state, fn, args, kwargs)

    result: R = sync_retrying(state, settings.clock)(attempt)
    return result


async def call_async(
    settings: CallSettings,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first_error: BaseException | None = None,
    state: CallState | None = None,
) -> R:
    """The full asynchronous call; ``first_error`` continues a fast first attempt that failed."""
    if state is None:
        state = CallState(settings, settings.clock.monotonic())
    pending = [first_error] if first_error is not None else []

    async def attempt() -> R:
        if pending:
            raise pending.pop()
        return await attempt_async(state, fn, args, kwargs)

    result: R = await async_retrying(state, settings.clock)(attempt)
    return result

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
from .admission import admit_async, admit_sync, settle
from .call import CallSettings, CallState, ResultFailure

R = TypeVar("R")


def _check(settings: CallSettings, result: Any) -> None:
    if settings.check_result:
        failure: Failure | None = rest_result(result)
        if failure is not None:
            raise ResultFailure(failure, result)


def attempt_sync(
    state: CallState, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    """One blocking attempt with the scope's breaker, limiter and the current token."""
    permit = admit_sync(state)
    try:
        if state.settings.tokens is not None:
            kwargs["token"] = state.token
        result = fn(*args, **kwargs)
        _check(state.settings, result)
    except BaseException as exc:
        settle(state, permit, exc)
        raise
    settle(state, permit, None)
    return result


async def attempt_async(
    state: CallState,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """One asynchronous attempt with the scope's breaker, limiter and the current token."""
    permit = await admit_async(state)
    try:
        if state.settings.tokens is not None:
            kwargs["token"] = state.token
        result = await fn(*args, **kwargs)
        _check(state.settings, result)
    except BaseException as exc:
        settle(state, permit, exc)
        raise
    settle(state, permit, None)
    return result


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

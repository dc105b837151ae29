"""The drivers: one loop of attempts, for blocking code and for tasks.

::

    caller ──▶ CallState (deadline, attempts, history)
           ──▶ Attempt: admit (breaker ticket → slot → token, within the time left)
                        body(attempt)  [in a task: watched until the call's deadline]
                        exit: settle once (slot, breaker, budget) · classify once · decide
           ──▶ step: return │ wait (through the Clock) and loop │ raise typed │ propagate

Every caller is this loop with a different body: ``@resilient`` (the user's function),
``retrying`` (the block; it drives the same tenacity loop itself), the clients (one task on a
new connection), the SDK adapter, and a stream's legs (the body keeps its attempt open with
``hold``; a resume starts the loop from the drop). The first attempt runs before the tenacity
loop is built (building it costs more than a successful call may); a failure is handed to the
loop as its first outcome, already settled and decided, so every attempt takes the same
admission and the same settling. The sync and async drivers differ only where they wait.

While a hook is subscribed (``observe._events.observed``), a call runs through
:func:`_observed_sync` / :func:`_observed_async`: the same driver, between a ``call_started``
and a ``call_ended`` event (scope, outcome, duration), with each attempt's body between
``attempt_started`` and ``attempt_ended`` (handed to the hooks only, not logged). A call
nobody observes pays one flag check.
"""

from __future__ import annotations

import functools
from asyncio import current_task
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

from .._errors import AsrResilienceError
from .._secrets import scrub_exception
from ..observe import _events
from ..observe._events import notify
from ._attempt import Attempt
from ._call import CallSettings, CallState
from ._tenacity import async_loop, sync_loop

__all__ = ["caller_async", "caller_sync", "run_async", "run_sync"]

R = TypeVar("R")


def run_sync(
    state: CallState,
    body: Callable[..., R],
    *args: Any,
    first: BaseException | None = None,
    observe: bool = True,
) -> R:
    """Run ``body(attempt, *args)`` as attempts of the call ``state`` until one succeeds or the
    policy says stop.

    ``first``: a failure already settled and decided on ``state`` (the loop starts after it).
    The library's error that ends the call leaves with its whole chain scrubbed of secrets.
    ``observe=False``: no call and attempt events (the observed driver's own run).
    """
    if observe and _events.observed:
        return _observed_sync(state, body, args, first)
    if first is None:
        try:
            return _attempt_sync(state, body, args)
        except Exception as exc:
            first = exc
    try:
        result: object = None
        for manager in sync_loop(state, state.settings.clock):
            with manager:
                first, failed = None, first
                result = _attempt_sync(state, body, args) if failed is None else _again(failed)
        return cast(R, result)
    except AsrResilienceError as error:
        scrub_exception(error)
        raise


async def run_async(
    state: CallState,
    body: Callable[..., Awaitable[R]],
    *args: Any,
    first: BaseException | None = None,
    observe: bool = True,
    watch: bool = True,
) -> R:
    """:func:`run_sync` for a task; each attempt runs under the call's deadline.

    ``watch=False``: the deadline bounds only when another attempt may start, not a running
    one (a shared token refresh: its waiters time out on their own, and one that joins later
    extends the deadline).
    """
    if observe and _events.observed:
        return await _observed_async(state, body, args, first, watch)
    if first is None:
        try:
            return await _attempt_async(state, body, args, watch)
        except Exception as exc:
            first = exc
    try:
        result: object = None
        async for manager in async_loop(state, state.settings.clock):
            with manager:
                first, failed = None, first
                if failed is None:
                    result = await _attempt_async(state, body, args, watch)
                else:
                    _again(failed)
        return cast(R, result)
    except AsrResilienceError as error:
        scrub_exception(error)
        raise


def caller_sync(
    settings: CallSettings, body: Callable[[Attempt, tuple[Any, ...], dict[str, Any]], R]
) -> Callable[..., R]:
    """``call(*args, **kwargs)``: one call of ``settings`` running ``body(attempt, args, kwargs)``
    — :func:`run_sync` over a new :class:`CallState`, for a wrapper made once and called often.

    Its first attempt is :func:`_attempt_sync` written out (the same admission and exits, one
    frame less: a successful call is the hot path of every decorated function); a failure goes
    on in :func:`run_sync`.
    """
    monotonic = settings.clock.monotonic

    def call(*args: Any, **kwargs: Any) -> R:
        state = CallState(settings, monotonic())
        if _events.observed:
            return run_sync(state, body, args, kwargs)
        attempt = Attempt(state)
        try:
            if not attempt.admit_now():
                attempt.admit_sync()
            result = body(attempt, args, kwargs)
        except BaseException as exc:
            first = attempt.failed(exc)
            if first is exc and not isinstance(exc, Exception):
                raise
        else:
            attempt.succeeded()
            return result
        return run_sync(state, body, args, kwargs, first=first)

    return call


def caller_async(
    settings: CallSettings,
    body: Callable[[Attempt, tuple[Any, ...], dict[str, Any]], Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """:func:`caller_sync` for a coroutine function: ``call`` is a coroutine function."""
    monotonic = settings.clock.monotonic

    async def call(*args: Any, **kwargs: Any) -> R:
        state = CallState(settings, monotonic())
        if _events.observed:
            return await run_async(state, body, args, kwargs)
        attempt = Attempt(state, current_task())
        try:
            if not attempt.admit_now():  # no coroutine for an admission with nothing to wait
                await attempt.admit()
            result = await body(attempt, args, kwargs)
        except BaseException as exc:
            first = attempt.failed(exc)
            if first is exc and not isinstance(exc, Exception):
                raise
        else:
            attempt.succeeded()
            return result
        return await run_async(state, body, args, kwargs, first=first)

    return call


def _attempt_sync(state: CallState, body: Callable[..., R], args: tuple[Any, ...]) -> R:
    attempt = Attempt(state)
    try:
        if not attempt.admit_now():
            attempt.admit_sync()
        result = body(attempt, *args)
    except BaseException as exc:
        _raise_settled(attempt.failed(exc), exc)
    attempt.succeeded()
    return result


async def _attempt_async(
    state: CallState, body: Callable[..., Awaitable[R]], args: tuple[Any, ...], watch: bool
) -> R:
    attempt = Attempt(state, current_task() if watch else None)
    try:
        if not attempt.admit_now():  # no coroutine for an admission with nothing to wait
            await attempt.admit()
        result = await body(attempt, *args)
    except BaseException as exc:
        _raise_settled(attempt.failed(exc), exc)
    attempt.succeeded()
    return result


def _raise_settled(error: BaseException, exc: BaseException) -> NoReturn:
    """Raise what a settled attempt ends with: ``exc`` itself, or the timeout it caused."""
    if error is exc:
        raise exc
    raise error from exc


def _again(failure: BaseException) -> NoReturn:
    """The first attempt's failure, as the loop's first outcome (already settled and decided)."""
    raise failure


# -- observed calls (a hook is subscribed) ---------------------------------------------------------


def _outcome(exc: BaseException | None) -> str:
    """A call's or attempt's outcome label: success, the library error's name, error, cancelled."""
    if exc is None:
        return "success"
    if isinstance(exc, AsrResilienceError):
        return type(exc).__name__
    return "error" if isinstance(exc, Exception) else "cancelled"


def _call_started(state: CallState) -> tuple[int, float]:
    call = next(_events.call_ids)
    s = state.settings
    notify("call_started", call=call, scope=s.scope_name, function=s.function)
    return call, s.clock.monotonic()


def _call_ended(state: CallState, call: int, start: float, exc: BaseException | None) -> None:
    s = state.settings
    notify(
        "call_ended",
        call=call,
        scope=s.scope_name,
        function=s.function,
        outcome=_outcome(exc),
        duration=max(0.0, s.clock.monotonic() - start),
        attempts=len(state.history) + (exc is None),
    )


def _attempt_started(call: int, attempt: Attempt) -> None:
    notify("attempt_started", call=call, attempt=attempt.number)


def _attempt_ended(call: int, attempt: Attempt, exc: BaseException | None) -> None:
    failure = attempt.failure  # the attempt's own classification, made once when it settled
    notify(
        "attempt_ended",
        call=call,
        attempt=attempt.number,
        outcome=_outcome(exc) if failure is None else "failure",
        error=type(exc).__name__ if exc is not None else None,
        vendor_code=failure.code if failure else None,
        http_status=failure.http_status if failure else None,
        transport=failure.transport if failure else None,
    )


def _observed_sync(
    state: CallState, body: Callable[..., R], args: tuple[Any, ...], first: BaseException | None
) -> R:
    call, start = _call_started(state)

    def observed(attempt: Attempt, *args: Any) -> R:
        _attempt_started(call, attempt)
        attempt.observe(functools.partial(_attempt_ended, call))
        return body(attempt, *args)

    try:
        result = run_sync(state, observed, *args, first=first, observe=False)
    except BaseException as exc:
        _call_ended(state, call, start, exc)
        raise
    _call_ended(state, call, start, None)
    return result


async def _observed_async(
    state: CallState,
    body: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    first: BaseException | None,
    watch: bool,
) -> R:
    call, start = _call_started(state)

    async def observed(attempt: Attempt, *args: Any) -> R:
        _attempt_started(call, attempt)
        attempt.observe(functools.partial(_attempt_ended, call))
        return await body(attempt, *args)

    try:
        result = await run_async(state, observed, *args, first=first, observe=False, watch=watch)
    except BaseException as exc:
        _call_ended(state, call, start, exc)
        raise
    _call_ended(state, call, start, None)
    return result

"""The drivers: one loop of attempts, for blocking code and for tasks.

::

    caller ──▶ CallState (deadline, attempts, history)
           ──▶ Attempt: admit (breaker ticket → slot → token, within the time left)
                        body(attempt)  [in a task: under a timer at the call's deadline]
                        exit: settle once (slot, breaker, budget) · classify once · decide
           ──▶ step: return │ wait (through the Clock) and loop │ raise typed │ propagate

Every caller is this loop with a different body: ``@resilient`` (the user's function),
``retrying`` (the block; it drives the same tenacity loop itself), the clients (one task on a
new connection), a stream's legs (the body keeps its attempt open with ``hold``), and the token
manager's provider retries. The first attempt runs before the tenacity loop is built (building
it costs more than a successful call may); a failure is handed to the loop as its first
outcome, already settled and decided, so every attempt takes the same admission and the same
settling. The sync and async drivers differ only where they wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

from .._errors import AsrResilienceError
from .._secrets import scrub_exception
from ._attempt import Attempt
from ._call import CallState
from ._tenacity import async_loop, sync_loop

__all__ = ["run_async", "run_sync"]

R = TypeVar("R")


def run_sync(
    state: CallState,
    body: Callable[..., R],
    *args: Any,
    first: BaseException | None = None,
) -> R:
    """Run ``body(attempt, *args)`` as attempts of the call ``state`` until one succeeds or the
    policy says stop.

    ``first``: a failure already settled and decided on ``state`` (the loop starts after it).
    The library's error that ends the call leaves with its whole chain scrubbed of secrets.
    """
    if first is None:
        try:  # the first attempt, as _attempt_sync (inline: a successful call is the hot path)
            with Attempt(state) as attempt:
                if not attempt.admit_now():
                    attempt.admit_sync()
                return body(attempt, *args)
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
) -> R:
    """:func:`run_sync` for a task; each attempt runs under the call's deadline."""
    if first is None:
        try:  # the first attempt, as _attempt_async (inline: a successful call is the hot path)
            with Attempt(state, asyncio.current_task()) as attempt:
                if not attempt.admit_now():  # no coroutine for an admission with nothing to wait
                    await attempt.admit()
                return await body(attempt, *args)
        except Exception as exc:
            first = exc
    try:
        result: object = None
        async for manager in async_loop(state, state.settings.clock):
            with manager:
                first, failed = None, first
                if failed is None:
                    result = await _attempt_async(state, body, args)
                else:
                    _again(failed)
        return cast(R, result)
    except AsrResilienceError as error:
        scrub_exception(error)
        raise


def _attempt_sync(state: CallState, body: Callable[..., R], args: tuple[Any, ...]) -> R:
    with Attempt(state) as attempt:
        if not attempt.admit_now():
            attempt.admit_sync()
        return body(attempt, *args)
    raise AssertionError("unreachable: only a block form's attempt swallows its exception")


async def _attempt_async(
    state: CallState, body: Callable[..., Awaitable[R]], args: tuple[Any, ...]
) -> R:
    with Attempt(state, asyncio.current_task()) as attempt:
        if not attempt.admit_now():  # no coroutine for an admission with nothing to wait
            await attempt.admit()
        return await body(attempt, *args)
    raise AssertionError("unreachable: only a block form's attempt swallows its exception")


def _again(failure: BaseException) -> NoReturn:
    """The first attempt's failure, as the loop's first outcome (already settled and decided)."""
    raise failure

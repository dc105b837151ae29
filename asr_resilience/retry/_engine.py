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
from typing import TypeVar, cast

from ._attempt import Attempt
from ._call import CallState
from ._tenacity import async_loop, sync_loop

__all__ = ["run_async", "run_sync"]

R = TypeVar("R")


def run_sync(
    state: CallState, body: Callable[[Attempt], R], first: BaseException | None = None
) -> R:
    """Run ``body`` as attempts of the call ``state`` until one succeeds or the policy says stop.

    ``first``: a failure already settled and decided on ``state`` (the loop starts after it).
    """
    if first is None:
        attempt = Attempt(state)
        try:
            with attempt:
                attempt.admit_sync()
                return body(attempt)
        except Exception as exc:
            first = exc
    assert first is not None
    pending: list[BaseException] = [first]  # first attempt's failure, as the loop's first outcome
    result: object = None
    for manager in sync_loop(state, state.settings.clock):
        with manager:
            if pending:
                raise pending.pop()
            attempt = Attempt(state)
            with attempt:
                attempt.admit_sync()
                result = body(attempt)
    return cast(R, result)


async def run_async(
    state: CallState,
    body: Callable[[Attempt], Awaitable[R]],
    first: BaseException | None = None,
) -> R:
    """:func:`run_sync` for a task; each attempt runs under a timer at the call's deadline."""
    task = asyncio.current_task()
    if first is None:
        attempt = Attempt(state, task)
        try:
            with attempt:
                if not attempt.admit_now():  # no coroutine for an admission with nothing to wait
                    await attempt.admit()
                return await body(attempt)
        except Exception as exc:
            first = exc
    assert first is not None
    pending: list[BaseException] = [first]  # first attempt's failure, as the loop's first outcome
    result: object = None
    async for manager in async_loop(state, state.settings.clock):
        with manager:
            if pending:
                raise pending.pop()
            attempt = Attempt(state, task)
            with attempt:
                await attempt.admit()
                result = await body(attempt)
    return cast(R, result)

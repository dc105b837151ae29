"""``retrying``: the block form, for code that cannot be a decorated function.

::

    for attempt in ar.retrying(policy, tokens=tokens):
        with attempt:
            text = recognize(audio, token=attempt.token, timeout=attempt.remaining)

``async for`` works the same way, and there the block runs under a timer at the call's deadline.
One object serves both; each iteration is one :class:`~asr_resilience.retry._attempt.Attempt`,
admitted before it is handed out and settled when its block ends, on the same tenacity loop as
every other call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .._clock import Clock
from ._attempt import Attempt
from ._call import CallSettings, CallState
from ._settings import PolicyLike, make_settings
from ._tenacity import async_loop, sync_loop

if TYPE_CHECKING:
    from ..tokens import TokenManager

__all__ = ["retrying"]


class retrying:
    """Iterate attempts of a block under a policy (``for`` or ``async for``).

    ``deadline`` and ``max_attempts`` override the policy's as :func:`resilient`'s do.
    """

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        tokens: TokenManager | None = None,
        scope: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str = "block",
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        self._settings: CallSettings = make_settings(
            policy,
            tokens=tokens,
            scope=scope,
            clock=clock,
            rng=rng,
            function=name,
            deadline=deadline,
            max_attempts=max_attempts,
        )

    def __iter__(self) -> Iterator[Attempt]:
        s = self._settings
        state = CallState(s, s.clock.monotonic())
        for manager in sync_loop(state, s.clock):
            attempt = Attempt(state, None, manager)
            try:
                attempt.admit_sync()
            except BaseException as exc:
                _not_admitted(attempt, manager, exc)
                continue
            try:
                yield attempt
            finally:
                attempt.abandon()  # left without entering it (or the loop was closed)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        s = self._settings
        state = CallState(s, s.clock.monotonic())
        task = asyncio.current_task()
        async for manager in async_loop(state, s.clock):
            attempt = Attempt(state, task, manager)
            try:
                await attempt.admit()
            except BaseException as exc:
                _not_admitted(attempt, manager, exc)
                continue
            try:
                yield attempt
            finally:
                attempt.abandon()


def _not_admitted(attempt: Attempt, manager: Any, exc: BaseException) -> None:
    """The admission failed: settle the attempt, and report the failure as its outcome (an
    interrupt or cancellation goes on up instead)."""
    attempt.close(exc)
    if not isinstance(exc, Exception):
        raise exc
    with manager:
        raise exc

"""``retrying``: the block form, for code that cannot be a decorated function.

::

    for attempt in ar.retrying(policy, tokens=tokens):
        with attempt:
            text = recognize(audio, token=attempt.token)

``async for`` works the same way. One object serves both; each iteration is one attempt.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._tenacity import async_retrying, sync_retrying
from .admission import admit_async, admit_sync, settle
from .call import CallSettings, CallState
from .clock import Clock
from .settings import PolicyLike, make_settings

if TYPE_CHECKING:
    from ..limits.limiter import Permit
    from ..tokens import TokenManager


class Attempt:
    """One attempt of a block: enter it with ``with``; ``token`` is the token to use."""

    __slots__ = ("_manager", "_permit", "_state", "token")

    def __init__(self, state: CallState, manager: Any, permit: Permit | None) -> None:
        self._state = state
        self._manager = manager
        self._permit = permit
        self.token: str = state.token or ""

    @property
    def number(self) -> int:
        """1-based attempt number."""
        return self._state.attempt

    def __enter__(self) -> Attempt:
        self._manager.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        permit, self._permit = self._permit, None
        settle(self._state, permit, exc)
        result: bool | None = self._manager.__exit__(exc_type, exc, tb)
        return result


class retrying:
    """Iterate attempts of a block under a policy (``for`` or ``async for``)."""

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        tokens: TokenManager | None = None,
        scope: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str = "block",
    ) -> None:
        self._settings: CallSettings = make_settings(
            policy, tokens=tokens, scope=scope, clock=clock, rng=rng, function=name
        )

    def __iter__(self) -> Iterator[Attempt]:
        s = self._settings
        state = CallState(s, s.clock.monotonic())
        for manager in sync_retrying(state, s.clock):
            try:
                permit = admit_sync(state)
            except Exception as exc:
                _feed(manager, exc)
                continue
            yield Attempt(state, manager, permit)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        s = self._settings
        state = CallState(s, s.clock.monotonic())
        async for manager in async_retrying(state, s.clock):
            try:
                permit = await admit_async(state)
            except Exception as exc:
                _feed(manager, exc)
                continue
            yield Attempt(state, manager, permit)


def _feed(manager: Any, exc: BaseException) -> None:
    """Report a failure that happened before the block ran as the attempt's outcome."""
    with manager:
        raise exc

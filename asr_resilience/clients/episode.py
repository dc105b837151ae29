"""A fault episode of a resumable stream: the failures in a row that one policy budget covers.

A stream is open-ended, so the policy's attempts and deadline cannot bound all of it: a stream
that loses its connection once an hour must live for days. They bound one *episode* instead: the
first failure after the stream last made progress opens one (a fresh
:class:`~asr_resilience.retry.call.CallState`, so attempts, refreshes and the deadline count from
there), every failure until the next progress is one more attempt of it, and a sentence delivered
after a reconnect closes it. A gateway that keeps failing without ever finishing a sentence thus
still ends in the policy's typed error (``RetryExhaustedError``, ``DeadlineExceededError``, ...)
with the episode's attempts, exactly as a one-shot call would.

The decisions are ``CallState.on_failure``'s, the same as every other call of the library; this
module adds what the block form (``retrying``) does around an attempt — the scope's breaker and
limiter, and the token — for reconnects that do not fit the block form's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..extract import extract_failure
from ..retry.call import CallSettings, CallState, CircuitOpen, QueueTimeout, Step
from ..retry.runner import THROTTLE_CODE

if TYPE_CHECKING:
    from ..limits.limiter import Permit

__all__ = ["FaultEpisode"]


class FaultEpisode:
    """Failures of a stream since its last progress, decided by the policy as one call."""

    __slots__ = ("settings", "state")

    def __init__(self, settings: CallSettings, token: str | None) -> None:
        self.settings = settings
        self.state = CallState(settings, settings.clock.monotonic())
        # The token the failed task used: a refresh invalidates exactly this one.
        self.state.token = token

    @property
    def failures(self) -> int:
        """Failures decided so far in this episode."""
        return len(self.state.history)

    def decide(self, exc: BaseException) -> Step:
        """What follows the failure ``exc``: retry after a delay, raise typed, or propagate."""
        return self.state.on_failure(exc)

    async def wait(self, seconds: float) -> None:
        """Sleep before the next attempt (skipped under ``testing.no_wait``)."""
        await self.settings.clock.async_wait(seconds)

    async def admit(self) -> tuple[str, Permit | None]:
        """The token and limiter slot for the next attempt, as the block form takes them.

        Raises ``CircuitOpen`` / ``QueueTimeout``, which :meth:`decide` turns into
        ``CircuitOpenError`` / ``DeadlineExceededError``.
        """
        s = self.settings
        scope = s.scope()
        if scope.breaker is not None and not scope.breaker.allow(s.clock.monotonic()):
            raise CircuitOpen()
        permit = None
        if scope.limiter is not None:
            permit = await scope.limiter.acquire(timeout=max(0.0, self.state.remaining()))
            if permit is None:
                raise QueueTimeout()
        token = ""
        if s.tokens is not None:
            try:
                token = s.tokens.current() or await s.tokens.get()
            except BaseException:
                if permit is not None:
                    permit.release("dropped")
                raise
        self.state.token = token
        return token, permit

    def settle(self, permit: Permit | None, error: BaseException | None) -> None:
        """Give the slot back after an attempt; a success also tells the breaker."""
        if error is None:
            if permit is not None:
                permit.release("success")
            breaker = self.settings.scope().breaker
            if breaker is not None:
                breaker.record_success(self.settings.clock.monotonic())
        elif permit is not None:
            failure = extract_failure(error)
            throttled = failure is not None and failure.code == THROTTLE_CODE
            permit.release("throttled" if throttled else "dropped")

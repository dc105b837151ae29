"""A fault episode of a resumable stream: the failures in a row that one policy budget covers.

A stream is open-ended, so the policy's attempts and deadline cannot bound all of it: a stream
that loses its connection once an hour must live for days. They bound one *episode* instead: the
first failure after the stream last made progress opens one (a fresh
:class:`~asr_resilience.retry.call.CallState`, so attempts, refreshes and the deadline count from
there), every failure until the next progress is one more attempt of it, and a sentence delivered
after a reconnect closes it. A gateway that keeps failing without ever finishing a sentence thus
still ends in the policy's typed error (``RetryExhaustedError``, ``DeadlineExceededError``, ...)
with the episode's attempts, exactly as a one-shot call would.

The decisions are ``CallState.on_failure``'s and the admission (breaker, limiter slot, token) is
``retry.admission``'s, the same as every other call of the library; this module only holds them
together for reconnects that do not fit the block form's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..retry.admission import admit_async, settle
from ..retry.call import CallSettings, CallState, Step

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
        """The token and limiter slot for the next attempt, as every other call takes them.

        Raises ``CircuitOpen`` / ``QueueTimeout``, which :meth:`decide` turns into
        ``CircuitOpenError`` / ``DeadlineExceededError``.
        """
        permit = await admit_async(self.state)
        return self.state.token or "", permit

    def settle(self, permit: Permit | None, error: BaseException | None) -> None:
        """Give the slot back after an attempt; a success also tells the breaker."""
        settle(self.state, permit, error)

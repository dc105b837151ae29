"""The one place tenacity is used: the loop that runs a call's attempts.

tenacity runs the loop and sleeps through our clock; it takes no decision of its own. Each
attempt is an :class:`~asr_resilience.retry._attempt.Attempt`, which classifies its failure once
and stores the decided step on the call's :class:`~asr_resilience.retry._call.CallState`; the
strategies below only read that step: ``retry`` unless it says "propagate", ``stop`` when it
says "raise", ``wait`` its delay, and the error callback raises its typed error. tenacity's
types stay in this module.
"""

from __future__ import annotations

from typing import Any, NoReturn

import tenacity

from .._clock import Clock
from .._secrets import raise_scrubbed
from ._call import CallState

__all__ = ["async_loop", "sync_loop"]


class _Strategies:
    """tenacity's callbacks, answering from the call state's decided step."""

    __slots__ = ("state",)

    def __init__(self, state: CallState) -> None:
        self.state = state

    def retry(self, rs: tenacity.RetryCallState) -> bool:
        outcome = rs.outcome
        return outcome is not None and outcome.failed and self.state.step.kind != "propagate"

    def stop(self, rs: tenacity.RetryCallState) -> bool:
        return self.state.step.kind == "raise"

    def wait(self, rs: tenacity.RetryCallState) -> float:
        step = self.state.step
        return step.delay if step.kind == "retry" else 0.0

    def give_up(self, rs: tenacity.RetryCallState) -> NoReturn:
        step = self.state.step
        assert step.error is not None
        # The block form raises it to the caller directly: its chain leaves scrubbed.
        raise_scrubbed(step.error, step.cause)


def sync_loop(state: CallState, clock: Clock) -> tenacity.Retrying:
    """The loop for blocking attempts: ``for manager in sync_loop(...): with manager: ...``."""
    s = _Strategies(state)
    return tenacity.Retrying(
        retry=s.retry,
        stop=s.stop,
        wait=s.wait,
        sleep=clock.wait,
        retry_error_callback=s.give_up,
        reraise=True,
    )


def async_loop(state: CallState, clock: Clock) -> tenacity.AsyncRetrying:
    """The loop for attempts in a task: ``async for manager in async_loop(...)``."""
    s = _Strategies(state)
    sleep: Any = clock.async_wait
    return tenacity.AsyncRetrying(
        retry=s.retry,
        stop=s.stop,
        wait=s.wait,
        sleep=sleep,
        retry_error_callback=s.give_up,
        reraise=True,
    )

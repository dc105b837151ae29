"""The one place tenacity is used: a Retrying/AsyncRetrying driven by a CallState.

tenacity runs the loop and the waits; every verdict comes from ``CallState.on_failure``:
``retry`` always says "look at it", ``stop`` says whether the step was to give up, ``wait``
returns the step's delay, and the error callback raises the typed error. Its types stay here.
"""

from __future__ import annotations

from typing import Any, NoReturn

import tenacity

from .call import CallState, Step
from .clock import Clock

_PROPAGATE = Step("propagate")


class _Verdicts:
    """tenacity's callbacks, answering from the call state."""

    __slots__ = ("state", "step")

    def __init__(self, state: CallState) -> None:
        self.state = state
        self.step = _PROPAGATE

    def retry(self, rs: tenacity.RetryCallState) -> bool:
        outcome = rs.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        assert exc is not None
        self.step = self.state.on_failure(exc)
        return self.step.kind != "propagate"

    def stop(self, rs: tenacity.RetryCallState) -> bool:
        return self.step.kind == "raise"

    def wait(self, rs: tenacity.RetryCallState) -> float:
        return self.step.delay if self.step.kind == "retry" else 0.0

    def give_up(self, rs: tenacity.RetryCallState) -> NoReturn:
        error = self.step.error
        assert error is not None
        raise error from self.step.cause


def sync_retrying(state: CallState, clock: Clock) -> tenacity.Retrying:
    """A tenacity loop for blocking calls."""
    verdicts = _Verdicts(state)
    return tenacity.Retrying(
        retry=verdicts.retry,
        stop=verdicts.stop,
        wait=verdicts.wait,
        sleep=clock.wait,
        retry_error_callback=verdicts.give_up,
        reraise=True,
    )


def async_retrying(state: CallState, clock: Clock) -> tenacity.AsyncRetrying:
    """A tenacity loop for coroutines."""
    verdicts = _Verdicts(state)
    sleep: Any = clock.async_wait
    return tenacity.AsyncRetrying(
        retry=verdicts.retry,
        stop=verdicts.stop,
        wait=verdicts.wait,
        sleep=sleep,
        retry_error_callback=verdicts.give_up,
        reraise=True,
    )

"""A fault episode of a resumable stream: the failures in a row that one policy budget covers.

A stream is open-ended, so the policy's attempts and deadline cannot bound all of it: a stream
that loses its connection once an hour must live for days. They bound one *episode* instead: the
first failure after the stream last made progress opens one (a fresh
:class:`~asr_resilience.retry._call.CallState`, so attempts, refreshes and the deadline count from
there), every failure until the next progress is one more attempt of it, and a sentence delivered
after a reconnect closes it. A gateway that keeps failing without ever finishing a sentence thus
still ends in the policy's typed error (``RetryExhaustedError``, ``DeadlineExceededError``, ...)
with the episode's attempts, exactly as a one-shot call would.

Each leg is an attempt (:class:`~asr_resilience.retry._attempt.Attempt`) held from connect to
close; the leg's end settles it and the episode's state decides, and the resume is the engine's
loop started from that failure (:func:`~asr_resilience.retry._engine.run_async` with ``first``).
"""

from __future__ import annotations

from ..retry._call import CallSettings, CallState

__all__ = ["FaultEpisode"]


class FaultEpisode:
    """Failures of a stream since its last progress, decided by the policy as one call."""

    __slots__ = ("state",)

    def __init__(self, settings: CallSettings, token: str | None) -> None:
        self.state = CallState(settings, settings.clock.monotonic())
        # The token the failed task used: a refresh invalidates exactly this one.
        self.state.token = token

    @property
    def failures(self) -> int:
        """Failures decided so far in this episode."""
        return len(self.state.history)

"""A held attempt (a stream leg) that breaks after it delivered is the link's failure, not an
outage: the breaker counted the leg's start and does not count its cut. One that breaks having
delivered nothing counts as a server-class failure, as before — a gateway that accepts streams
and drops them at once is an outage."""

from __future__ import annotations

from pathlib import Path

from asr_resilience import CircuitOpenError, TransportError
from asr_resilience.limits import get_scope
from asr_resilience.retry._attempt import Attempt
from asr_resilience.retry._call import CallState
from asr_resilience.retry._engine import run_async
from asr_resilience.retry._settings import make_settings
from asr_resilience.testing import FakeClock

from .helpers import write_policy

SCOPE = "held-legs"
LEGS = 30


async def _cut_legs(tmp_path: Path, *, delivered: bool) -> str:
    """LEGS stream legs, each started, held, then cut: the breaker's state afterwards, or
    "refused" when it stopped admitting them."""
    policy = write_policy(tmp_path, "")
    clock = FakeClock()
    scope = get_scope(SCOPE, policy, clock=clock.monotonic)
    assert scope.breaker is not None
    settings = make_settings(policy, tokens=None, scope=SCOPE, function="leg", clock=clock.clock())
    for _ in range(LEGS):
        state = CallState(settings, clock.monotonic())

        async def leg(attempt: Attempt) -> Attempt:
            return attempt.hold()

        try:
            held = await run_async(state, leg)
        except CircuitOpenError:
            return "refused"  # the breaker opened: the next leg is not admitted
        if delivered:
            held.progressed()
        held.close(TransportError("abnormal_close", "the link was cut"), decide=False)
        clock.advance(0.1)
    return scope.breaker.state


async def test_legs_cut_after_delivering_leave_the_breaker_closed(tmp_path: Path) -> None:
    assert await _cut_legs(tmp_path, delivered=True) == "closed"


async def test_legs_cut_before_delivering_open_the_breaker(tmp_path: Path) -> None:
    assert await _cut_legs(tmp_path, delivered=False) == "refused"

"""The half-open probe always comes back: regressions for a probe that ended without a verdict.

Each test trips the default policy's breaker (``min_calls: 20``, ``open_for: 15s``) with
50000000 on a :class:`~asr_resilience.testing.FakeClock`, moves the clock past ``open_for``,
lets the probe end without a verdict -- an unknown exception, a cancellation, no slot within its
deadline -- and checks that the next call goes through as the new probe and, on success, closes
the breaker. Before the probe was given back on every exit, such a probe left the breaker
half-open with its probe "out" until ``open_for`` had passed again.

The policy is the default one with an adaptive limiter of one slot (so that a slot can be held
elsewhere); a waiting probe uses the same scope under a copy of the policy with a 50 ms deadline,
because a thread waits for a slot in real time (a wait that nobody can end, so its timeout is
certain, not a race).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import asr_resilience as ar
from asr_resilience.limits import CircuitBreaker, get_scope
from asr_resilience.limits._limiter import Limiter
from asr_resilience.testing import FakeClock, no_wait

from .helpers import write_policy

ONE_SLOT = "concurrency: {adaptive: true, initial: 1, min: 1, max: 1}\n"
SCOPE = "probe"


class Rig:
    """The default breaker on a fake clock, tripped and past ``open_for``: the next call probes."""

    def __init__(self, tmp_path: Path) -> None:
        self.policy = write_policy(tmp_path, ONE_SLOT)
        self.short = write_policy(tmp_path, "defaults: {deadline: 50ms}\n" + ONE_SLOT)
        self.clock = FakeClock()
        scope = get_scope(SCOPE, self.policy, clock=self.clock.monotonic)
        assert scope.breaker is not None
        assert scope.limiter is not None
        self.breaker: CircuitBreaker = scope.breaker
        self.limiter: Limiter = scope.limiter

        @ar.resilient(self.policy, scope=SCOPE, clock=self.clock.clock())
        def failing() -> None:
            raise ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")

        with no_wait():
            while self.breaker.state != "open":
                with pytest.raises(ar.ResilienceError):
                    failing()
        with pytest.raises(ar.CircuitOpenError):
            failing()
        self.clock.advance(self.policy.circuit_breaker.open_for + 1)

    def probe_is_free(self) -> None:
        """The breaker waits for a probe: half-open with none out, or open past ``open_for``."""
        assert self.breaker.state in ("open", "half_open")
        assert not self.breaker._probe_out

    # -- one call in each form ----------------------------------------------------------------

    def sync_call(self, form: str, body: Callable[[], str], *, short: bool = False) -> str:
        policy = self.short if short else self.policy
        if form == "decorator":

            @ar.resilient(policy, scope=SCOPE, clock=self.clock.clock())
            def call() -> str:
                return body()

            return call()
        for attempt in ar.retrying(policy, scope=SCOPE, clock=self.clock.clock()):
            with attempt:
                return body()
        raise AssertionError("the block form ended without an outcome")

    async def async_call(
        self, form: str, body: Callable[[], Awaitable[str]], *, short: bool = False
    ) -> str:
        policy = self.short if short else self.policy
        if form == "decorator":

            @ar.resilient(policy, scope=SCOPE, clock=self.clock.clock())
            async def call() -> str:
                return await body()

            return await call()
        async for attempt in ar.retrying(policy, scope=SCOPE, clock=self.clock.clock()):
            with attempt:
                return await body()
        raise AssertionError("the block form ended without an outcome")

    def next_call_closes(self, form: str) -> None:
        """The next sync call is the new probe; it succeeds and the breaker closes."""
        self.probe_is_free()
        assert self.sync_call(form, lambda: "ok") == "ok"
        assert self.breaker.state == "closed"

    async def next_async_call_closes(self, form: str) -> None:
        """The next async call is the new probe; it succeeds and the breaker closes."""
        self.probe_is_free()

        async def ok() -> str:
            return "ok"

        assert await self.async_call(form, ok) == "ok"
        assert self.breaker.state == "closed"


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


FORMS = pytest.mark.parametrize("form", ["decorator", "block"])


def _raise_value_error() -> str:
    raise ValueError("not the service's")


# -- (a) the probe raises an exception no rule knows -------------------------------------------


@FORMS
def test_sync_probe_raising_unknown_exception_comes_back(rig: Rig, form: str) -> None:
    """A sync probe that raises ValueError gives the probe back; the next call closes."""
    with pytest.raises(ValueError, match="not the service's"):
        rig.sync_call(form, _raise_value_error)
    rig.next_call_closes(form)


@FORMS
async def test_async_probe_raising_unknown_exception_comes_back(rig: Rig, form: str) -> None:
    """An async probe that raises ValueError gives the probe back; the next call closes."""

    async def body() -> str:
        return _raise_value_error()

    with pytest.raises(ValueError, match="not the service's"):
        await rig.async_call(form, body)
    await rig.next_async_call_closes(form)


# -- (b) the probe is cancelled ----------------------------------------------------------------


def test_sync_probe_interrupted_comes_back(rig: Rig) -> None:
    """A sync probe interrupted by KeyboardInterrupt (a thread's cancellation) gives it back."""

    def body() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rig.sync_call("decorator", body)
    rig.next_call_closes("decorator")


def test_sync_block_probe_abandoned_comes_back(rig: Rig) -> None:
    """A block-form probe left without entering the attempt (break) gives the probe back."""
    for _attempt in ar.retrying(rig.policy, scope=SCOPE, clock=rig.clock.clock()):
        assert rig.breaker._probe_out
        break
    assert rig.limiter.in_flight == 0
    rig.next_call_closes("block")


async def test_async_probe_cancelled_by_wait_for_comes_back(rig: Rig) -> None:
    """An async probe cancelled by asyncio.wait_for's timeout gives the probe back."""
    never = asyncio.Event()

    async def body() -> str:
        await never.wait()
        return "unreachable"

    # A timeout on a body that can never finish: it fires whatever the timing.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(rig.async_call("decorator", body), 0.01)
    assert rig.limiter.in_flight == 0
    await rig.next_async_call_closes("decorator")


@FORMS
async def test_async_probe_cancelled_by_task_cancel_comes_back(rig: Rig, form: str) -> None:
    """An async probe whose task is cancelled inside the attempt gives the probe back."""
    entered = asyncio.Event()
    never = asyncio.Event()

    async def body() -> str:
        entered.set()
        await never.wait()
        return "unreachable"

    task = asyncio.create_task(rig.async_call(form, body))
    await entered.wait()
    assert rig.breaker._probe_out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rig.limiter.in_flight == 0
    await rig.next_async_call_closes(form)


async def test_async_block_probe_abandoned_comes_back(rig: Rig) -> None:
    """An async block-form probe left by break (its generator closed by the loop) gives it back."""

    async def leave() -> None:
        async for _attempt in ar.retrying(rig.policy, scope=SCOPE, clock=rig.clock.clock()):
            assert rig.breaker._probe_out
            break

    await asyncio.create_task(leave())
    # The loop closes the abandoned generator in a task of its own (its asyncgen finalizer);
    # that task runs before this one resumes from the wait on a task scheduled after it.
    await asyncio.create_task(asyncio.sleep(0))
    assert rig.limiter.in_flight == 0
    await rig.next_async_call_closes("block")


# -- (c) the probe times out waiting for a slot ------------------------------------------------


@FORMS
def test_sync_probe_without_a_slot_comes_back(rig: Rig, form: str) -> None:
    """A sync probe that gets no slot within its deadline gives the probe back."""
    held = rig.limiter.acquire_sync()  # another holder has the only slot
    assert held is not None
    with pytest.raises(ar.DeadlineExceededError, match="slot"):
        rig.sync_call(form, lambda: "unreachable", short=True)
    assert rig.breaker.state == "half_open"
    held.release("success")
    rig.next_call_closes(form)


@FORMS
async def test_async_probe_without_a_slot_comes_back(rig: Rig, form: str) -> None:
    """An async probe that gets no slot within its deadline gives the probe back."""
    held = await rig.limiter.acquire()  # another holder has the only slot
    assert held is not None

    async def unreachable() -> str:
        raise AssertionError("the probe ran without a slot")

    with pytest.raises(ar.DeadlineExceededError, match="slot"):
        await rig.async_call(form, unreachable, short=True)
    assert rig.breaker.state == "half_open"  # nothing reached the service: no verdict
    held.release("success")
    await rig.next_async_call_closes(form)


# -- a cancellation after a retry --------------------------------------------------------------


@FORMS
async def test_cancelled_retry_attempt_ends_the_call(rig: Rig, form: str) -> None:
    """A task cancelled in its second attempt (after a retried 50000000) ends in CancelledError."""
    await rig.next_async_call_closes(form)
    entered = asyncio.Event()
    never = asyncio.Event()
    attempts = 0

    async def body() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")
        if attempts == 2:
            entered.set()
            await never.wait()
        return "retried after the cancellation"

    with no_wait():
        task = asyncio.create_task(rig.async_call(form, body))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert attempts == 2  # not retried: a cancelled call makes no further attempt
    assert rig.limiter.in_flight == 0


def test_interrupted_retry_attempt_ends_the_call(rig: Rig) -> None:
    """A sync call interrupted in its second attempt (after a retry) ends in KeyboardInterrupt."""
    rig.next_call_closes("decorator")
    attempts = 0

    def body() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")
        if attempts == 2:
            raise KeyboardInterrupt
        return "retried after the interrupt"

    with no_wait(), pytest.raises(KeyboardInterrupt):
        rig.sync_call("decorator", body)
    assert attempts == 2


# -- a slot granted after the deadline ---------------------------------------------------------


@FORMS
async def test_slot_granted_after_the_deadline_is_not_used(tmp_path: Path, form: str) -> None:
    """A call served a slot only after its deadline ends in DeadlineExceededError, unrun."""
    policy = write_policy(tmp_path, ONE_SLOT)
    clock = FakeClock()
    limiter = get_scope("late-slot", policy, clock=clock.monotonic).limiter
    assert limiter is not None
    held = await limiter.acquire()
    assert held is not None
    ran = False

    async def body() -> str:
        nonlocal ran
        ran = True
        return "ran"

    async def call() -> str:
        if form == "decorator":
            return await ar.resilient(policy, scope="late-slot", clock=clock.clock())(body)()
        async for attempt in ar.retrying(policy, scope="late-slot", clock=clock.clock()):
            with attempt:
                return await body()
        raise AssertionError("the block form ended without an outcome")

    task = asyncio.create_task(call())
    await asyncio.sleep(0)  # the task's first step runs up to its wait for the slot
    assert limiter.stats()["waiting"] == 1
    clock.advance(policy.defaults.deadline + 1)  # the fake deadline passes; the real wait goes on
    held.release("success")
    with pytest.raises(ar.DeadlineExceededError, match="slot"):
        await task
    assert not ran
    assert limiter.in_flight == 0

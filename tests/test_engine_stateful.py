"""One scope, many concurrent calls, sync and async, on a fake clock: a hypothesis state machine.

How this works
--------------
The machine owns one scope (breaker, retry budget, adaptive limiter of at most 3 slots) and
starts calls in four forms: ``@resilient`` sync (a thread) and async (a task), and the block
form ``retrying`` sync (a thread) and async (a task). Every attempt body *parks*: it records
that it runs and waits for the machine's command (succeed, fail with a vendor code, raise
ValueError; cancel an async call; abandon a sync block). Sync bodies wait on a
``threading.Condition``, async bodies on a future of the machine's event loop.

Time is a :class:`~asr_resilience.testing.FakeClock`, shared by the calls, the scope and the
machine's event loop, whose ``time`` is the fake clock: the deadline timer of an async attempt
and the limiter's wait for a slot (``call_later``) fire when the machine moves the clock past
them, not in real time. Moving the clock steps through the loop's timers in order, so a timer
fires at its own time. Backoff waits are removed with ``testing.no_wait()``.

A thread waits for a slot in real time (``threading.Event.wait(remaining)``), which a fake clock
cannot end. So: the machine never moves the clock within ``SYNC_MARGIN`` seconds of the deadline
of a live sync call (nor past that of a sync call waiting for a slot), so a sync call that waits
for a slot always has at least ``SYNC_MARGIN`` real seconds left and is served, by the machine's
commands, long before; and the rule "a sync permit wait times out" uses a copy of the policy
with a 20 ms deadline on the same scope, started while no slot is free and nothing can free
one (every other call is parked), so its timeout is certain, not a race.

After every step the machine waits until the system is *quiet*: the loop has nothing ready or
due, and every live call is parked in a body or queued for a slot (the limiter's queue holds
exactly the calls that are neither parked nor done). Then the invariants are checked:

* permits: ``limiter.in_flight`` equals the attempts parked in a body, each holding an
  unreleased permit; the limiter's queue holds exactly the other live calls;
* probes: while half-open with a probe out, the probe's owner is a live call (parked with a
  PROBE ticket, or queued); at most one parked attempt holds the probe; so once no call is live,
  no probe is out (the teardown checks it again after ending every call);
* counters: budget and breaker rings non-negative, their window sums equal the rings, breaker
  failures <= calls per second, budget deposits <= calls started, retries <= attempts made;
* outcomes: a call that ended has exactly one outcome: its scripted value, the ValueError it
  raised (the same object), CancelledError (only if cancelled), "abandoned" (only if
  abandoned), or a ``ResilienceError``; each rule also checks the outcome its command implies
  (a fix-client code ends in FixClientError, a fail-fast code in FailFastError, a retried code
  in a retry or one of the give-up errors; a 40000001 retry carries a fresh token);
* deadlines: every attempt body starts strictly before the call's deadline (fake time); an
  async call ends at or before it (the clock steps through the loop's timers, so the deadline
  timer fires at the deadline), and no async call is live once the clock has passed its
  deadline; a sync call ends after its deadline only if the clock passed the deadline while
  its body was running (a thread cannot be interrupted), and then makes no further attempt.

Not driven here: an async block left by ``break`` (its generator is closed by the loop, in a
task of its own): tests/test_engine_breaker.py covers it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import asr_resilience as ar
from asr_resilience.limits import get_scope
from asr_resilience.limits._breaker import PROBE
from asr_resilience.limits._limiter import AdaptiveLimiter
from asr_resilience.retry._attempt import Attempt
from asr_resilience.testing import FakeClock, no_wait
from asr_resilience.tokens import Token, TokenManager

from .helpers import CountingProvider

DEADLINE = 10.0
SHORT_DEADLINE = 0.02  # the sync permit-timeout caller's deadline: a real wait of 20 ms
SYNC_MARGIN = 3.0  # real seconds a queued sync call is always left with
MAX_LIVE = 6
QUIET_TIMEOUT = 10.0  # real seconds before "never quiet" fails the test instead of hanging

_BODY = (
    "defaults: {{max_attempts: 3, deadline: {deadline}}}\n"
    "retry_budget: {{ratio: 0.5, min_per_second: 0.2, window: 5s}}\n"
    "circuit_breaker: {{failure_ratio: 0.5, min_calls: 2, window: 10s, open_for: 2s}}\n"
    "concurrency: {{adaptive: true, initial: 2, min: 1, max: 3}}\n"
)


def _load_policies() -> tuple[ar.Policy, ar.Policy]:
    with tempfile.TemporaryDirectory() as tmp:
        policies = []
        for name, deadline in (("machine", f"{DEADLINE:g}s"), ("machine-short", "20ms")):
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(
                f"version: 1\nextends: default\nname: {name}\n" + _BODY.format(deadline=deadline),
                encoding="utf-8",
            )
            policies.append(ar.load_policy(path))
    return policies[0], policies[1]


POLICY, SHORT_POLICY = _load_policies()

FIX_CLIENT = 41010101
FAIL_FAST = 40000010
# 50000000 weighs three times: server failures are what trips the breaker and makes probes.
CODES = (40000005, 50000000, 50000000, 50000000, 40000001, FIX_CLIENT, FAIL_FAST)
GAVE_UP: dict[int, tuple[type[BaseException], ...]] = {
    FIX_CLIENT: (ar.FixClientError,),
    FAIL_FAST: (ar.FailFastError,),
}
RETRIED_GAVE_UP = (
    ar.RetryExhaustedError,
    ar.RetryBudgetExhaustedError,
    ar.DeadlineExceededError,
    ar.CircuitOpenError,
    ar.TokenRefreshError,
)
KINDS = ("sync", "sync-block", "async", "async-block")
_scopes = itertools.count()


@dataclass(frozen=True)
class Command:
    """What a parked attempt does next."""

    kind: str  # "succeed", "fail", "raise", "abandon"
    code: int = 0
    value: object = None


@dataclass(eq=False)
class Call:
    """One call the machine started, as the machine sees it."""

    n: int
    kind: str
    started: float
    deadline_at: float
    phase: str = "moving"  # "parked" in a body, "done", else moving (queued for a slot)
    attempt: Attempt | None = None
    command: Command | None = None
    future: asyncio.Future[Command] | None = None
    task: asyncio.Task[None] | None = None
    thread: threading.Thread | None = None
    owner: tuple[int, int] = (0, 0)
    bodies: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    outcomes: list[tuple[str, object]] = field(default_factory=list)
    ended_at: float | None = None
    overran: bool = False  # the clock passed the deadline while a sync body was running
    raised: BaseException | None = None
    cancelled: bool = False
    abandoned: bool = False

    @property
    def is_sync(self) -> bool:
        return self.kind.startswith("sync")


class EngineMachine(RuleBasedStateMachine):
    """Calls in four forms on one scope; rules command their attempts and move the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.fclock = self.clock.clock()
        self.scope_name = f"machine-{next(_scopes)}"
        scope = get_scope(self.scope_name, POLICY, clock=self.clock.monotonic)
        assert scope.breaker is not None
        assert scope.budget is not None
        assert isinstance(scope.limiter, AdaptiveLimiter)
        self.breaker = scope.breaker
        self.budget = scope.budget
        self.limiter = scope.limiter
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.loop.time = self.clock.monotonic  # type: ignore[method-assign]
        self.calls: list[Call] = []
        self.attempts = 0
        self.seen: set[str] = set()  # what the example reached, for --hypothesis-show-statistics
        self.no_wait = no_wait()
        self.no_wait.__enter__()
        self.sync_provider = CountingProvider()
        self.sync_tokens = TokenManager(self.sync_provider)
        self.async_calls_to_provider = 0

        async def provide() -> Token:
            self.async_calls_to_provider += 1
            return Token(f"async-token-{self.async_calls_to_provider:04d}")

        self.async_tokens = TokenManager(provide)

        options: dict[str, Any] = {"scope": self.scope_name, "clock": self.fclock}

        @ar.resilient(POLICY, tokens=self.sync_tokens, **options)
        def sync_fn(call: Call, *, token: str = "", attempt: Attempt | None = None) -> object:
            assert attempt is not None
            return self._perform(self._park_sync(call, attempt, token))

        @ar.resilient(SHORT_POLICY, tokens=self.sync_tokens, **options)
        def short_fn(call: Call, *, token: str = "", attempt: Attempt | None = None) -> object:
            assert attempt is not None
            return self._perform(self._park_sync(call, attempt, token))

        @ar.resilient(POLICY, tokens=self.async_tokens, **options)
        async def async_fn(
            call: Call, *, token: str = "", attempt: Attempt | None = None
        ) -> object:
            assert attempt is not None
            return self._perform(await self._park_async(call, attempt, token))

        self.sync_fn = sync_fn
        self.short_fn = short_fn
        self.async_fn = async_fn

    # -- the calls' side ---------------------------------------------------------------------

    def _entered(self, call: Call, attempt: Attempt, token: str) -> None:
        """Book an attempt body starting (the caller holds ``cond`` or runs in the loop)."""
        assert attempt.state.deadline_at == pytest.approx(call.deadline_at)
        call.attempt = attempt
        call.bodies.append(self.clock.now)
        call.tokens.append(token)
        call.phase = "parked"
        self.attempts += 1

    def _park_sync(self, call: Call, attempt: Attempt, token: str) -> Command:
        with self.cond:
            self._entered(call, attempt, token)
            self.cond.notify_all()
            while call.command is None:
                self.cond.wait()
            command, call.command = call.command, None
            return command

    async def _park_async(self, call: Call, attempt: Attempt, token: str) -> Command:
        self._entered(call, attempt, token)
        call.future = self.loop.create_future()
        try:
            return await call.future
        finally:
            call.future = None

    @staticmethod
    def _perform(command: Command) -> object:
        if command.kind == "succeed":
            return command.value
        if command.kind == "fail":
            raise ar.NlsError(command.code, f"scripted {command.code}")
        if command.kind == "raise":
            assert isinstance(command.value, BaseException)
            raise command.value
        raise AssertionError(f"cannot perform {command}")

    def _end(self, call: Call, outcome: tuple[str, object]) -> None:
        """Book a call's outcome (the caller holds ``cond`` or runs in the loop)."""
        call.outcomes.append(outcome)
        call.ended_at = self.clock.now
        call.attempt = None
        call.phase = "done"

    def _run_sync(self, call: Call, fn: Any) -> None:
        try:
            outcome: tuple[str, object] = ("result", fn(call))
        except BaseException as exc:
            outcome = ("error", exc)
        with self.cond:
            self._end(call, outcome)
            self.cond.notify_all()

    def _run_sync_block(self, call: Call) -> None:
        def block() -> object:
            result: object = None
            for attempt in ar.retrying(
                POLICY, tokens=self.sync_tokens, scope=self.scope_name, clock=self.fclock
            ):
                command = self._park_sync(call, attempt, attempt.token)
                if command.kind == "abandon":
                    return "abandoned"  # leaves the loop without entering the attempt
                with attempt:
                    result = self._perform(command)
            return result

        self._run_sync(call, lambda _call: block())

    async def _run_async(self, call: Call) -> None:
        try:
            outcome: tuple[str, object] = ("result", await self.async_fn(call))
        except BaseException as exc:
            outcome = ("error", exc)
        self._end(call, outcome)

    async def _run_async_block(self, call: Call) -> None:
        async def block() -> object:
            result: object = None
            async for attempt in ar.retrying(
                POLICY, tokens=self.async_tokens, scope=self.scope_name, clock=self.fclock
            ):
                with attempt:  # parked inside: the attempt's deadline timer is armed
                    result = self._perform(await self._park_async(call, attempt, attempt.token))
            return result

        try:
            outcome: tuple[str, object] = ("result", await block())
        except BaseException as exc:
            outcome = ("error", exc)
        self._end(call, outcome)

    # -- quiet -------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Run one iteration of the machine's loop."""
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()

    def _loop_busy(self) -> bool:
        now = self.clock.now
        ready = self.loop._ready  # type: ignore[attr-defined]
        scheduled = self.loop._scheduled  # type: ignore[attr-defined]
        return bool(ready) or any(not h.cancelled() and h.when() <= now for h in scheduled)

    def _quiet(self) -> bool:
        """Every live call parked or queued; the caller holds ``cond``."""
        moving = sum(1 for c in self.calls if c.phase == "moving")
        return moving == self.limiter.stats()["waiting"]

    def settle(self) -> None:
        """Run the loop and wait for the threads until the system is quiet."""
        give_up = time.monotonic() + QUIET_TIMEOUT
        while True:
            while self._loop_busy():
                self._tick()
            with self.cond:
                if self._quiet() and not self._loop_busy():
                    return
                # A thread is between two states: it notifies when it parks or ends; joining
                # the limiter's queue it does not, hence the short re-check.
                self.cond.wait(0.001)
            assert time.monotonic() < give_up, f"never quiet: {self.calls}"

    # -- rules -------------------------------------------------------------------------------

    def _live(self) -> list[Call]:
        return [c for c in self.calls if c.phase != "done"]

    def _parked(self, kinds: tuple[str, ...] = KINDS) -> list[Call]:
        return [c for c in self.calls if c.phase == "parked" and c.kind in kinds]

    def _start(self, kind: str, *, short: bool = False) -> Call:
        now = self.clock.now
        call = Call(
            n=len(self.calls),
            kind=kind,
            started=now,
            deadline_at=now + (SHORT_DEADLINE if short else DEADLINE),
        )
        self.calls.append(call)
        if kind == "sync" or kind == "sync-block":
            if kind == "sync-block":
                target: Any = lambda: self._run_sync_block(call)  # noqa: E731
            else:
                fn = self.short_fn if short else self.sync_fn
                target = lambda: self._run_sync(call, fn)  # noqa: E731
            call.thread = threading.Thread(target=target, daemon=True)
            call.thread.start()
            assert call.thread.ident is not None
            call.owner = (call.thread.ident, 0)
        else:
            run = self._run_async if kind == "async" else self._run_async_block
            call.task = self.loop.create_task(run(call))
            call.owner = (threading.get_ident(), id(call.task))
        return call

    @precondition(lambda self: len(self._live()) < MAX_LIVE)
    @rule(kind=st.sampled_from(KINDS))
    def start_call(self, kind: str) -> None:
        """A new call: it parks in a body, queues for a slot, or the breaker refuses it."""
        call = self._start(kind)
        self.settle()
        if call.phase == "done":
            assert call.outcomes[0][0] == "error"
            assert isinstance(call.outcomes[0][1], ar.CircuitOpenError), call.outcomes

    def _command(self, call: Call, command: Command) -> None:
        with self.cond:
            call.phase = "moving"
            if call.is_sync:
                call.command = command
                self.cond.notify_all()
        if not call.is_sync:
            assert call.future is not None
            call.future.set_result(command)
        self.settle()

    @precondition(lambda self: self._parked())
    @rule(i=st.integers(0, MAX_LIVE - 1))
    def succeed(self, i: int) -> None:
        """The attempt succeeds: the call ends with its value."""
        parked = self._parked()
        call = parked[i % len(parked)]
        value = f"ok-{call.n}-{len(call.bodies)}"
        self._command(call, Command("succeed", value=value))
        assert call.outcomes == [("result", value)]

    @precondition(lambda self: self._parked())
    @rule(i=st.integers(0, MAX_LIVE - 1), code=st.sampled_from(CODES))
    def fail(self, i: int, code: int) -> None:
        """The attempt fails with a vendor code: the call tries again or gives up typed."""
        parked = self._parked()
        call = parked[i % len(parked)]
        rejected = call.tokens[-1]
        bodies = len(call.bodies)
        self._command(call, Command("fail", code=code))
        if call.phase == "done":
            kind, error = call.outcomes[0]
            assert kind == "error"
            assert isinstance(error, GAVE_UP.get(code, RETRIED_GAVE_UP)), (code, error)
        elif code == 40000001 and len(call.bodies) > bodies:
            assert call.tokens[-1] != rejected  # the next attempt carries a fresh token

    @precondition(lambda self: self._parked())
    @rule(i=st.integers(0, MAX_LIVE - 1))
    def raise_unknown(self, i: int) -> None:
        """The attempt raises an exception no rule knows: it reaches the caller unchanged."""
        parked = self._parked()
        call = parked[i % len(parked)]
        call.raised = ValueError(f"not the service's ({call.n})")
        self._command(call, Command("raise", value=call.raised))
        assert call.outcomes == [("error", call.raised)]

    @precondition(lambda self: self._parked(("async", "async-block")))
    @rule(i=st.integers(0, MAX_LIVE - 1))
    def cancel(self, i: int) -> None:
        """An async call's task is cancelled in its attempt: the call ends in CancelledError."""
        parked = self._parked(("async", "async-block"))
        call = parked[i % len(parked)]
        call.cancelled = True
        call.phase = "moving"
        assert call.task is not None
        call.task.cancel()
        self.settle()
        assert len(call.outcomes) == 1
        assert isinstance(call.outcomes[0][1], asyncio.CancelledError), call.outcomes

    @precondition(lambda self: self._parked(("sync-block",)))
    @rule(i=st.integers(0, MAX_LIVE - 1))
    def abandon(self, i: int) -> None:
        """A sync block is left before its attempt is entered: the slot and a probe go back."""
        parked = self._parked(("sync-block",))
        call = parked[i % len(parked)]
        call.abandoned = True
        self._command(call, Command("abandon"))
        assert call.outcomes == [("result", "abandoned")]

    @precondition(
        lambda self: (
            len(self._live()) < MAX_LIVE
            and self.limiter.in_flight >= self.limiter.slots
            and all(c.phase == "parked" for c in self._live() if c.is_sync)
        )
    )
    @rule()
    def sync_permit_wait_times_out(self) -> None:
        """A sync call that gets no slot within its (short) deadline ends typed, unrun."""
        call = self._start("sync", short=True)
        assert call.thread is not None
        call.thread.join(QUIET_TIMEOUT)
        self.settle()
        assert call.phase == "done"
        assert call.bodies == []
        kind, error = call.outcomes[0]
        assert kind == "error"
        assert isinstance(error, ar.DeadlineExceededError | ar.CircuitOpenError), error

    @precondition(lambda self: self.limiter.in_flight >= self.limiter.slots)
    @rule()
    def async_permit_wait_times_out(self) -> None:
        """An async call that gets no slot by its deadline ends typed when the clock passes it."""
        if len(self._live()) >= MAX_LIVE:
            return
        call = self._start("async")
        self.settle()
        if call.phase == "done":  # refused by the breaker
            return
        assert call.phase == "moving"  # queued
        self._advance_to(call.deadline_at)
        if call.phase == "done":  # the clock reached the deadline (a sync call may hold it back)
            kind, error = call.outcomes[0]
            assert kind == "error"
            assert isinstance(error, ar.DeadlineExceededError), error

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 4.0, 11.0]))
    def advance(self, seconds: float) -> None:
        """Time passes: past open_for, window seconds, and deadlines (async calls end there)."""
        self._advance_to(self.clock.now + seconds)

    def _bound(self, target: float) -> float:
        """``target``, pulled back so that no sync call's real-time slot wait can expire."""
        for _ in range(len(self.calls) + 1):
            moved = False
            for call in self._live():
                if not call.is_sync:
                    continue
                floor = call.deadline_at - SYNC_MARGIN
                if target > floor and (call.phase != "parked" or target < call.deadline_at):
                    target, moved = floor, True
            if not moved:
                break
        return target

    def _advance_to(self, target: float) -> None:
        target = self._bound(target)
        if target <= self.clock.now:
            return
        while True:
            due = [
                h.when()
                for h in self.loop._scheduled  # type: ignore[attr-defined]
                if not h.cancelled() and h.when() <= target
            ]
            if not due:
                break
            self._set_time(max(self.clock.now, min(due)))
            self.settle()
        self._set_time(target)
        self.settle()
        for call in self._live():
            if not call.is_sync:
                assert call.deadline_at > self.clock.now, f"{call} outlived its deadline"

    def _set_time(self, now: float) -> None:
        with self.cond:
            self.clock.now = now
            for call in self.calls:
                if call.is_sync and call.phase == "parked" and now >= call.deadline_at:
                    call.overran = True

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def permits_match_attempts_in_flight(self) -> None:
        """Permits in use = attempts parked in bodies; the slot queue = the other live calls."""
        parked = self._parked()
        stats = self.limiter.stats()
        assert self.limiter.in_flight == len(parked), (stats, parked)
        assert stats["waiting"] == sum(1 for c in self.calls if c.phase == "moving")
        assert self.limiter.in_flight <= 3
        for call in parked:
            assert call.attempt is not None
            permit = call.attempt._permit
            assert permit is not None
            assert not permit.released

    @invariant()
    def one_probe_and_it_comes_back(self) -> None:
        """Half-open: at most one probe out, held by a live call; none out once all have ended."""
        breaker = self.breaker
        if breaker.state == "half_open":
            self.seen.add("half-open with a probe out" if breaker._probe_out else "half-open")
        probes = [
            c
            for c in self._parked()
            if c.attempt is not None
            and getattr(c.attempt, "_ticket", 0) == PROBE
            and breaker.state == "half_open"
            and breaker._probe_out
            and breaker._probe_owner == c.owner
        ]
        assert len(probes) <= 1
        if breaker.state == "half_open" and breaker._probe_out:
            owners = [c for c in self._live() if c.owner == breaker._probe_owner]
            assert owners, f"a probe is out and no live call holds it: {breaker._probe_owner}"
            for call in owners:
                if call.phase == "parked":
                    assert call.attempt is not None
                    assert getattr(call.attempt, "_ticket", 0) == PROBE

    @invariant()
    def counters_are_consistent(self) -> None:
        """Budget and breaker windows: non-negative, sums match their rings, failures <= calls."""
        for ring in (self.budget, self.breaker):
            assert min(ring._cur_a, ring._cur_b, ring._past_a, ring._past_b) >= 0
            assert min(ring._ring_a) >= 0
            assert min(ring._ring_b) >= 0
            assert ring._past_a == sum(ring._ring_a)
            assert ring._past_b == sum(ring._ring_b)
            assert ring._sec <= int(self.clock.now)
        breaker = self.breaker
        assert breaker._cur_b <= breaker._cur_a
        for a, b in zip(breaker._ring_a, breaker._ring_b, strict=True):
            assert b <= a
        assert breaker.state in ("closed", "open", "half_open")
        started = len(self.calls)
        assert self.budget._past_a + self.budget._cur_a <= started  # one deposit per call
        assert self.budget._past_b + self.budget._cur_b <= self.attempts  # retries <= attempts
        assert self.budget.available(self.clock.now) >= 0

    @invariant()
    def every_call_ends_once_and_by_its_deadline(self) -> None:
        """One outcome per ended call, of an allowed kind; attempts start before the deadline."""
        for call in self.calls:
            assert len(call.outcomes) == (1 if call.phase == "done" else 0), call
            for at in call.bodies:
                assert at < call.deadline_at, call
            if call.phase != "done":
                continue
            assert call.ended_at is not None
            if call.ended_at > call.deadline_at + 1e-9:
                # Only a blocking attempt can outlive the deadline, and only the one that was
                # running when it passed: no attempt starts after it (checked above).
                assert call.is_sync, call
                assert call.overran, call
            kind, value = call.outcomes[0]
            if kind == "result":
                assert value == "abandoned" if call.abandoned else str(value).startswith("ok-")
            elif isinstance(value, asyncio.CancelledError):
                assert call.cancelled, call
            elif isinstance(value, ValueError) and not isinstance(value, ar.AsrResilienceError):
                assert value is call.raised, call
            else:
                assert isinstance(value, ar.ResilienceError), call

    # -- the end -----------------------------------------------------------------------------

    def teardown(self) -> None:
        """Drive every call to its end; then no permit and no probe is out."""
        try:
            for _ in range(10 * MAX_LIVE + 10):
                self.settle()
                parked = self._parked()
                if not parked:
                    break
                for call in parked:
                    self._command(call, Command("succeed", value=f"ok-{call.n}-end"))
            assert not self._live(), f"calls that never ended: {self._live()}"
            self.every_call_ends_once_and_by_its_deadline()
            assert self.limiter.in_flight == 0
            assert not (self.breaker.state == "half_open" and self.breaker._probe_out)
            for call in self.calls:
                outcome = call.outcomes[0][1]
                self.seen.add(f"{call.kind} ended: {type(outcome).__name__}")
                if call.overran:
                    self.seen.add("a sync attempt outlived its deadline")
            for seen in sorted(self.seen):
                event(seen)
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        """Leave no thread, task or loop behind, whatever happened."""
        for call in self._live():
            if call.task is not None:
                call.task.cancel()
            with self.cond:
                if call.is_sync and call.phase == "parked":
                    call.command = Command("raise", value=SystemExit("torn down"))
                    self.cond.notify_all()
        with contextlib.suppress(BaseException):
            while self._loop_busy():
                self._tick()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        for call in self.calls:
            if call.thread is not None:
                call.thread.join(QUIET_TIMEOUT)
        self.loop.close()
        self.no_wait.__exit__(None, None, None)


EngineMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, derandomize=True
)
TestEngineMachine = EngineMachine.TestCase

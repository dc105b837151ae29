"""One resilient call: what happens after each failure, as a small state object.

The wrapper (decorator or block form) runs attempts; after a failure it asks :meth:`CallState.
on_failure` for a :class:`Step`: retry after a delay, or raise a typed error, or let a foreign
exception propagate. The policy decides the action; this layer adds the limits that belong to the
call (attempts, deadline, refreshes) and to the scope (retry budget, breaker, limiter).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .. import _backoff as backoff
from .._attempts import AttemptRecord
from .._catalog import code_class
from .._clock import Clock
from .._errors import (
    AsrResilienceError,
    CircuitOpenError,
    DeadlineExceededError,
    FailFastError,
    FixClientError,
    ResilienceError,
    RetryBudgetExhaustedError,
    RetryExhaustedError,
    TokenRefreshError,
)
from .._extract import extract_failure
from .._failure import Failure
from ..observe import emit, redact_text
from ..policy import Decision, Policy

if TYPE_CHECKING:
    from ..limits import Scope
    from ..tokens import TokenManager


class CircuitOpen(Exception):
    """Raised inside an attempt when the scope's breaker refused it."""


class QueueTimeout(Exception):
    """Raised inside an attempt when no concurrency slot came free within the deadline."""


class DeadlineTimeout(AsrResilienceError, TimeoutError):
    """The call's deadline passed while an attempt was running (a ``TimeoutError``).

    The attempt ends with it; the call then raises ``DeadlineExceededError`` from it.
    """


class AdmissionTimeout(DeadlineTimeout):
    """The deadline passed while the attempt was still being admitted (a slot, the token).

    Nothing reached the service, so the breaker and the limiter learn nothing from it.
    """


class ResultFailure(Exception):
    """A returned value that signals a vendor failure (a REST body with a failing status)."""

    def __init__(self, failure: Failure, result: object) -> None:
        super().__init__(failure.code, failure.message)
        self.failure = failure
        self.result = result


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after a failed attempt."""

    kind: Literal["retry", "raise", "propagate"]
    delay: float = 0.0
    error: BaseException | None = None
    cause: BaseException | None = None


PROPAGATE = Step("propagate")
"""Not a failure of the service: the exception goes to the caller as it is."""


class ClassifiedFailure(Exception):
    """An exception its caller has classified itself (a token provider's error, whose text may
    hold secrets): ``failure`` is what it stands for; the original is its ``__cause__``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def classify(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for (None: not the service's); the one classification."""
    if isinstance(exc, ResultFailure | ClassifiedFailure):
        return exc.failure
    if not isinstance(exc, Exception) or isinstance(
        exc, CircuitOpen | QueueTimeout | AdmissionTimeout
    ):
        return None
    return extract_failure(exc)


@dataclass(slots=True)
class CallSettings:
    """What a decorated function or block needs, fixed when it is built."""

    policy: Policy
    tokens: TokenManager | None
    scope_name: str
    clock: Clock
    rng: random.Random | None
    function: str
    check_result: bool = False
    deadline: float = 0.0
    """Seconds a call may take, waits included (0: the policy's ``defaults.deadline``)."""
    max_attempts: int | None = None
    """A ceiling on every rule's attempts (None: the rules' own)."""
    rules: Callable[[Failure, BaseException], Decision] | None = None
    """Decides a failure instead of the policy's rules (the token provider's small policy);
    the policy still gives the language and the token settings."""
    _scope: Scope | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = self.policy.defaults.deadline

    def scope(self) -> Scope:
        """The shared scope (budget, breaker, limiter), created on first use and again after
        it was closed (``reset_scopes``)."""
        scope = self._scope
        if scope is None or scope.closed:
            from ..limits import get_scope

            scope = get_scope(
                self.scope_name,
                self.policy,
                clock=self.clock.monotonic,
                on_breaker_change=_breaker_event(self.scope_name),
                on_limit_change=_limit_event(self.scope_name),
            )
            self._scope = scope
        return scope


def _breaker_event(scope: str):  # type: ignore[no-untyped-def]
    def on_change(old: str, new: str) -> None:
        name = {"open": "circuit_opened", "closed": "circuit_closed"}.get(new, "circuit_half_open")
        emit(name, level="warning" if new == "open" else "info", scope=scope, previous=old)

    return on_change


def _limit_event(scope: str):  # type: ignore[no-untyped-def]
    def on_change(old: float, new: float) -> None:
        if int(old) != int(new):
            emit(
                "concurrency_limit_changed", level="debug", scope=scope, old=int(old), new=int(new)
            )

    return on_change


def is_server_class(failure: Failure) -> bool:
    """5xxxxxxx, HTTP 5xx or a transport failure: the service (or the path to it) is failing."""
    code = failure.effective_code
    if code is None:
        return True
    return code_class(code) in ("server", "http_server")


class CallState:
    """The running history of one call, and the one place that decides what follows a failure.

    Pure bookkeeping of the call (attempts, refreshes, deadline, history): it never waits and
    holds no resource. :meth:`decide` turns a classified failure into the next :class:`Step`;
    the scope's shared counters (breaker, budget, limiter) are settled by the attempt itself
    (:class:`~asr_resilience.retry._attempt.Attempt`) before it asks.
    """

    __slots__ = (
        "deadline_at",
        "history",
        "max_attempts",
        "monotonic",
        "previous_delay",
        "refreshes",
        "retries",
        "scope",
        "settings",
        "step",
        "token",
    )

    def __init__(
        self,
        settings: CallSettings,
        start: float,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """``deadline`` (seconds from ``start``) and ``max_attempts`` (a ceiling on every rule's
        attempts) override the settings' for this call; the caller has validated them
        (``retry._overrides``): this constructor runs for every call."""
        self.settings = settings
        scope = settings._scope
        self.scope = scope if scope is not None and not scope.closed else settings.scope()
        """The shared budget, breaker and limiter this call's attempts settle with."""
        self.monotonic = settings.clock.monotonic
        self.deadline_at = start + (settings.deadline if deadline is None else deadline)
        self.max_attempts = settings.max_attempts if max_attempts is None else max_attempts
        """The ceiling on every rule's attempts for this call (None: the rules' own)."""
        self.history: list[AttemptRecord] = []
        self.token: str | None = None
        # refreshes, retries, previous_delay and step are set by the first failure (decide):
        # most calls never fail, and this constructor runs for every call.

    refreshes: int
    """Token refreshes so far (after the first failure)."""
    retries: int
    """Retries scheduled so far (after the first failure)."""
    previous_delay: float | None
    """The last backoff delay (after the first failure)."""
    step: Step
    """The step decided after the latest failed attempt (what the loop does next)."""

    @property
    def attempt(self) -> int:
        """The number of the attempt running now (1-based)."""
        return len(self.history) + 1

    def remaining(self) -> float:
        """Seconds left before the call's deadline (negative once it has passed)."""
        return self.deadline_at - self.monotonic()

    def on_failure(self, exc: BaseException) -> Step:
        """Classify ``exc`` and decide (for callers outside an attempt, e.g. tests)."""
        return self.decide(exc, classify(exc))

    def decide(self, exc: BaseException, failure: Failure | None) -> Step:
        """Decide what follows the failed attempt that raised ``exc`` (``failure``: its class).

        Sets and returns :attr:`step`: retry after a delay, raise a typed error, or let a
        foreign exception propagate unchanged.
        """
        if not hasattr(self, "refreshes"):  # the call's first failure
            self.refreshes = self.retries = 0
            self.previous_delay = None
        self.step = step = self._decide(exc, failure)
        return step

    def _decide(self, exc: BaseException, failure: Failure | None) -> Step:
        s = self.settings
        now = s.clock.monotonic()
        if isinstance(exc, CircuitOpen):
            return self._give_up(
                CircuitOpenError,
                "the circuit breaker is open: the service keeps failing",
                None,
                exc.__cause__ or exc,
                record=False,
            )
        if isinstance(exc, QueueTimeout):
            return self._give_up(
                DeadlineExceededError,
                "no concurrency slot came free within the deadline",
                None,
                exc,
                record=False,
            )
        if isinstance(exc, DeadlineTimeout):
            # The attempt itself ran into the deadline: nothing is left to decide.
            self._record(failure, None, 0.0)
            return self._give_up(DeadlineExceededError, str(exc), None, exc, record=False)
        if failure is None:
            return PROPAGATE
        decision = s.policy.decide(failure) if s.rules is None else s.rules(failure, exc)
        action = decision.action
        if action == "fix-client":
            return self._give_up(FixClientError, "the request is wrong", decision, exc, failure)
        if action == "fail-fast":
            return self._give_up(FailFastError, "a retry cannot help", decision, exc, failure)
        if now >= self.deadline_at:
            return self._give_up(
                DeadlineExceededError, "the deadline passed", decision, exc, failure
            )
        if action == "refresh-token":
            return self._refresh(decision, exc, failure, now)
        return self._retry(decision, exc, failure, now)

    def _refresh(
        self, decision: Decision, exc: BaseException, failure: Failure, now: float
    ) -> Step:
        s = self.settings
        if s.tokens is None:
            return self._give_up(
                TokenRefreshError,
                "the service rejected the token and no TokenManager was given to refresh it",
                decision,
                exc,
                failure,
            )
        if self.refreshes >= s.policy.tokens.max_refreshes:
            return self._give_up(
                TokenRefreshError,
                "the service rejected a freshly issued token: the credentials (AccessKey pair, "
                "appkey's account), not the token, are wrong",
                decision,
                exc,
                failure,
            )
        self.refreshes += 1
        if self.token is not None:
            s.tokens.invalidate(self.token)
        self._record(failure, decision, 0.0)
        emit(
            "token_invalidated",
            function=s.function,
            scope=s.scope_name,
            action="refresh-token",
            rule=decision.rule,
            attempt=len(self.history),
            **_failure_fields(failure),
        )
        return Step("retry", 0.0)

    def _retry(self, decision: Decision, exc: BaseException, failure: Failure, now: float) -> Step:
        s = self.settings
        counted = len(self.history) + 1 - self.refreshes
        allowed = decision.max_attempts
        cap = self.max_attempts
        if cap is not None and cap < allowed:
            allowed = cap  # the call's ceiling; the policy's decision is left as it is
        if counted >= allowed:
            return self._give_up(
                RetryExhaustedError, f"gave up after {counted} attempts", decision, exc, failure
            )
        scope = self.scope
        # A throttled call queues again at once only where the limiter has just lowered its
        # limit; a fixed fleet quota does not move, so there the throttle schedule applies.
        if decision.throttled and scope.limiter is not None and scope.limiter.adaptive:
            delay = 0.0  # back to the limiter's queue, which has just cut the limit
        else:
            delay = backoff.delay(decision.backoff, self.retries, self.previous_delay, s.rng)
        if now + delay > self.deadline_at:
            return self._give_up(
                DeadlineExceededError,
                f"the next wait ({delay:.3f}s) would cross the deadline",
                decision,
                exc,
                failure,
            )
        if scope.budget is not None and not scope.budget.try_withdraw(now):
            emit("budget_exhausted", level="warning", scope=s.scope_name, function=s.function)
            return self._give_up(
                RetryBudgetExhaustedError,
                "the retry budget is spent: retrying now would amplify an outage",
                decision,
                exc,
                failure,
            )
        self.retries += 1
        self.previous_delay = delay
        self._record(failure, decision, delay)
        emit(
            "retry_scheduled",
            function=s.function,
            scope=s.scope_name,
            action="retry",
            rule=decision.rule,
            attempt=len(self.history),
            delay=round(delay, 4),
            message=failure.message or None,
            **_failure_fields(failure),
            throttled=decision.throttled or None,
        )
        return Step("retry", delay)

    def _record(self, failure: Failure | None, decision: Decision | None, delay: float) -> None:
        self.history.append(
            AttemptRecord(
                number=len(self.history) + 1,
                code=failure.effective_code if failure else None,
                action=decision.action if decision else None,
                delay=delay,
                at=self.settings.clock.wall(),
                rule=decision.rule if decision else None,
                message=redact_text(failure.message) if failure else "",
                transport=failure.transport if failure else None,
            )
        )

    def _give_up(
        self,
        kind: type[ResilienceError],
        reason: str,
        decision: Decision | None,
        exc: BaseException,
        failure: Failure | None = None,
        *,
        record: bool = True,
    ) -> Step:
        s = self.settings
        if record:
            self._record(failure, decision, 0.0)
        code = failure.effective_code if failure else None
        entry = decision.entry if decision else None
        hint = entry.solution(s.policy.language) if entry else ""
        what = _describe(code, failure, entry.name if entry else None)
        message = f"{what}: {reason}" if what else reason
        if decision is not None:
            message += f" (rule {decision.rule!r})"
        error = kind(message, code=code, hint=hint, attempts=self.history)
        emit(
            "gave_up",
            level="warning",
            function=s.function,
            scope=s.scope_name,
            error=kind.__name__,
            action=error.action,
            rule=decision.rule if decision else None,
            attempt=len(self.history),
            message=failure.message if failure and failure.message else None,
            **_failure_fields(failure),
            failed_attempt=record or None,
        )
        return Step("raise", error=error, cause=exc)


def _failure_fields(failure: Failure | None) -> dict[str, Any]:
    """What an event says of a failure: the deciding code, and each kind of code apart."""
    if failure is None:
        return {"code": None, "vendor_code": None, "http_status": None, "transport": None,
                "task_id": None}  # fmt: skip
    return {
        "code": failure.effective_code,
        "vendor_code": failure.code,
        "http_status": failure.http_status,
        "transport": failure.transport,
        "task_id": failure.task_id,
    }


def _describe(code: int | None, failure: Failure | None, name: str | None) -> str:
    if failure is None:
        return ""
    if code is None:
        if failure.transport is None:  # neither code nor transport: the message is all there is
            return redact_text(failure.message) or "failure"
        return f"transport failure ({failure.transport})"
    text = redact_text(failure.message)
    label = f"{code} {name}" if name else str(code)
    return f"{label} {text!r}" if text else label

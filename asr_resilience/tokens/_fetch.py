"""The token provider's calls as one engine call: its small policy, its call state, its body.

A refresh that must ask the provider (CreateToken) runs it as one call of the execution core
(``retry._engine.run_sync`` / ``run_async`` over a :class:`~asr_resilience.retry._call.CallState`):
each provider call is an :class:`~asr_resilience.retry._attempt.Attempt` settled and decided
like any other, the backoff is slept through the manager's Clock, and the decisions are logged
with the same events as a service call's (``retry_scheduled``, ``gave_up``; ``function`` and
``scope`` ``token-provider``). The provider's calls are not reported to hooks as calls of their
own (``observe=False``): call metrics count the calls the application makes. What differs is
the policy, :func:`provider_rules`:

* any failure (an exception, an empty or unusable answer) is retried with ``provider_backoff``,
  up to ``provider_attempts`` calls in all;
* an error whose ``retryable`` is false (e.g. SignatureDoesNotMatch) fails at once;
* an error naming its own wait (``retry_after``, e.g. Throttling.User) ends the refresh at
  once: the manager's cool-down keeps every caller from CreateToken for at least that long;
* the deadline is the latest timeout of the callers waiting for the refresh (one that joins
  later extends it): a backoff that would end after it is not slept. A running provider call is
  not cancelled at it (``watch=False``): each waiter times out on its own, and the refresh goes
  on for those that wait longer.

The scope is empty (no retry budget, breaker or limiter): the cool-down is what keeps failing
callers from multiplying provider calls. A failure is described by its type only (``Failure.
message``), never its text: the provider's text may hold secrets.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from .._catalog import CatalogEntry, Text
from .._clock import Clock
from .._failure import Failure
from ..limits import Scope
from ..policy import Decision, Policy
from ..policy._model import Backoff
from ..retry._call import CallSettings, CallState, ClassifiedFailure

__all__ = [
    "PROVIDER",
    "as_failure",
    "provider_cause",
    "provider_rules",
    "provider_settings",
    "retry_after",
]

PROVIDER = "token-provider"
"""The ``function`` and ``scope`` of the provider's calls in events."""

_ENTRY = CatalogEntry(
    code=None,
    message=None,
    name=None,
    cause=Text(
        zh="令牌服务（CreateToken）调用失败。",
        en="The token service (CreateToken) call failed.",
    ),
    solution=Text(
        zh="检查 AccessKey 与元数据服务地址。",
        en="Check the AccessKey pair and the meta endpoint.",
    ),
    table="class",
    from_seed=False,
    general=True,
)


@functools.cache
def _policy() -> Policy:
    # Only the language and the token settings are read: the decisions are provider_rules'.
    return Policy(name=PROVIDER)


def provider_rules(
    attempts: int, backoff: Backoff, failure: Failure, exc: BaseException
) -> Decision:
    """The provider's policy: retry with ``backoff`` up to ``attempts`` calls, except an error
    that says a retry cannot help (``retryable`` false) or names its own wait (``retry_after``)."""
    error = exc.__cause__
    if getattr(error, "retryable", True) is False:
        return _decision("fail-fast", "provider.not_retryable", 1, backoff)
    if retry_after(error) is not None:  # the cool-down keeps the service's wait
        return _decision("fail-fast", "provider.retry_after", 1, backoff)
    return _decision("retry", "provider.retry", attempts, backoff)


def _decision(action: str, rule: str, attempts: int, backoff: Backoff) -> Decision:
    return Decision(
        action=action,  # type: ignore[arg-type]
        rule=rule,
        max_attempts=attempts,
        backoff=backoff,
        deadline=float("inf"),
        entry=_ENTRY,
        code=None,
    )


def retry_after(exc: BaseException | None) -> float | None:
    """The wait the failure names itself (``retry_after`` seconds), if any."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def provider_settings(attempts: int, backoff: Backoff, clock: Clock) -> CallSettings:
    """The settings of a manager's provider calls (built once per manager)."""
    return CallSettings(
        policy=_policy(),
        tokens=None,
        scope_name=PROVIDER,
        clock=clock,
        rng=None,
        function=PROVIDER,
        deadline=float("inf"),
        rules=functools.partial(provider_rules, attempts, backoff),
        _scope=Scope(PROVIDER, budget=None, breaker=None, limiter=None),
    )


@contextlib.contextmanager
def as_failure() -> Iterator[None]:
    """Around one provider call: its failure, classified (by type only) for the engine."""
    try:
        yield
    except Exception as exc:
        raise ClassifiedFailure(Failure(transport="other", message=type(exc).__name__)) from exc


def provider_cause(state: CallState) -> BaseException | None:
    """The provider's own exception that ended the call ``state`` (the last attempt's)."""
    step = getattr(state, "step", None)
    cause = None if step is None else step.cause
    if isinstance(cause, ClassifiedFailure):
        return cause.__cause__
    return cause

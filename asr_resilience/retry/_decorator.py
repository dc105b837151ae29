"""``@resilient``: run a function that calls NLS under a policy, sync or async."""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

from .._clock import Clock
from .._extract import rest_result
from ..policy import Policy
from ._attempt import Attempt
from ._call import ResultFailure
from ._engine import caller_async, caller_sync
from ._overrides import call_limits, effective_policy
from ._settings import PolicyLike, make_settings

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..tokens import TokenManager

__all__ = ["ResilientFunction", "resilient"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

_OPTIONS = frozenset(
    {"policy", "tokens", "scope", "check_result", "clock", "rng", "deadline", "max_attempts"}
)


class ResilientFunction(Protocol[P, R_co]):
    """What ``@resilient`` returns: the function, called as before, plus ``policy`` and
    ``retry_with``. On a method, take them from the class (``Client.method.retry_with(...)``
    returns a function that is given ``self`` explicitly), as with tenacity."""

    policy: Policy
    """The policy in effect: the resolved one, with the decorator's and the environment's
    ``deadline`` and ``max_attempts`` applied (``retry._overrides.effective_policy``)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def retry_with(
        self,
        *,
        policy: PolicyLike = ...,
        tokens: TokenManager | None = ...,
        scope: str | None = ...,
        check_result: bool = ...,
        clock: Clock | None = ...,
        rng: random.Random | None = ...,
        deadline: float | None = ...,
        max_attempts: int | None = ...,
    ) -> ResilientFunction[P, R_co]:
        """The same function wrapped again with these arguments of :func:`resilient` changed
        (the others as this one has them); this one is unchanged."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self: ResilientFunction[Concatenate[T, P2], R_co],
        instance: T,
        owner: type[Any] | None = None,
    ) -> Callable[P2, R_co]: ...


def resilient(
    policy: PolicyLike = None,
    *,
    tokens: TokenManager | None = None,
    scope: str | None = None,
    check_result: bool = False,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    deadline: float | None = None,
    max_attempts: int | None = None,
) -> Callable[[Callable[P, R]], ResilientFunction[P, R]]:
    """Wrap a function (or coroutine function, or method) that calls NLS.

    ``policy``: a Policy, a file, a shipped name, or None for ``$ASR_RESILIENCE_POLICY`` /
    ``default``. With ``tokens``, the wrapper fills the keyword argument ``token`` on every
    attempt and refreshes it when the service rejects it. ``scope`` names the budget, breaker and
    limiter the call shares (default: the policy's name). ``check_result`` treats a returned REST
    body whose ``status`` is not 20000000 as a failure.

    Each attempt runs under the policy's deadline: a coroutine is cancelled when it passes (and
    the call ends in ``DeadlineExceededError``). A blocking function cannot be interrupted: one
    that declares an ``attempt`` keyword receives the running :class:`Attempt` and hands its
    ``remaining`` seconds on, e.g. ``requests.post(..., timeout=attempt.remaining)``.

    ``deadline`` (seconds) replaces the policy's ``defaults.deadline`` and ``max_attempts`` caps
    every rule's attempts, for every call; unset, ``$ASR_RESILIENCE_DEADLINE`` and
    ``$ASR_RESILIENCE_MAX_ATTEMPTS`` do (README "Per-call overrides"). The wrapper has
    ``policy``, the policy in effect, and ``retry_with(**changes)``, a new wrapper of the same
    function with some of these arguments changed.
    """
    # Checked here, so that a wrong value fails where the decorator is written.
    call_limits(deadline, max_attempts)
    options: dict[str, Any] = {
        "policy": policy,
        "tokens": tokens,
        "scope": scope,
        "check_result": check_result,
        "clock": clock,
        "rng": rng,
        "deadline": deadline,
        "max_attempts": max_attempts,
    }

    def decorate(fn: Callable[P, R]) -> ResilientFunction[P, R]:
        settings = make_settings(
            policy,
            tokens=tokens,
            scope=scope,
            clock=clock,
            rng=rng,
            function=getattr(fn, "__qualname__", repr(fn)),
            check_result=check_result,
            deadline=deadline,
            max_attempts=max_attempts,
        )
        in_effect = effective_policy(settings.policy, settings.deadline, settings.max_attempts)

        def retry_with(**changes: Any) -> ResilientFunction[P, R]:
            unknown = sorted(set(changes) - _OPTIONS)
            if unknown:
                raise TypeError(
                    f"retry_with() got unexpected arguments {', '.join(unknown)}; it takes "
                    f"{', '.join(sorted(_OPTIONS))}"
                )
            return resilient(**{**options, **changes})(fn)

        needs_token = tokens is not None
        wants_attempt = _takes_keyword(fn, "attempt")

        def checked(result: Any) -> Any:
            failure = rest_result(result)
            if failure is not None:
                raise ResultFailure(failure, result)
            return result

        is_async = inspect.iscoroutinefunction(fn)

        def body(attempt: Attempt, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            # One body for both: for a coroutine function it returns the user's coroutine
            # itself, awaited by the engine (no coroutine of ours around it unless the result
            # is checked).
            if needs_token:
                kwargs["token"] = attempt.token
            if wants_attempt:
                kwargs["attempt"] = attempt
            result: Any = fn(*args, **kwargs)
            if not check_result:
                return result
            return checked_async(result) if is_async else checked(result)

        def token_body(attempt: Attempt, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            # ``body`` for the common case, chosen once: the token filled in, nothing else.
            kwargs["token"] = attempt.token
            return fn(*args, **kwargs)

        if needs_token and not wants_attempt and not check_result:
            body = token_body

        async def checked_async(awaitable: Awaitable[Any]) -> Any:
            return checked(await awaitable)

        # The engine's caller is the wrapper itself: no frame of ours around it.
        wrapper = caller_async(settings, body) if is_async else caller_sync(settings, body)
        return _finish(functools.wraps(fn)(wrapper), in_effect, retry_with)

    return decorate


def _finish(
    wrapper: Callable[..., Any], policy: Policy, retry_with: Callable[..., Any]
) -> ResilientFunction[Any, Any]:
    # Plain function attributes: the wrapper stays a function (bound as a method, no __call__
    # of ours on the hot path).
    wrapper.policy = policy  # type: ignore[attr-defined]
    wrapper.retry_with = retry_with  # type: ignore[attr-defined]
    return cast(ResilientFunction[Any, Any], wrapper)


def _takes_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` accepts ``name`` as a keyword (named, not only through ``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return False
    parameter = parameters.get(name)
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )

"""``@resilient``: run a function that calls NLS under a policy, sync or async."""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from .._clock import Clock
from .._extract import rest_result
from ._attempt import Attempt
from ._call import CallState, ResultFailure
from ._engine import run_async, run_sync
from ._settings import PolicyLike, make_settings

if TYPE_CHECKING:
    from ..tokens import TokenManager

P = ParamSpec("P")
R = TypeVar("R")


def resilient(
    policy: PolicyLike = None,
    *,
    tokens: TokenManager | None = None,
    scope: str | None = None,
    check_result: bool = False,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
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
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        settings = make_settings(
            policy,
            tokens=tokens,
            scope=scope,
            clock=clock,
            rng=rng,
            function=getattr(fn, "__qualname__", repr(fn)),
            check_result=check_result,
        )
        monotonic = settings.clock.monotonic
        needs_token = tokens is not None
        wants_attempt = _takes_keyword(fn, "attempt")

        def checked(result: Any) -> Any:
            failure = rest_result(result)
            if failure is not None:
                raise ResultFailure(failure, result)
            return result

        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            def async_body(
                attempt: Attempt, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Awaitable[Any]:
                # The user's coroutine itself, awaited by the engine (no coroutine of ours
                # around it), or one that checks the result it returns.
                if needs_token:
                    kwargs["token"] = attempt.token
                if wants_attempt:
                    kwargs["attempt"] = attempt
                awaitable = afn(*args, **kwargs)
                return checked_async(awaitable) if check_result else awaitable

            async def checked_async(awaitable: Awaitable[Any]) -> Any:
                return checked(await awaitable)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await run_async(CallState(settings, monotonic()), async_body, args, kwargs)

            return cast(Callable[P, R], async_wrapper)

        def body(attempt: Attempt, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if needs_token:
                kwargs["token"] = attempt.token
            if wants_attempt:
                kwargs["attempt"] = attempt
            result = fn(*args, **kwargs)
            return checked(result) if check_result else result

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return run_sync(CallState(settings, monotonic()), body, args, kwargs)

        return cast(Callable[P, R], sync_wrapper)

    return decorate


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

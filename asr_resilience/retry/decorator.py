"""``@resilient``: run a function that calls NLS under a policy, sync or async."""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from .call import CallState
from .clock import Clock
from .runner import call_async, call_sync
from .settings import PolicyLike, make_settings

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

        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                sc = settings.scope()
                start = monotonic()
                breaker = sc.breaker
                if (
                    sc.limiter is not None
                    or check_result
                    or (breaker is not None and not breaker.allow(start))
                ):
                    return await call_async(settings, afn, args, kwargs)
                token = None
                if tokens is not None:
                    token = tokens.current()
                    if token is None:
                        return await call_async(settings, afn, args, kwargs)
                    kwargs["token"] = token
                try:
                    result = await afn(*args, **kwargs)
                except Exception as exc:
                    state = CallState(settings, start)
                    state.token = token
                    return await call_async(settings, afn, args, kwargs, exc, state)
                sc.on_success(monotonic())
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            sc = settings.scope()
            start = monotonic()
            breaker = sc.breaker
            if (
                sc.limiter is not None
                or check_result
                or (breaker is not None and not breaker.allow(start))
            ):
                return call_sync(settings, fn, args, kwargs)
            token = None
            if tokens is not None:
                token = tokens.current()
                if token is None:
                    return call_sync(settings, fn, args, kwargs)
                kwargs["token"] = token
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                state = CallState(settings, start)
                state.token = token
                return call_sync(settings, fn, args, kwargs, exc, state)
            sc.on_success(monotonic())
            return result

        return cast(Callable[P, R], sync_wrapper)

    return decorate

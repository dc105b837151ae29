"""The token manager: one shared NLS token, refreshed once for any number of concurrent callers.

Design
------
* **Hot path.** :meth:`TokenManager.current` reads one attribute (a tuple of the value, the time
  to start a proactive refresh, and the expiry, all computed when the token was stored), calls the
  clock once and compares. No lock, no allocation.
* **Single flight.** A :class:`threading.Lock` guards the state; a refresh in progress is a
  :class:`concurrent.futures.Future`. The first caller that needs a token creates it and leads;
  every other caller — asyncio tasks on any event loop, or plain threads — waits on the same
  future (``future.result()`` in threads, ``await asyncio.wrap_future(future)`` in asyncio).
  The future is marked *running* as soon as it is created, so a cancelled waiter can never cancel
  it for the others.
* **Leaders.** From :meth:`TokenManager.get` the refresh runs in its own task on the caller's
  loop (an async provider is awaited there, a sync one runs via :func:`asyncio.to_thread`); the
  leader then waits like everyone else, so cancelling the leader's task does not stop the refresh.
  If the refresh task itself is cancelled (its loop shuts down), every waiter gets
  :class:`~asr_resilience.errors.TokenRefreshError`. From :meth:`TokenManager.get_sync` the
  refresh runs in the calling thread; an async provider is then run to completion in a fresh
  event loop (:func:`asyncio.run`), so ``get_sync()`` must not be called from a thread that runs
  an event loop when the provider is async (it raises :class:`RuntimeError` instead).
* **Proactive refresh.** Within ``refresh_ahead`` seconds of expiry, ``current()`` still returns
  the held token and starts one refresh in the background: a task when called inside a running
  loop, otherwise a daemon thread. A token whose whole lifetime is shorter than
  ``refresh_ahead`` is renewed at half its lifetime instead, and after a failed background
  refresh the next one waits ``PROACTIVE_RETRY_PAUSE`` seconds (never past the expiry), so a
  failing provider is not called on every request.
* **Failures.** A provider call that raises, returns an empty value, something that is not a
  :class:`Token` or str, or an already expired token is retried up to ``provider_attempts`` times
  in all; then every waiter gets its own :class:`TokenRefreshError` with the provider's last
  exception as ``__cause__``. Events (``token_refreshed``, ``token_refresh_failed``) carry a
  fingerprint and the exception's type only: the provider's text may hold secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, InvalidStateError
from typing import NoReturn, TypeAlias

from ..backoff import delay
from ..errors import TokenRefreshError
from ..observe import emit, register_secret
from ..policy.model import Backoff, TokenSettings
from .token import Provider, Token, fingerprint

__all__ = [
    "DEFAULT_PROVIDER_BACKOFF",
    "DEFAULT_REFRESH_AHEAD",
    "PROACTIVE_RETRY_PAUSE",
    "TokenManager",
]

DEFAULT_REFRESH_AHEAD = 300.0
"""Seconds before expiry at which a token is renewed, unless set otherwise."""
DEFAULT_PROVIDER_BACKOFF = Backoff(initial=0.1, max=1.0, multiplier=2.0, jitter="full")
"""Delays between provider attempts."""
PROACTIVE_RETRY_PAUSE = 10.0
"""Seconds a still valid token is used after a failed background refresh before the next try."""

_ACTION = "refresh-token"
_HINT = "check the AccessKey pair and the meta endpoint"
_LOOP_HINT = "the event loop that ran the refresh shut down; the next call tries again"

_Outcome: TypeAlias = "Token | TokenRefreshError"
# (value, refresh_at, expires_at); float("inf") for a token that never expires.
_State: TypeAlias = "tuple[str, float, float]"


def _refresh_error(message: str, hint: str = _HINT) -> TokenRefreshError:
    return TokenRefreshError(message, code=None, action=_ACTION, hint=hint)


def _provider_error(exc: BaseException | None) -> TokenRefreshError:
    if exc is None:  # provider_attempts >= 1, so only reachable if that check is bypassed
        return _refresh_error("could not get a token from the provider")
    text = str(exc)
    kind = type(exc).__name__
    error = _refresh_error(
        f"could not get a token from the provider: {kind}: {text}"
        if text
        else f"could not get a token from the provider: {kind}"
    )
    error.__cause__ = exc
    return error


def _raise_copy(outcome: TokenRefreshError) -> NoReturn:
    # Every waiter raises its own instance: re-raising one shared exception from many threads
    # would keep growing (and racing on) its traceback.
    message = str(outcome.args[0]) if outcome.args else ""
    error = TokenRefreshError(message, code=outcome.code, action=outcome.action, hint=outcome.hint)
    raise error from outcome.__cause__


def _is_async_callable(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable


class TokenManager:
    """One shared token for many concurrent calls, refreshed single-flight across tasks and threads.

    ``provider`` is called (sync or async) whenever a token is needed; ``refresh_ahead`` is how
    many seconds before expiry to renew it in the background (default: the value from
    :meth:`configure`, else 300). ``sleep`` / ``async_sleep`` wait between provider attempts and
    ``clock`` tells the time in unix seconds; all three are replaceable for tests.
    """

    __slots__ = (
        "_async_provider",
        "_async_sleep",
        "_backoff",
        "_clock",
        "_configured_ahead",
        "_explicit_ahead",
        "_inflight",
        "_inflight_loop",
        "_lock",
        "_provider",
        "_provider_attempts",
        "_provider_calls",
        "_sleep",
        "_state",
        "_stored_at",
        "_tasks",
        "_token",
    )

    def __init__(
        self,
        provider: Provider,
        *,
        refresh_ahead: float | None = None,
        clock: Callable[[], float] = time.time,
        provider_attempts: int = 3,
        provider_backoff: Backoff = DEFAULT_PROVIDER_BACKOFF,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if refresh_ahead is not None and not refresh_ahead >= 0:
            raise ValueError(f"refresh_ahead must be >= 0 seconds, not {refresh_ahead!r}")
        if provider_attempts < 1:
            raise ValueError(f"provider_attempts must be >= 1, not {provider_attempts!r}")
        self._provider = provider
        self._async_provider = _is_async_callable(provider)
        self._explicit_ahead = refresh_ahead
        self._configured_ahead: float | None = None
        self._clock = clock
        self._provider_attempts = provider_attempts
        self._backoff = provider_backoff
        self._sleep: Callable[[float], None] = sleep if sleep is not None else time.sleep
        self._async_sleep: Callable[[float], Awaitable[None]] = (
            async_sleep if async_sleep is not None else asyncio.sleep
        )
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._stored_at = 0.0
        self._state: _State | None = None
        self._inflight: Future[_Outcome] | None = None
        self._inflight_loop: asyncio.AbstractEventLoop | None = None
        self._provider_calls = 0
        # Strong references to background refresh tasks: the loop keeps only weak ones.
        self._tasks: set[asyncio.Task[None]] = set()

    # -- configuration and introspection -------------------------------------------------------

    @property
    def refresh_ahead(self) -> float:
        """Seconds before expiry to renew: explicit value, else :meth:`configure`'s, else 300."""
        if self._explicit_ahead is not None:
            return self._explicit_ahead
        if self._configured_ahead is not None:
            return self._configured_ahead
        return DEFAULT_REFRESH_AHEAD

    def configure(self, settings: TokenSettings) -> None:
        """Adopt ``settings.refresh_ahead`` unless ``refresh_ahead`` was given explicitly."""
        if self._explicit_ahead is not None:
            return
        with self._lock:
            self._configured_ahead = settings.refresh_ahead
            if self._token is not None:
                self._state = self._make_state(self._token, self._stored_at)

    @property
    def provider_calls(self) -> int:
        """How many times the provider has been invoked."""
        return self._provider_calls

    def peek_token(self) -> Token | None:
        """The held token, fresh or not (for tests and diagnostics)."""
        return self._token

    def __repr__(self) -> str:
        held = self._token
        return (
            f"TokenManager(token={held!r}, refresh_ahead={self.refresh_ahead!r}, "
            f"refreshing={self._inflight is not None}, provider_calls={self._provider_calls})"
        )

    # -- the hot path --------------------------------------------------------------------------

    def current(self) -> str | None:
        """The held token value if it has not expired, else ``None``. Never blocks.

        Within ``refresh_ahead`` of expiry it still returns the held value and starts one
        background refresh.
        """
        state = self._state
        if state is not None and self._clock() < state[1]:
            return state[0]
        return self._current_slow(state)

    def _current_slow(self, state: _State | None) -> str | None:
        if state is None:
            return None
        if self._clock() >= state[2]:
            return None
        if self._inflight is None:
            self._start_background(state)
        return state[0]

    def _start_background(self, state: _State) -> None:
        loop = _running_loop()
        with self._lock:
            if self._inflight is not None or self._state is not state:
                return
            future = self._new_flight(loop)
        try:
            if loop is not None:
                task = loop.create_task(self._lead_async(future))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                threading.Thread(
                    target=self._lead_sync,
                    args=(future,),
                    name="asr-resilience-token-refresh",
                    daemon=True,
                ).start()
        except Exception as exc:  # e.g. no thread could be started: keep serving the held token
            self._finish(future, _provider_error(exc))

    # -- blocking access -----------------------------------------------------------------------

    def get_sync(self) -> str:
        """The held token, or a fresh one from the provider (single-flight). Blocks.

        Raises :class:`TokenRefreshError` when the provider keeps failing, and
        :class:`RuntimeError` when it would have to run an async provider, or wait for a refresh
        running on its own event loop, from a thread that runs an event loop.
        """
        value = self.current()
        if value is not None:
            return value
        joined = self._join(None, _running_loop())
        if isinstance(joined, str):
            return joined
        future, lead = joined
        if lead:
            self._lead_sync(future)
        return self._unwrap(future.result())

    async def get(self) -> str:
        """The held token, or a fresh one from the provider (single-flight)."""
        value = self.current()
        if value is not None:
            return value
        loop = asyncio.get_running_loop()
        joined = self._join(loop, None)
        if isinstance(joined, str):
            return joined
        future, lead = joined
        if lead:
            task = loop.create_task(self._lead_async(future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        outcome = future.result() if future.done() else await asyncio.wrap_future(future)
        return self._unwrap(outcome)

    def invalidate(self, value: str) -> bool:
        """Drop the held token if its value is ``value``; ``True`` if it was dropped.

        Compare-and-invalidate: a caller holding a stale value cannot drop the fresh token
        another caller already fetched. Never calls the provider.
        """
        with self._lock:
            token = self._token
            if token is None or token.value != value:
                return False
            self._token = None
            self._state = None
            return True

    # -- single flight -------------------------------------------------------------------------

    def _new_flight(self, loop: asyncio.AbstractEventLoop | None) -> Future[_Outcome]:
        # Called with the lock held. A running future cannot be cancelled, so a waiter that is
        # cancelled (asyncio.wrap_future propagates cancellation) cannot cancel it for the rest.
        future: Future[_Outcome] = Future()
        future.set_running_or_notify_cancel()
        self._inflight = future
        self._inflight_loop = loop
        return future

    def _join(
        self,
        loop: asyncio.AbstractEventLoop | None,
        blocking_loop: asyncio.AbstractEventLoop | None,
    ) -> str | tuple[Future[_Outcome], bool]:
        """A fresh value, or the refresh to wait for and whether this caller leads it.

        ``loop`` is the loop a leader would run on (``None``: the calling thread);
        ``blocking_loop`` the loop a sync caller would block.
        """
        stale: Future[_Outcome] | None = None
        with self._lock:
            state = self._state
            if state is not None and self._clock() < state[2]:
                return state[0]
            future = self._inflight
            if future is not None:
                owner = self._inflight_loop
                if owner is None or not owner.is_closed():
                    if blocking_loop is not None and owner is blocking_loop:
                        raise RuntimeError(
                            "get_sync() would deadlock: the token refresh runs on the event "
                            "loop this thread runs; use 'await get()'"
                        )
                    return future, False
                stale = future  # its loop was closed before the refresh finished
            if blocking_loop is not None and self._async_provider:
                raise RuntimeError(
                    "get_sync() cannot run an async token provider in a thread that runs an "
                    "event loop; use 'await get()'"
                )
            future = self._new_flight(loop)
        if stale is not None:
            self._resolve(
                stale,
                _refresh_error("the event loop refreshing the token was closed", hint=_LOOP_HINT),
            )
        return future, True

    def _finish(self, future: Future[_Outcome], outcome: _Outcome) -> None:
        now = self._clock()
        with self._lock:
            if isinstance(outcome, Token):
                self._token = outcome
                self._stored_at = now
                self._state = self._make_state(outcome, now)
            elif self._state is not None and self._inflight is future:
                # A background refresh failed while the held token is still valid: wait a little
                # before the next proactive attempt instead of retrying on every call.
                value, _, expires_at = self._state
                self._state = (value, min(now + PROACTIVE_RETRY_PAUSE, expires_at), expires_at)
            if self._inflight is future:
                self._inflight = None
                self._inflight_loop = None
        # Only safe facts are logged: a fingerprint, never the value or the provider's text.
        if isinstance(outcome, Token):
            register_secret(outcome.value)
            emit(
                "token_refreshed",
                token_fingerprint=fingerprint(outcome.value),
                expires_at=outcome.expires_at,
                provider_calls=self._provider_calls,
            )
        else:
            cause = outcome.__cause__
            emit(
                "token_refresh_failed",
                level="warning",
                error=type(cause).__name__ if cause is not None else "TokenRefreshError",
                provider_calls=self._provider_calls,
            )
        self._resolve(future, outcome)

    @staticmethod
    def _resolve(future: Future[_Outcome], outcome: _Outcome) -> None:
        with contextlib.suppress(InvalidStateError):  # already resolved as stale
            future.set_result(outcome)

    def _make_state(self, token: Token, now: float) -> _State:
        if token.expires_at is None:
            return (token.value, math.inf, math.inf)
        expires_at = float(token.expires_at)
        # Renew refresh_ahead before expiry, but never before half the lifetime has passed:
        # a token that lives less than refresh_ahead would otherwise be renewed on every call.
        refresh_at = max(expires_at - self.refresh_ahead, now + (expires_at - now) / 2)
        return (token.value, refresh_at, expires_at)

    @staticmethod
    def _unwrap(outcome: _Outcome) -> str:
        if isinstance(outcome, Token):
            return outcome.value
        _raise_copy(outcome)

    # -- leaders -------------------------------------------------------------------------------

    def _lead_sync(self, future: Future[_Outcome]) -> None:
        """Run the refresh in this thread and resolve ``future``; never leaves it pending."""
        try:
            token = self._obtain_sync()
        except TokenRefreshError as exc:
            self._finish(future, exc)
        except BaseException as exc:
            self._finish(future, _provider_error(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(future, token)

    async def _lead_async(self, future: Future[_Outcome]) -> None:
        """Run the refresh in this task and resolve ``future``; never leaves it pending."""
        try:
            token = await self._obtain_async()
        except TokenRefreshError as exc:
            self._finish(future, exc)
        except asyncio.CancelledError:
            self._finish(future, _refresh_error("the token refresh was cancelled", hint=_LOOP_HINT))
            raise
        except BaseException as exc:
            self._finish(future, _provider_error(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(future, token)

    def _obtain_sync(self) -> Token:
        last: Exception | None = None
        previous: float | None = None
        for attempt in range(self._provider_attempts):
            if attempt:
                previous = delay(self._backoff, attempt - 1, previous)
                self._sleep(previous)
            self._provider_calls += 1
            try:
                result: object = self._provider()
                if inspect.isawaitable(result):
                    result = self._run_awaitable(result)
                return self._accept(result)
            except Exception as exc:
                last = exc
        raise _provider_error(last)

    async def _obtain_async(self) -> Token:
        last: Exception | None = None
        previous: float | None = None
        for attempt in range(self._provider_attempts):
            if attempt:
                previous = delay(self._backoff, attempt - 1, previous)
                await self._async_sleep(previous)
            self._provider_calls += 1
            try:
                result: object
                if self._async_provider:
                    result = self._provider()
                else:
                    result = await asyncio.to_thread(self._provider)
                if inspect.isawaitable(result):
                    result = await result
                return self._accept(result)
            except Exception as exc:
                last = exc
        raise _provider_error(last)

    @staticmethod
    def _run_awaitable(awaitable: Awaitable[object]) -> object:
        if _running_loop() is not None:
            close = getattr(awaitable, "close", None)
            if callable(close):
                close()  # avoid a "coroutine was never awaited" warning
            raise RuntimeError(
                "an async token provider cannot run in a thread that runs an event loop"
            )
        return asyncio.run(_await(awaitable))

    def _accept(self, result: object) -> Token:
        if isinstance(result, Token):
            token = result
        elif isinstance(result, str):
            token = Token(result)
        else:
            raise TypeError(
                f"the token provider returned {type(result).__name__}, not a Token or str"
            )
        if not isinstance(token.value, str) or not token.value:
            raise ValueError("the token provider returned an empty token")
        if token.expires_at is not None and token.expires_at <= self._clock():
            raise ValueError("the token provider returned a token that has already expired")
        return token

"""The token manager: one shared NLS token, refreshed once for any number of concurrent callers.

Design
------
* **Hot path.** :meth:`TokenManager.current` reads one attribute (a tuple of the value, the time
  to start a proactive refresh, and the expiry, all computed when the token was stored), calls the
  clock once and compares. No lock, no allocation.
* **Single flight.** A :class:`threading.Lock` guards the state; a refresh in progress is a
  :class:`concurrent.futures.Future` (in a ``_Flight``). The first caller that needs a token
  creates it and starts the refresh; every caller — asyncio tasks on any event loop, or plain
  threads — then waits on that future, bounded by its own ``timeout``: ``future.result(timeout)``
  in threads, ``asyncio.wait_for(asyncio.wrap_future(future), timeout)`` in asyncio. A caller that
  gives up (:class:`TimeoutError`) or is cancelled leaves the refresh running for the others, and
  its result is kept: the future is marked *running* when it is created, so nobody can cancel it.
* **One refresh, two drivers.** What a refresh does is written once, as a generator
  (``_refresh``) that yields effects — call the provider, sleep, run a store step — and receives
  their results: ask the store (:mod:`.store`) for a shared token, wait for another worker, call
  the provider with its small retry policy, publish the token. ``_drive_sync`` performs the
  effects in a worker thread (an async provider runs in a fresh event loop there, via
  :func:`asyncio.run`); ``_drive_async`` performs them in a task on the caller's loop (an async
  provider is awaited there, a sync one and a blocking store's steps run via
  :func:`asyncio.to_thread`). Only how they wait differs. A refresh started from
  :meth:`TokenManager.get_sync` runs in a worker thread, so a provider that hangs holds no caller
  past its timeout; one started from :meth:`TokenManager.get` is a task, which the leader does
  not await directly, so cancelling the leader does not stop it. If the task itself is cancelled
  (its loop shuts down), every waiter gets :class:`~asr_resilience._errors.TokenRefreshError`.
* **Proactive refresh.** Within ``refresh_ahead`` seconds of expiry, ``current()`` still returns
  the held token and starts one refresh in the background: a task when called inside a running
  loop, otherwise a daemon thread. A token whose whole lifetime is shorter than
  ``refresh_ahead`` is renewed at half its lifetime instead, and after a failed background
  refresh the next one waits ``PROACTIVE_RETRY_PAUSE`` seconds (never past the expiry), so a
  failing provider is not called on every request.
* **Failures do not amplify.** A provider call that raises, returns an empty value, something
  that is not a :class:`Token` or str, or an already expired token is a failed attempt of one
  engine call (:mod:`._fetch`: the same attempts, decisions, waits and events as any call), retried
  with ``provider_backoff`` up to ``provider_attempts`` calls in all — fewer when the error says a
  retry cannot help (``retryable`` is false), when it names its own wait (``retry_after``, as
  :class:`~asr_resilience.tokens.TokenProviderError` does for throttling), or when the next
  attempt would start after every waiting caller's timeout. Then every waiter gets its own
  :class:`TokenRefreshError` with the provider's last exception as ``__cause__``, and a
  *cool-down* begins: for ``max(failure_cooldown, retry_after)`` seconds callers that have no
  valid token get that failure at once, without calling the provider. So concurrent failing
  callers cost at most ``provider_attempts`` provider calls per cool-down, not that many each.
  Events (``token_refreshed``, ``token_refresh_failed``) carry a fingerprint and the exception's
  type only: the provider's text may hold secrets.
* **Lifecycle.** :meth:`TokenManager.close` (or ``aclose``, or leaving ``with`` / ``async
  with``) cancels a refresh task, settles its waiters with :class:`TokenRefreshError`, drops the
  held token and makes every later ``current``/``get``/``get_sync`` raise ``RuntimeError``. A
  provider call already running in a worker thread cannot be interrupted: it finishes on its own
  and its token is discarded.
* **Waits.** Every sleep (provider backoff, polling a shared store) goes through the
  :class:`~asr_resilience._clock.Clock`, so ``asr_resilience.testing.no_wait()`` removes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import inspect
import math
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn, TypeAlias

from .._clock import Clock
from .._errors import ResilienceError, TokenRefreshError
from .._secrets import raise_scrubbed
from ..observe import emit, register_secret
from ..policy._model import Backoff, TokenSettings
from ..retry._attempt import Attempt
from ..retry._call import CallState
from ..retry._engine import run_async, run_sync
from ._fetch import as_failure, provider_cause, provider_settings, retry_after
from ._store import Claim, LocalTokenStore, TokenStore
from ._token import Provider, Token, expiry_problem, fingerprint

__all__ = [
    "DEFAULT_FAILURE_COOLDOWN",
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
DEFAULT_FAILURE_COOLDOWN = 1.0
"""Seconds after a failed refresh during which callers get that failure without a provider call."""

_ACTION = "refresh-token"
_HINT = "check the AccessKey pair and the meta endpoint"
_LOOP_HINT = "the event loop that ran the refresh shut down; the next call tries again"
_CLOSED = "the TokenManager was closed"
_FETCH_THREAD = "asr-resilience-token-fetch"  # a refresh that get_sync() callers wait for
_REFRESH_THREAD = "asr-resilience-token-refresh"  # a proactive refresh nobody waits for
_POLL_MIN = 0.01  # first pause while another worker refreshes a shared token
_POLL_MAX = 0.2

_Outcome: TypeAlias = "Token | TokenRefreshError"
# (value, refresh_at, expires_at); float("inf") for a token that never expires.
_State: TypeAlias = "tuple[str, float, float]"


def _refresh_error(message: str, hint: str = _HINT) -> TokenRefreshError:
    return TokenRefreshError(message, code=None, action=_ACTION, hint=hint)


class UnusableTokenError(ValueError):
    """The provider answered, but with a token that cannot be used: asking again will not help.

    Not retried (``retryable``): the refresh fails at once and its cool-down keeps callers from
    asking the provider again on every use.
    """

    retryable = False


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
    # The provider's exception may quote a secret (its text, its arguments): scrubbed.
    raise_scrubbed(error, outcome.__cause__)


def _timeout_error(timeout: float | None) -> TimeoutError:
    return TimeoutError(f"no token within {timeout} s (the refresh goes on for other callers)")


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


# -- what a refresh asks its driver to do ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    """Call the provider under its small policy: one engine call (``._fetch``) of ``state``;
    the reply is the token."""

    state: CallState


@dataclass(frozen=True, slots=True)
class _Sleep:
    """Wait ``seconds`` through the clock."""

    seconds: float


@dataclass(frozen=True, slots=True)
class _Step:
    """Run a store step (I/O when the store is blocking); the reply is what it returned."""

    fn: Callable[..., object]
    args: tuple[object, ...]


_Effect: TypeAlias = "_Call | _Sleep | _Step"
_Refresh: TypeAlias = "Generator[_Effect, object, Token]"


class _Script:
    """Steps a refresh generator: the next effect, fed the last effect's reply or exception."""

    __slots__ = ("_error", "_gen", "_reply")

    def __init__(self, gen: _Refresh) -> None:
        self._gen = gen
        self._reply: object = None
        self._error: Exception | None = None

    def next(self) -> _Effect | Token:
        """The next effect to perform, or the token the refresh ended with."""
        error, self._error = self._error, None
        reply, self._reply = self._reply, None
        try:
            return self._gen.throw(error) if error is not None else self._gen.send(reply)
        except StopIteration as stop:
            token: Token = stop.value
            return token

    def reply(self, value: object) -> None:
        self._reply = value

    def fail(self, exc: Exception) -> None:
        self._error = exc


class _Flight:
    """One refresh in progress: the future its waiters share, and what its driver needs."""

    __slots__ = ("call", "deadline", "future", "holds_lock", "loop", "owner")

    def __init__(self, loop: asyncio.AbstractEventLoop | None, deadline: float) -> None:
        # A running future cannot be cancelled, so a waiter that is cancelled (asyncio.wrap_future
        # propagates cancellation) cannot cancel it for the rest.
        self.future: Future[_Outcome] = Future()
        self.future.set_running_or_notify_cancel()
        self.loop = loop  # the loop whose task runs the refresh; None: a worker thread
        self.deadline = deadline  # monotonic; the latest timeout of the callers waiting on it
        self.owner = uuid.uuid4().hex  # who holds the store's lock, if this refresh takes it
        self.holds_lock = False
        self.call: CallState | None = None  # the provider's engine call, once it started

    def extend(self, deadline: float) -> None:
        """A waiter with ``deadline`` joined: the refresh may go on until the latest one."""
        if deadline > self.deadline:
            self.deadline = deadline
            call = self.call
            if call is not None:
                call.deadline_at = deadline


class TokenManager:
    """One shared token for many concurrent calls, refreshed single-flight across tasks and threads.

    ``provider`` is called (sync or async) whenever a token is needed. ``store`` is where the
    token is shared beyond this manager (default: :class:`~.store.LocalTokenStore`, nowhere; see
    :class:`asr_resilience.fleet.RedisTokenCache` for a fleet). ``refresh_ahead`` is how many
    seconds before expiry to renew it in the background (default: the value from
    :meth:`configure`, else 300). ``provider_attempts`` and ``provider_backoff`` are the
    provider's retry policy, ``failure_cooldown`` how long a failure is handed out before the
    provider is asked again. ``clock`` tells the time in unix seconds — a callable, or a
    :class:`~asr_resilience._clock.Clock` (whose ``wall`` is used) — and ``sleep`` /
    ``async_sleep`` replace the clock's waits; all are replaceable for tests.
    """

    __slots__ = (
        "_async_provider",
        "_clock",
        "_closed",
        "_configured_ahead",
        "_cooldown_until",
        "_explicit_ahead",
        "_failure",
        "_failure_cooldown",
        "_fetched",
        "_inflight",
        "_lock",
        "_provider",
        "_provider_calls",
        "_provider_settings",
        "_state",
        "_store",
        "_stored_at",
        "_tasks",
        "_time",
        "_token",
    )

    def __init__(
        self,
        provider: Provider,
        *,
        store: TokenStore | None = None,
        refresh_ahead: float | None = None,
        clock: Callable[[], float] | Clock = time.time,
        provider_attempts: int = 3,
        provider_backoff: Backoff = DEFAULT_PROVIDER_BACKOFF,
        failure_cooldown: float = DEFAULT_FAILURE_COOLDOWN,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if refresh_ahead is not None and not refresh_ahead >= 0:
            raise ValueError(f"refresh_ahead must be >= 0 seconds, not {refresh_ahead!r}")
        if provider_attempts < 1:
            raise ValueError(f"provider_attempts must be >= 1, not {provider_attempts!r}")
        if not failure_cooldown >= 0:
            raise ValueError(f"failure_cooldown must be >= 0 seconds, not {failure_cooldown!r}")
        self._provider = provider
        self._async_provider = _is_async_callable(provider)
        self._store: TokenStore = store if store is not None else LocalTokenStore()
        self._explicit_ahead = refresh_ahead
        self._configured_ahead: float | None = None
        base = clock if isinstance(clock, Clock) else Clock(wall=clock)
        self._time = dataclasses.replace(
            base, sleep=sleep or base.sleep, async_sleep=async_sleep or base.async_sleep
        )
        self._clock = self._time.wall  # unix seconds; the hot path reads it
        self._provider_settings = provider_settings(provider_attempts, provider_backoff, self._time)
        self._failure_cooldown = failure_cooldown
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._fetched = False  # a token has been obtained (later ones are refreshes)
        self._stored_at = 0.0
        self._state: _State | None = None
        self._inflight: _Flight | None = None
        self._failure: TokenRefreshError | None = None
        self._cooldown_until = -math.inf
        self._provider_calls = 0
        # Strong references to refresh tasks: the loop keeps only weak ones.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: the manager hands out no more tokens."""
        return self._closed

    def close(self) -> None:
        """Stop: cancel a refresh running as a task, settle its waiters, drop the held token.

        Later :meth:`current`, :meth:`get` and :meth:`get_sync` raise ``RuntimeError``. A
        provider call running in a worker thread finishes on its own; its token is discarded.
        The store is the caller's and stays open. Calling it again does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            flight, self._inflight = self._inflight, None
            self._state = None
            self._token = None
            tasks = tuple(self._tasks)
        running = _running_loop()
        for task in tasks:
            loop = task.get_loop()
            if loop is running:
                task.cancel()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        if flight is not None:
            self._resolve(flight, _refresh_error(_CLOSED, hint="use an open TokenManager"))
        emit("token_manager_closed", level="debug", provider_calls=self._provider_calls)

    async def aclose(self) -> None:
        """:meth:`close`, then wait for the refresh tasks of this event loop to end."""
        tasks = tuple(self._tasks)
        self.close()
        running = asyncio.get_running_loop()
        mine = [task for task in tasks if task.get_loop() is running]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)

    def __enter__(self) -> TokenManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> TokenManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this TokenManager is closed: it hands out no more tokens (create a new one)"
            )

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
    def store(self) -> TokenStore:
        """Where the token is shared beyond this manager."""
        return self._store

    @property
    def provider_calls(self) -> int:
        """How many times the provider has been invoked."""
        return self._provider_calls

    def peek_token(self) -> Token | None:
        """The held token, fresh or not (for tests and diagnostics)."""
        return self._token

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token={self._token!r}, store={self._store!r}, "
            f"refresh_ahead={self.refresh_ahead!r}, refreshing={self._inflight is not None}, "
            f"provider_calls={self._provider_calls})"
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
            self._check_open()  # a closed manager holds no state: only here is it checked
            return None
        if self._clock() >= state[2]:
            return None
        if self._inflight is None:
            self._start_background(state)
        return state[0]

    def _start_background(self, state: _State) -> None:
        loop = _running_loop()
        with self._lock:
            if self._inflight is not None or self._state is not state or self._closed:
                return
            if self._clock() < self._cooldown_until:
                return
            flight = self._inflight = _Flight(loop, math.inf)
        self._start(flight, _REFRESH_THREAD)

    # -- waiting for a token -------------------------------------------------------------------

    def get_sync(self, timeout: float | None = None) -> str:
        """The held token, or a fresh one from the provider (single-flight). Blocks.

        Raises :class:`TimeoutError` when ``timeout`` seconds pass first (the refresh goes on),
        :class:`TokenRefreshError` when the provider keeps failing or is cooling down after a
        failure, and :class:`RuntimeError` when it would have to run an async provider, or wait
        for a refresh running on its own event loop, from a thread that runs an event loop.
        """
        value = self.current()
        if value is not None:
            return value
        joined = self._join(timeout, None, _running_loop())
        if isinstance(joined, str):
            return joined
        try:
            outcome = joined.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise _timeout_error(timeout) from None
        return self._unwrap(outcome)

    async def get(self, timeout: float | None = None) -> str:
        """The held token, or a fresh one from the provider (single-flight).

        Raises :class:`TimeoutError` when ``timeout`` seconds pass first (the refresh goes on),
        and :class:`TokenRefreshError` when the provider keeps failing or is cooling down.
        """
        value = self.current()
        if value is not None:
            return value
        joined = self._join(timeout, asyncio.get_running_loop(), None)
        if isinstance(joined, str):
            return joined
        future = joined.future
        if not future.done():
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except asyncio.TimeoutError:  # the builtin TimeoutError on Python >= 3.11
                raise _timeout_error(timeout) from None
        return self._unwrap(future.result())

    def invalidate(self, value: str) -> bool:
        """Drop the held token if its value is ``value``; ``True`` if it was dropped.

        Compare-and-invalidate: a caller holding a stale value cannot drop the fresh token
        another caller already fetched. The store drops its shared copy (only if it still is
        ``value``) on the next refresh. Never calls the provider, never does I/O.
        """
        with self._lock:
            token = self._token
            dropped = token is not None and token.value == value
            if dropped:
                self._token = None
                self._state = None
        self._store.reject(value)
        return dropped

    # -- single flight -------------------------------------------------------------------------

    def _join(
        self,
        timeout: float | None,
        loop: asyncio.AbstractEventLoop | None,
        blocking_loop: asyncio.AbstractEventLoop | None,
    ) -> str | _Flight:
        """A fresh value, or the refresh to wait for (started here if there was none).

        ``loop`` is the loop a new refresh would run on (``None``: a worker thread);
        ``blocking_loop`` the loop a sync caller would block.
        """
        deadline = math.inf if timeout is None else self._time.monotonic() + timeout
        stale: _Flight | None = None
        with self._lock:
            self._check_open()
            state = self._state
            now = self._clock()
            if state is not None and now < state[2]:
                return state[0]
            flight = self._inflight
            if flight is not None:
                owner = flight.loop
                if owner is None or not owner.is_closed():
                    if blocking_loop is not None and owner is blocking_loop:
                        raise RuntimeError(
                            "get_sync() would deadlock: the token refresh runs on the event "
                            "loop this thread runs; use 'await get()'"
                        )
                    flight.extend(deadline)
                    return flight
                stale = flight  # its loop was closed before the refresh finished
            if self._failure is not None and now < self._cooldown_until:
                _raise_copy(self._failure)  # cooling down: no provider call
            if blocking_loop is not None and self._async_provider:
                raise RuntimeError(
                    "get_sync() cannot run an async token provider in a thread that runs an "
                    "event loop; use 'await get()'"
                )
            flight = self._inflight = _Flight(loop, deadline)
        if stale is not None:
            self._resolve(
                stale,
                _refresh_error("the event loop refreshing the token was closed", hint=_LOOP_HINT),
            )
        self._start(flight, _FETCH_THREAD)
        return flight

    def _start(self, flight: _Flight, thread_name: str) -> None:
        """Run the refresh: a task on ``flight.loop``, else a daemon worker thread."""
        try:
            if flight.loop is not None:
                task = flight.loop.create_task(self._lead_async(flight))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                context = contextvars.copy_context()  # as asyncio.to_thread does
                threading.Thread(
                    target=context.run,
                    args=(self._lead_sync, flight),
                    name=thread_name,
                    daemon=True,
                ).start()
        except Exception as exc:  # e.g. no thread could be started: fail this flight only
            self._finish(flight, _provider_error(exc))

    def _fail(self, flight: _Flight, exc: BaseException) -> None:
        if flight.holds_lock:
            flight.holds_lock = False
            self._store.release(flight.owner)
        if isinstance(exc, TokenRefreshError):
            self._finish(flight, exc)
        elif isinstance(exc, asyncio.CancelledError):
            self._finish(flight, _refresh_error("the token refresh was cancelled", _LOOP_HINT))
        else:
            self._finish(flight, _provider_error(exc))

    def _finish(self, flight: _Flight, outcome: _Outcome) -> None:
        now = self._clock()
        with self._lock:
            closed = self._closed
            current = self._inflight is flight
            initial = not self._fetched  # the first token: a fetch, not a refresh
            if closed:
                pass  # closed while it ran: its waiters were settled, its token is not kept
            elif isinstance(outcome, Token):
                self._token = outcome
                self._fetched = True
                self._stored_at = now
                self._state = self._make_state(outcome, now)
                self._failure = None
            else:
                if outcome.__cause__ is not None:  # the provider (not a loop) failed: cool down
                    pause = max(self._failure_cooldown, retry_after(outcome.__cause__) or 0.0)
                    self._failure = outcome
                    self._cooldown_until = now + pause
                if self._state is not None and current:
                    # A background refresh failed while the held token is still valid: wait a
                    # little before the next proactive attempt instead of retrying on every call.
                    value, _, expires_at = self._state
                    retry_at = max(now + PROACTIVE_RETRY_PAUSE, self._cooldown_until)
                    self._state = (value, min(retry_at, expires_at), expires_at)
            if current:
                self._inflight = None
        if closed:
            self._resolve(flight, _refresh_error(_CLOSED, hint="use an open TokenManager"))
            return
        # Only safe facts are logged: a fingerprint, never the value or the provider's text.
        if isinstance(outcome, Token):
            register_secret(outcome.value)
            emit(
                "token_refreshed",
                token_fingerprint=fingerprint(outcome.value),
                expires_at=outcome.expires_at,
                provider_calls=self._provider_calls,
                initial=initial or None,
            )
        else:
            cause = outcome.__cause__
            emit(
                "token_refresh_failed",
                level="warning",
                error=type(cause).__name__ if cause is not None else "TokenRefreshError",
                provider_calls=self._provider_calls,
                retry_after=retry_after(cause),
            )
        self._resolve(flight, outcome)

    @staticmethod
    def _resolve(flight: _Flight, outcome: _Outcome) -> None:
        with contextlib.suppress(InvalidStateError):  # already resolved as stale
            flight.future.set_result(outcome)

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

    # -- the refresh, written once ---------------------------------------------------------------

    def _refresh(self, flight: _Flight) -> _Refresh:
        """Ask the store, else call the provider (and share its token); the effects to perform."""
        claim = yield from self._claim(flight)
        if isinstance(claim, Token):
            return claim
        flight.holds_lock = claim is Claim.LEAD
        token = yield from self._fetch(flight)
        if flight.holds_lock:
            yield _Step(self._store.publish, (flight.owner, token, self._clock()))
            flight.holds_lock = False
        return token

    def _claim(self, flight: _Flight) -> Generator[_Effect, object, Token | Claim]:
        """The store's token or decision; while another worker refreshes, poll (bounded)."""
        store = self._store
        deadline = self._time.monotonic() + store.wait_timeout
        waited = 0.0
        pause = _POLL_MIN
        while True:
            claim = yield _Step(store.claim, (flight.owner, self._clock(), self.refresh_ahead))
            if not isinstance(claim, (Token, Claim)):
                raise TypeError(f"the token store's claim returned {type(claim).__name__}")
            if claim is not Claim.BUSY:
                return claim
            # Counting the pauses as well as the clock keeps the wait bounded under no_wait().
            if waited >= store.wait_timeout or self._time.monotonic() >= deadline:
                store.wait_expired(waited)
                return Claim.LOCAL
            # Jittered, so the fleet's waiters do not poll the store in lockstep.
            step = min(random.uniform(pause / 2, pause), store.wait_timeout - waited)
            waited += step
            yield _Sleep(step)
            pause = min(_POLL_MAX, pause * 2)

    def _fetch(self, flight: _Flight) -> _Refresh:
        """Call the provider under its small policy: one engine call (see ``._fetch``)."""
        start = self._time.monotonic()
        call = CallState(self._provider_settings, start, flight.deadline - start)
        flight.call = call  # a waiter that joins later extends its deadline
        token = yield _Call(call)
        assert isinstance(token, Token)
        return token

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
        problem = expiry_problem(token.expires_at, self._clock())
        if problem is not None:
            raise UnusableTokenError(f"the token provider returned a token that {problem}"[:200])
        return token

    # -- drivers: only how the effects are performed and waited for differs --------------------

    def _lead_sync(self, flight: _Flight) -> None:
        """Run the refresh in this worker thread and settle ``flight``; never leaves it pending."""
        try:
            token = self._drive_sync(_Script(self._refresh(flight)))
        except BaseException as exc:  # nobody to re-raise to in a worker: the waiters get it
            self._fail(flight, exc)
        else:
            self._finish(flight, token)

    async def _lead_async(self, flight: _Flight) -> None:
        """Run the refresh in this task and settle ``flight``; never leaves it pending."""
        try:
            token = await self._drive_async(_Script(self._refresh(flight)))
        except BaseException as exc:
            self._fail(flight, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(flight, token)

    def _drive_sync(self, script: _Script) -> Token:
        while not isinstance(effect := script.next(), Token):
            try:
                script.reply(self._perform_sync(effect))
            except Exception as exc:
                script.fail(exc)
        return effect

    async def _drive_async(self, script: _Script) -> Token:
        while not isinstance(effect := script.next(), Token):
            try:
                script.reply(await self._perform_async(effect))
            except Exception as exc:
                script.fail(exc)
        return effect

    def _perform_sync(self, effect: _Effect) -> object:
        if isinstance(effect, _Sleep):
            self._time.wait(effect.seconds)
            return None
        if isinstance(effect, _Step):
            return effect.fn(*effect.args)
        try:
            return run_sync(effect.state, self._provider_sync, observe=False)
        except ResilienceError:
            pass  # the engine gave up: the waiters get the provider's own failure
        raise _provider_error(provider_cause(effect.state))

    async def _perform_async(self, effect: _Effect) -> object:
        if isinstance(effect, _Sleep):
            await self._time.async_wait(effect.seconds)
            return None
        if isinstance(effect, _Step):
            if self._store.blocking:  # never wait on a socket in the event loop's thread
                return await asyncio.to_thread(effect.fn, *effect.args)
            return effect.fn(*effect.args)
        try:
            return await run_async(effect.state, self._provider_async, observe=False, watch=False)
        except ResilienceError:
            pass
        raise _provider_error(provider_cause(effect.state))

    # -- one provider call: an attempt of the engine call, sync and async ----------------------

    def _provider_sync(self, attempt: Attempt) -> Token:
        self._provider_calls += 1
        with as_failure():
            result: object = self._provider()
            # A worker thread runs no event loop: an async provider gets a fresh one.
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            return self._accept(result)

    async def _provider_async(self, attempt: Attempt) -> Token:
        self._provider_calls += 1
        with as_failure():
            if self._async_provider:
                result: object = self._provider()
            else:
                result = await asyncio.to_thread(self._provider)
            if inspect.isawaitable(result):
                result = await result
            return self._accept(result)

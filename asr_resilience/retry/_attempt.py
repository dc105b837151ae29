"""One attempt: admitted once, settled exactly once, bounded by the call's deadline.

Every attempt the library makes — a decorated function's, a block's, a client's, a stream
leg's, a resumed leg's — is an :class:`Attempt`. It is the only place where:

* the scope's resources are taken: the breaker's ticket (a half-open probe, or a plain pass),
  a concurrency permit (waited for within the time left), the token (fetched within the time
  left);
* they are given back, once, whatever ended the attempt — a return, any exception, a
  cancellation, the deadline — because the giving back is the ``__exit__`` of a context manager
  (or :meth:`Attempt.close` for an attempt that outlives the block, a stream leg);
* a failure is classified (once) and handed to :meth:`CallState.decide
  <asr_resilience.retry._call.CallState.decide>`, whose step the loop then carries out.

Inside a task, entering an attempt registers it with its loop's deadline watch
(:mod:`~asr_resilience.retry._watch`, one timer per loop): when the deadline passes the attempt
is cancelled and ends in ``TimeoutError``, so connect, handshake, token fetch, reads and
a whole REST exchange are bounded together, not per operation (a server that drips one byte at
a time cannot hold a call). Blocking code cannot be interrupted that way; it reads
:attr:`Attempt.remaining` (the clients hand it to every blocking wait), and so can a user's own
function (``@resilient`` passes the attempt to a function that takes an ``attempt`` keyword).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..limits._breaker import PROBE, REFUSED, probe_owner
from ._call import (
    PROPAGATE,
    AdmissionTimeout,
    CallState,
    CircuitOpen,
    DeadlineTimeout,
    QueueTimeout,
    Step,
    classify,
    is_server_class,
)
from ._watch import DeadlineWatch, watch_for

if TYPE_CHECKING:
    from tenacity import AttemptManager

    from .._failure import Failure
    from ..limits._limiter import Permit

__all__ = ["Attempt", "DeadlineTimeout"]

_PASSED = "the call's deadline passed during {}"

_NO_TICKET = -1  # the breaker has not been asked yet

_FIRED = 1  # the deadline timer cancelled the attempt
_HELD = 2  # the slot outlives the block (a stream leg)
_CLOSED = 4  # settled: the slot went back, the outcome was decided
_SCOPE_DONE = 8  # the breaker and budget have seen the outcome
_OBSERVED = 16  # someone is told the outcome when it settles (takes the slow exit)
_PROGRESSED = 32  # a held leg delivered a result: a later break is the link's, not an outage


class Attempt:
    """One attempt of a call: ``token`` is the token to use, ``remaining`` the time left.

    Use it as a context manager (``with attempt:``); the block form and every client do. In
    the block form (``for attempt in retrying(...)``) a failure the policy retries is swallowed
    at the end of the block and the loop goes on; one it gives up on is raised typed. An
    attempt whose resource must outlive the block (a stream leg holding its slot until it
    closes) calls :meth:`hold` inside the block and :meth:`close` when the leg ends.
    """

    # Only what every attempt needs is set in __init__ (this is the hot path of every call);
    # the rest (_failure, _phase, _timer, _watch) is set where it arises and read with a
    # default.
    __slots__ = (
        "_failure",
        "_flags",
        "_manager",
        "_observer",
        "_owner",
        "_permit",
        "_phase",
        "_task",
        "_ticket",
        "_timer",
        "_watch",
        "number",
        "state",
        "token",
    )
    _failure: Failure | None
    _owner: tuple[int, int]
    _phase: str
    _ticket: int
    _timer: int  # the deadline watch's ticket
    _watch: DeadlineWatch
    _observer: Callable[[Attempt, BaseException | None], None]

    def __init__(
        self,
        state: CallState,
        task: asyncio.Task[Any] | None = None,
        manager: AttemptManager | None = None,
    ) -> None:
        self.state = state
        self._task = task
        self._manager = manager  # the block form's: tenacity's record of this attempt
        self.number = len(state.history) + 1
        """1-based attempt number within the call (or the stream's fault episode)."""
        self.token: str = state.token or ""
        """The token this attempt uses ("" without a TokenManager)."""
        self._permit: Permit | None = None
        self._flags = 0
        self._ticket = _NO_TICKET
        if task is not None and manager is None:
            # The engine's attempt: watched from the start, its admission included (a block
            # form's is watched from ``__enter__``, once its admission is done). As _arm,
            # inline: this runs for every attempt in a task.
            self._watch = watch = watch_for(task.get_loop())
            self._timer = watch.add(self, watch.loop_time(state.deadline_at, state.monotonic))

    @property
    def failure(self) -> Failure | None:
        """The classified failure the attempt ended with (None: success, or not classified)."""
        return getattr(self, "_failure", None)

    @property
    def remaining(self) -> float:
        """Seconds left before the call's deadline (0 once it has passed)."""
        left = self.state.deadline_at - self.state.monotonic()
        return left if left > 0.0 else 0.0

    # -- admission -----------------------------------------------------------------------------

    def admit_now(self) -> bool:
        """Take the breaker's ticket, and the token if it needs no wait: True when admitted.

        False: a slot and/or the token must still be waited for (:meth:`admit_sync`, or
        ``await`` :meth:`admit`, finish the admission).
        """
        state = self.state
        scope = state.scope
        breaker = scope.breaker
        # A closed breaker grants a plain pass (``CircuitBreaker.ticket``'s first test, read
        # here: this runs for every attempt).
        if breaker is not None and not breaker._fast and self._ticket == _NO_TICKET:
            ticket = breaker.ticket()
            if ticket == REFUSED:
                raise CircuitOpen()
            self._ticket = ticket
            if ticket == PROBE:
                self._owner = probe_owner()  # the probe may come back from another task
        if scope.limiter is not None:
            return False
        tokens = state.settings.tokens
        if tokens is None:
            return True
        token = tokens.current()
        if token is None:
            return False
        self.token = state.token = token
        return True

    def admit_sync(self) -> None:
        """Admit: the breaker's ticket, a slot and the token, each within the time left."""
        if self.admit_now():
            return
        limiter, tokens = self.state.scope.limiter, self.state.settings.tokens
        if limiter is not None:
            self._took_slot(limiter.acquire_sync(timeout=self.remaining))
        if tokens is not None:
            with self._fetching():
                self._took_token(tokens.current() or tokens.get_sync(timeout=self.remaining))

    async def admit(self) -> None:
        """:meth:`admit_sync` for a task: the waits suspend instead of blocking."""
        if self.admit_now():
            return
        limiter, tokens = self.state.scope.limiter, self.state.settings.tokens
        if limiter is not None:
            self._phase = "the wait for a concurrency slot"
            self._took_slot(await limiter.acquire(timeout=self.remaining))
        if tokens is not None:
            with self._fetching():
                self._took_token(tokens.current() or await tokens.get(timeout=self.remaining))
        self._phase = "the attempt"

    def _took_slot(self, permit: Permit | None) -> None:
        if permit is None:
            raise QueueTimeout()
        self._permit = permit
        self._check_deadline("the wait for a concurrency slot")

    def _took_token(self, token: str) -> None:
        self.token = self.state.token = token

    @contextlib.contextmanager
    def _fetching(self) -> Iterator[None]:
        """Around a token fetch: its timeout is the call's deadline passing."""
        self._phase = "the token fetch"
        try:
            yield
        except TimeoutError:
            raise AdmissionTimeout(_PASSED.format("the token fetch")) from None
        self._check_deadline("the token fetch")

    def _check_deadline(self, phase: str) -> None:
        """A slot or token that came at (or after) the deadline is not used: no time is left."""
        state = self.state
        if state.monotonic() >= state.deadline_at:
            raise AdmissionTimeout(_PASSED.format(phase))

    # -- the block -----------------------------------------------------------------------------

    def __enter__(self) -> Attempt:
        manager = self._manager
        if manager is not None:
            manager.__enter__()
            if self._task is not None:
                self._arm(self._task)
        return self

    def _arm(self, task: asyncio.Task[Any]) -> None:
        """Watch the attempt: its task is cancelled when the call's deadline passes."""
        state = self.state
        self._watch = watch = watch_for(task.get_loop())
        self._timer = watch.add(self, watch.loop_time(state.deadline_at, state.monotonic))

    def expire(self) -> None:
        """The call's deadline passed: cancel the attempt's task (the watch calls this)."""
        self._flags |= _FIRED
        task = self._task
        if task is not None:
            task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None and self._manager is None:
            self.succeeded()
            return False
        return self._exit(exc_type, exc, tb)

    # The engine's exits. The drivers run an attempt as ``try: <admit, body> except
    # BaseException as exc: failed(exc) else: succeeded()`` — the same exits ``with attempt``
    # takes, without the protocol's two calls on the hot path of every call.

    def succeeded(self) -> None:
        """The block returned: settle the success (a held attempt keeps its slot)."""
        if self._flags == 0:
            # The common case, kept short: a plain success.
            task = self._task
            if task is not None:
                self._watch.remove(self, self._timer)
                if self._flags:  # the timer fired after the block's last suspension
                    self._exit(None, None, None)
                    return
            self._flags = _CLOSED | _SCOPE_DONE
            permit = self._permit
            if permit is not None:
                self._permit = None
                permit.release("success")
            state = self.state
            if not state.history:
                state.scope.on_success(state.monotonic())  # the call's one deposit, and a success
            elif state.scope.breaker is not None:
                state.scope.breaker.record_success(state.monotonic())
            return
        self._exit(None, None, None)

    def failed(self, exc: BaseException) -> BaseException:
        """The block raised ``exc``: settle the failure (classified and decided once).

        Returns what the call goes on with: ``exc``, or the :class:`DeadlineTimeout` (caused by
        ``exc``) when the deadline timer cancelled the block.
        """
        timeout = self._disarm(exc)
        if timeout is not None:
            self.close(timeout)
            timeout.__cause__ = exc
            return timeout
        self.close(exc)
        return exc

    def _exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        timeout = self._disarm(exc)
        if timeout is not None:
            self.close(timeout)
            if self._manager is None:
                raise timeout from exc
            timeout.__cause__ = exc
            exc_type, exc, tb = type(timeout), timeout, timeout.__traceback__
        elif exc is None and self._flags & _HELD:
            self._settle_scope(None)  # the leg started: the breaker and budget see a success
        else:
            self.close(exc)
        if self._manager is None:
            return False
        # The block form: tenacity records the outcome and swallows it; the loop then reads
        # the step this attempt decided (retry, raise typed, or propagate the original).
        return bool(self._manager.__exit__(exc_type, exc, tb))

    def _disarm(self, exc: BaseException | None) -> DeadlineTimeout | None:
        """Stop the deadline timer; the TimeoutError to raise when it cancelled the block."""
        task = self._task
        if task is None:
            return None
        timer: int | None = getattr(self, "_timer", None)
        if timer is None:
            return None
        self._watch.remove(self, timer)  # removing twice does nothing
        if not self._flags & _FIRED:
            return None
        # Python >= 3.11 counts cancellations, so another one can be told from ours. Before
        # 3.11 a Task may carry a backported uncancel() (pytest-asyncio's runner) whose count
        # nothing else keeps (anyio cancels without uncancelling there): it is not consulted.
        if sys.version_info >= (3, 11) and task.uncancel() > 0:
            return None  # someone else cancelled the task too: that cancellation goes on
        if isinstance(exc, asyncio.CancelledError):
            phase = getattr(self, "_phase", "the attempt")
            if phase != "the attempt":  # still being admitted: nothing reached the service
                return AdmissionTimeout(_PASSED.format(phase))
            return DeadlineTimeout(_PASSED.format(phase))
        return None

    def observe(self, observer: Callable[[Attempt, BaseException | None], None]) -> None:
        """Call ``observer(attempt, exception or None)`` once, when the attempt settles."""
        self._observer = observer
        self._flags |= _OBSERVED

    def started(self) -> None:
        """The service started the task: the limiter learns from the slot now (a 40000005 can
        no longer come), not when the attempt settles. Clients call it on the started event."""
        permit = self._permit
        if permit is not None:
            permit.started()

    def progressed(self) -> None:
        """A held leg delivered a result (a stream's sentence): the service works, so a break
        of this leg later tells the breaker nothing — a cut link is not an outage. The next
        leg's admission and start are judged as usual (a dead service fails there)."""
        self._flags |= _PROGRESSED

    def hold(self) -> Attempt:
        """Keep the slot past the block: released by :meth:`close` when what it guards ends."""
        self._flags |= _HELD
        return self

    # -- settling ------------------------------------------------------------------------------

    def close(
        self, exc: BaseException | None, state: CallState | None = None, *, decide: bool = True
    ) -> Step | None:
        """Settle the attempt with its outcome; a failure is classified and decided once.

        Gives back the slot (the limiter learns "success", "throttled" or "dropped"), tells the
        breaker and budget what happened (a probe always comes back), then — for an exception —
        decides the next step on ``state`` (default: the attempt's own call) and returns it;
        ``decide=False`` settles without deciding (nothing follows: a stream that ends with the
        failure). Safe to call more than once: only the first call settles.
        """
        if self._flags & _CLOSED:
            return None
        self._flags |= _CLOSED
        failure = None if exc is None else classify(exc)
        self._failure = failure
        permit, self._permit = self._permit, None
        if permit is not None:
            if exc is None:
                permit.release("success")
            else:
                throttled = failure is not None and failure.throttled
                permit.release("throttled" if throttled else "dropped")
        self._settle_scope(exc, failure)
        if self._flags & _OBSERVED:
            self._observer(self, exc)  # after the one classification: ``failure`` is set
        if exc is None:
            return None
        if not isinstance(exc, Exception):
            # A cancellation or interrupt: nothing to decide, and the loop must not act on the
            # step a previous failure left (a "retry" would swallow the cancellation).
            (state or self.state).step = PROPAGATE
            return None
        if not decide:
            return None
        return (state or self.state).decide(exc, failure)

    def abandon(self) -> None:
        """Settle an attempt nobody ran to its end: the slot and a probe go back, no verdict."""
        self.close(GeneratorExit())

    def _settle_scope(self, exc: BaseException | None, failure: Failure | None = None) -> None:
        """Breaker and budget bookkeeping; a held attempt may add a late server failure."""
        state = self.state
        scope = state.scope
        breaker = scope.breaker
        now = state.monotonic()
        if self._flags & _SCOPE_DONE:
            if (
                breaker is not None
                and failure is not None
                and not self._flags & _PROGRESSED
                and is_server_class(failure)
            ):
                breaker.record_failure(now)  # a held leg that broke later, having delivered nothing
            return
        self._flags |= _SCOPE_DONE
        first = not state.history
        if exc is None:
            if first:
                scope.on_success(now)  # the call's one deposit, and the breaker's success
            elif breaker is not None:
                breaker.record_success(now)
            return
        if failure is None:
            if self._ticket == PROBE and breaker is not None:
                # No verdict (unknown error, cancelled, no slot): the next caller probes. Named
                # owner: an abandoned async block is closed by the loop, in another task.
                breaker.release_probe(self._owner)
            return
        if first and scope.budget is not None:
            scope.budget.deposit(now)
        if breaker is not None:
            if is_server_class(failure):
                breaker.record_failure(now)
            else:
                breaker.record_success(now)

    def __repr__(self) -> str:
        return f"Attempt(number={self.number}, remaining={self.remaining:.3f})"

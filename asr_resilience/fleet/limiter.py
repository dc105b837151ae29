"""The fleet's concurrency limiter: one quota of calls in flight for every worker of an account.

Leases
------
A slot is a *lease* in a Redis sorted set (member: lease id, score: expiry in server
milliseconds). The acquire script purges expired leases and adds new ones only while fewer than
the limit are held, in one atomic step; release removes the lease. While a permit is held, its
process renews the lease every ``lease_ttl / 3``, so a worker that is killed (SIGKILL, OOM, a
lost machine) stops renewing and its slots come back within ``lease_ttl``.

One worker thread per limiter
-----------------------------
Callers never talk to Redis themselves. Each limiter runs one daemon thread that serves the
process's waiters in FIFO order: one script call asks for as many leases as there are waiters,
releases are queued to it (``Permit.release`` must not block an event loop on the network), and
it renews every live lease in one call. So a process with 250 waiting tasks costs Redis one call
per poll, not 250, and an event loop never waits on a socket.

Fairness
--------
A worker that finds no free slot takes a ticket (``INCR``) and waits in a queue in Redis; the
queued workers ahead of it are served first, and a worker that was served while it still wants
more goes to the back. So slots go round-robin between workers, whatever their thread counts,
and no worker starves. A worker that stops polling (killed while waiting) loses its place after
``waiter_ttl``. Waiting workers poll with jittered exponential backoff (``poll_min`` to
``poll_max``), and at once after one of their own permits is released.

Adaptive fleet limit
--------------------
With no quota, the limit lives in a Redis hash and follows :class:`AdaptiveLimiter`'s AIMD with
slow start: a success grows it (when the fleet is at least half using it), a ``"throttled"``
release anywhere halves it -- once per round: only a permit granted at the current epoch may cut,
and a cut starts a new epoch.

Without Redis
-------------
When Redis is unavailable (see :mod:`.connection`), acquisitions go to a local
:class:`AdaptiveLimiter` holding this process's share, and waiters already queued for the fleet
are moved to it; recovery brings new acquisitions back to the fleet.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from ..limits.limiter import AdaptiveLimiter, Outcome, Permit
from ..observe import emit
from ..policy.model import ConcurrencySettings, FleetSettings
from .connection import FleetConnection, FleetUnavailable, resolve_url, shared_connection

__all__ = ["DEFAULT_WAITER_TTL", "FleetLimiter", "FleetPermit"]

DEFAULT_WAITER_TTL = 3.0
"""Seconds a waiting worker keeps its place in the fleet's queue without polling."""
_POLL_MIN = 0.005
_POLL_MAX = 0.05


class FleetPermit(Permit):
    """A fleet slot: a lease in Redis, renewed while held; ``release`` it exactly once."""

    __slots__ = ("_fleet", "lease_id")

    def __init__(self, fleet: FleetLimiter, lease_id: str, epoch: int) -> None:
        # Permit's _limiter stays unset: releasing goes to the fleet, never to a local limiter.
        self._fleet = fleet
        self._epoch = epoch
        self._released = False
        self.lease_id = lease_id

    def release(self, outcome: Outcome) -> None:
        """Give the slot back, telling the fleet how the call went (never blocks)."""
        self._fleet._release(self, outcome)

    def __repr__(self) -> str:
        return f"FleetPermit({self.lease_id!r}, epoch={self._epoch}, released={self._released})"


class _Waiter:
    """A thread (``event``) or a task (``loop`` and ``future``) queued for a fleet slot."""

    __slots__ = ("event", "fallback", "future", "loop", "permit")

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.permit: FleetPermit | None = None
        self.fallback = False  # Redis went away while it waited: ask the local limiter instead


def _wake_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _fallback_settings(
    quota: int | None, share: float, concurrency: ConcurrencySettings | None, high: int
) -> ConcurrencySettings:
    if quota is None and concurrency is not None:
        return concurrency
    cap = max(1, math.ceil((quota if quota is not None else high) * share))
    return ConcurrencySettings(adaptive=True, initial=cap, min=1, max=cap)


class FleetLimiter:
    """Limits calls in flight across every process sharing ``key`` on one Redis server.

    Same interface as :class:`AdaptiveLimiter`: ``acquire_sync``, ``acquire``, and
    ``Permit.release(outcome)``. ``quota`` fixes the fleet's limit; ``None`` learns it between
    ``min_limit`` and ``max_limit`` from ``initial``. ``fallback`` is the local limiter's settings
    while Redis is unavailable (default: ``ceil(quota * fallback_share)`` slots, or
    ``max_limit * fallback_share`` without a quota). ``on_change(old, new)`` runs on the worker
    thread when a release changes the fleet's slot count or cuts it.
    """

    def __init__(
        self,
        connection: FleetConnection,
        key: str,
        *,
        quota: int | None = None,
        initial: int = 4,
        min_limit: int = 1,
        max_limit: int = 200,
        lease_ttl: float = 30.0,
        fallback_share: float = 0.25,
        fallback: ConcurrencySettings | None = None,
        on_change: Callable[[float, float], None] | None = None,
        waiter_ttl: float = DEFAULT_WAITER_TTL,
        poll_min: float = _POLL_MIN,
        poll_max: float = _POLL_MAX,
    ) -> None:
        if quota is not None and quota < 1:
            raise ValueError(f"quota must be >= 1, not {quota!r}")
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit <= max_limit, not {min_limit}, {max_limit}")
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, not {lease_ttl!r}")
        if not 0 < fallback_share <= 1:
            raise ValueError(f"fallback_share must be in (0, 1], not {fallback_share!r}")
        if not 0 < poll_min <= poll_max:
            raise ValueError(f"need 0 < poll_min <= poll_max, not {poll_min}, {poll_max}")
        self._connection = connection
        self.key = key
        self._keys = [f"{key}:{part}" for part in ("leases", "queue", "seen", "ticket", "state")]
        self._quota = quota
        self._initial = min(max_limit, max(min_limit, initial))
        self._min = min_limit
        self._max = max_limit
        self._lease_ms = max(1, round(lease_ttl * 1000))
        self._renew_every = lease_ttl / 3
        self._waiter_ms = max(1, round(waiter_ttl * 1000))
        self._poll_min = poll_min
        self._poll_max = poll_max
        self._on_change = on_change
        self._fallback = AdaptiveLimiter(
            fallback or _fallback_settings(quota, fallback_share, None, max_limit),
            on_change=on_change,
        )
        # The worker's name in Redis: unique per limiter object, readable in diagnostics.
        self._me = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._next_lease = 0
        self._cond = threading.Condition(threading.Lock())
        self._waiters: deque[_Waiter] = deque()
        self._releases: list[tuple[str, Outcome, int]] = []
        self._live: dict[str, FleetPermit] = {}
        self._poke = False
        self._queued = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._slots = quota if quota is not None else self._initial  # as last seen in Redis
        self._fleet_in_flight = 0
        self._lost = 0

    @property
    def adaptive(self) -> bool:
        """True when the fleet learns its limit (no fixed quota): a 40000005 lowers it."""
        return self._quota is None

    @classmethod
    def from_settings(
        cls,
        settings: FleetSettings,
        scope: str,
        *,
        concurrency: ConcurrencySettings | None = None,
        connection: FleetConnection | None = None,
        on_change: Callable[[float, float], None] | None = None,
    ) -> FleetLimiter:
        """The limiter of ``scope`` (an account or appkey) as the policy's ``fleet:`` says.

        ``concurrency`` (the policy's) is the local limiter without Redis when there is no
        quota. The connection is the process's shared one for the configured URL.
        """
        return cls(
            connection or shared_connection(resolve_url(settings)),
            f"{settings.key_prefix}limiter:{{{scope}}}",
            quota=settings.quota,
            initial=settings.initial,
            min_limit=settings.min,
            max_limit=settings.max,
            lease_ttl=settings.lease_ttl,
            fallback_share=settings.fallback_share,
            fallback=_fallback_settings(
                settings.quota, settings.fallback_share, concurrency, settings.max
            ),
            on_change=on_change,
        )

    # -- reading -------------------------------------------------------------------------------

    @property
    def limit(self) -> float:
        """The fleet's slot count as last seen in Redis."""
        return float(self._slots)

    @property
    def slots(self) -> int:
        """The fleet's slot count as last seen in Redis."""
        return self._slots

    @property
    def in_flight(self) -> int:
        """Fleet permits this process holds."""
        return len(self._live)

    @property
    def fallback(self) -> AdaptiveLimiter:
        """The local limiter used while Redis is unavailable."""
        return self._fallback

    @property
    def connection(self) -> FleetConnection:
        """The Redis connection and its health."""
        return self._connection

    def stats(self) -> dict[str, float | int]:
        """A local snapshot: fleet slots and in-flight count last seen, this process's part."""
        with self._cond:
            return {
                "slots": self._slots,
                "fleet_in_flight": self._fleet_in_flight,
                "in_flight": len(self._live),
                "waiting": len(self._waiters),
                "fallback_in_flight": self._fallback.in_flight,
                "healthy": int(self._connection.healthy),
                "lost_leases": self._lost,
            }

    def fleet_stats(self) -> dict[str, float | int]:
        """The fleet's state in Redis: live leases, queued workers, adaptive limit, epoch.

        Raises :class:`FleetUnavailable` when Redis cannot be asked.
        """
        leases, queue, _seen, _ticket, state = self._keys

        def read(client: Any) -> list[Any]:
            now_ms = int(time.time() * 1000)
            pipe = client.pipeline(transaction=False)
            pipe.zcount(leases, f"({now_ms}", "+inf")
            pipe.zcard(queue)
            pipe.hmget(state, "limit", "ssthresh", "epoch")
            return list(pipe.execute())

        live, queued, (limit, ssthresh, epoch) = self._connection.run(read)
        fixed = self._quota
        return {
            "in_flight": int(live),
            "queued": int(queued),
            "limit": float(fixed if fixed is not None else limit or self._initial),
            "ssthresh": float(ssthresh or self._max),
            "epoch": int(epoch or 0),
        }

    # -- acquiring -----------------------------------------------------------------------------

    def acquire_sync(self, timeout: float | None = None) -> Permit | None:
        """Block the thread until a fleet slot is free; ``None`` if ``timeout`` passes first.

        While Redis is unavailable the slot comes from the local fallback limiter.
        """
        if not self._connection.healthy or self._closed:
            return self._fallback.acquire_sync(timeout)
        if timeout is not None and timeout <= 0:
            return self._try_now()
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = _Waiter(event=threading.Event())
        self._enqueue(waiter)
        assert waiter.event is not None
        try:
            waiter.event.wait(timeout)
        except BaseException:
            # Interrupted (KeyboardInterrupt): leave the queue, or give back a slot handed over.
            permit = self._settle(waiter)
            if permit is not None:
                permit.release("dropped")
            raise
        permit = self._settle(waiter)
        if waiter.fallback:
            return self._fallback.acquire_sync(_remaining(deadline))
        return permit

    async def acquire(self, timeout: float | None = None) -> Permit | None:
        """Wait in the event loop for a fleet slot; ``None`` if ``timeout`` passes first.

        Cancellation-safe: a waiter cancelled after it was handed a slot gives it back.
        """
        if not self._connection.healthy or self._closed:
            return await self._fallback.acquire(timeout)
        if timeout is not None and timeout <= 0:
            return await asyncio.to_thread(self._try_now)
        deadline = None if timeout is None else time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(loop=loop, future=future)
        self._enqueue(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _wake_future, future)
        try:
            await future
        except BaseException:
            permit = self._settle(waiter)
            if permit is not None:
                permit.release("dropped")
            raise
        finally:
            if timer is not None:
                timer.cancel()
        permit = self._settle(waiter)
        if waiter.fallback:
            return await self._fallback.acquire(_remaining(deadline))
        return permit

    def _try_now(self) -> Permit | None:
        """One attempt without queueing (``timeout <= 0``), in the calling thread."""
        try:
            granted, epoch = self._acquire_remote(1, queue=False)
        except FleetUnavailable:
            return self._fallback.acquire_sync(0)
        if not granted:
            return None
        permit = FleetPermit(self, granted[0], epoch)
        with self._cond:
            self._live[permit.lease_id] = permit
            self._ensure_worker()  # it renews the lease
            self._cond.notify()
        return permit

    def _enqueue(self, waiter: _Waiter) -> None:
        with self._cond:
            self._waiters.append(waiter)
            self._ensure_worker()
            self._cond.notify()

    def _settle(self, waiter: _Waiter) -> FleetPermit | None:
        """After a wait: the permit handed to ``waiter``, or ``None`` and out of the queue."""
        with self._cond:
            permit = waiter.permit
            if permit is None and not waiter.fallback:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
                else:
                    self._cond.notify()  # the worker may now leave the fleet's queue
            return permit

    def _ensure_worker(self) -> None:
        # Called with the lock held. A forked child inherits the object but not the thread.
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"asr-resilience-fleet-{self.key}", daemon=True
            )
            self._thread.start()

    # -- releasing -----------------------------------------------------------------------------

    def _release(self, permit: FleetPermit, outcome: Outcome) -> None:
        with self._cond:
            if permit._released:
                return
            permit._released = True
            self._live.pop(permit.lease_id, None)
            self._releases.append((permit.lease_id, outcome, permit._epoch))
            self._poke = True  # a slot was freed: the waiters here should look again now
            if not self._closed:
                self._ensure_worker()
            self._cond.notify()

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        poll_at = 0.0
        delay = self._poll_min
        renew_at = time.monotonic() + self._renew_every
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._releases or self._poke:
                        break
                    if self._waiters and (now >= poll_at or not self._connection.healthy):
                        break
                    if self._queued and not self._waiters:
                        break
                    if self._live and now >= renew_at:
                        break
                    waits = [poll_at - now] if self._waiters else []
                    if self._live:
                        waits.append(renew_at - now)
                    self._cond.wait(min(waits) if waits else None)
                releases, self._releases = self._releases, []
                if self._poke:
                    self._poke = False
                    poll_at, delay = 0.0, self._poll_min
                want = len(self._waiters)
            try:
                if releases:
                    self._release_remote(releases)
                if want and self._connection.healthy:
                    if self._serve(want):
                        poll_at, delay = 0.0, self._poll_min
                    else:
                        # Jittered backoff: workers that lost a race must not poll in lockstep.
                        poll_at = time.monotonic() + random.uniform(delay / 2, delay)
                        delay = min(self._poll_max, delay * 2)
                elif not want and self._queued:
                    self._leave_queue()
                if self._live and time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + self._renew_every
                    self._renew()
            except FleetUnavailable:
                pass  # the connection is marked down; the next turn moves the waiters
            except Exception as exc:  # a bug here must not strand the waiters forever
                emit("fleet_limiter_error", level="error", key=self.key, error=type(exc).__name__)
                self._connection.mark_down(exc)
            if not self._connection.healthy:
                self._divert()

    def _serve(self, want: int) -> bool:
        """Ask the fleet for ``want`` leases and hand them to the oldest waiters."""
        granted, epoch = self._acquire_remote(want, queue=True)
        woken: list[_Waiter] = []
        with self._cond:
            for lease_id in granted:
                permit = FleetPermit(self, lease_id, epoch)
                if self._waiters:
                    waiter = self._waiters.popleft()
                    waiter.permit = permit
                    self._live[lease_id] = permit
                    woken.append(waiter)
                else:  # its waiter gave up meanwhile: give the lease straight back
                    permit._released = True
                    self._releases.append((lease_id, "dropped", epoch))
        for waiter in woken:
            self._wake(waiter)
        return len(granted) >= want

    def _divert(self) -> None:
        """Redis is unavailable: every fleet waiter asks the local limiter instead."""
        with self._cond:
            diverted = list(self._waiters)
            self._waiters.clear()
            self._queued = False
            for waiter in diverted:
                waiter.fallback = True
        for waiter in diverted:
            self._wake(waiter)

    def _wake(self, waiter: _Waiter) -> None:
        if waiter.event is not None:
            waiter.event.set()
            return
        assert waiter.loop is not None
        assert waiter.future is not None
        try:
            waiter.loop.call_soon_threadsafe(_wake_future, waiter.future)
        except RuntimeError:
            # The waiter's loop is closed: its task will never run again to use the slot.
            if waiter.permit is not None:
                waiter.permit.release("dropped")

    # -- Redis ---------------------------------------------------------------------------------

    def _acquire_remote(self, want: int, *, queue: bool) -> tuple[list[str], int]:
        with self._cond:
            # Reserve the numbers of every lease this call may create: the worker and a caller
            # trying without waiting may ask at the same time, and ids must never repeat.
            first = self._next_lease
            self._next_lease += want
        script = self._connection.scripts.acquire
        args: list[str | int | float] = [
            self._me,
            want,
            first,
            self._lease_ms,
            self._waiter_ms,
            self._quota or 0,
            self._initial,
            self._min,
            self._max,
            "1" if queue else "0",
        ]
        reply = self._connection.run(lambda client: script(keys=self._keys, args=args))
        grant, epoch, slots, held = (int(x) for x in reply)
        with self._cond:
            if queue:
                self._queued = grant < want
            self._slots = slots
            self._fleet_in_flight = held
        return [f"{self._me}:{first + i}" for i in range(grant)], epoch

    def _release_remote(self, releases: list[tuple[str, Outcome, int]]) -> None:
        script = self._connection.scripts.release
        keys = [self._keys[0], self._keys[4]]

        def send(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for lease_id, outcome, epoch in releases:
                args: list[str | int | float] = [
                    lease_id,
                    outcome,
                    epoch,
                    self._quota or 0,
                    self._min,
                    self._max,
                ]
                script(keys=keys, args=args, client=pipe)
            return list(pipe.execute())

        replies = self._connection.run(send)
        if self._on_change is None or self._quota is not None:
            return
        for old_text, new_text in replies:
            old, new = float(old_text), float(new_text)
            if old and (math.floor(old) != math.floor(new) or new < old):
                self._on_change(old, new)

    def _renew(self) -> None:
        with self._cond:
            leases = list(self._live)
        if not leases:
            return
        script = self._connection.scripts.renew
        args: list[Any] = [self._lease_ms, *leases]
        lost = int(self._connection.run(lambda client: script(keys=self._keys[:1], args=args)))
        if lost:
            # Expired while Redis was away or slow: counted again now, as the calls still run.
            self._lost += lost
            emit("fleet_lease_lost", level="warning", key=self.key, leases=lost)

    def _leave_queue(self) -> None:
        queue, seen = self._keys[1], self._keys[2]

        def leave(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(queue, self._me)
            pipe.zrem(seen, self._me)
            pipe.execute()

        self._connection.run(leave)
        with self._cond:
            self._queued = False

    # -- shutting down -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker, give every held lease back, and leave the fleet's queue.

        Waiters move to the local limiter; permits still held afterwards release locally only.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            releases = self._releases
            self._releases = []
            leases = list(self._live)
            self._live.clear()
        releases += [(lease_id, "dropped", 0) for lease_id in leases]
        try:
            if releases:
                self._release_remote(releases)
            self._leave_queue()
        except FleetUnavailable:
            pass  # the leases expire on their own within lease_ttl
        self._divert()

    def __repr__(self) -> str:
        return (
            f"FleetLimiter({self.key!r}, slots={self._slots}, in_flight={len(self._live)}, "
            f"waiting={len(self._waiters)}, healthy={self._connection.healthy})"
        )

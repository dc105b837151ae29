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
With no quota, the limit lives in a Redis hash and learns as :class:`AdaptiveLimiter` does: slow
start until the first 40000005 anywhere in the fleet, which sets the limit to the leases held
when that refusal is released (the refused one not counted); then one slot more after
``PROBE_ROUNDS`` rounds of successes, and back to what worked when a probe is refused. Once per
round: only a permit granted at the current epoch may cut, and a cut starts a new epoch; the
refusals of the burst the cut answered may only lower the limit to what is still in flight.

Without Redis, and back
-----------------------
When Redis is unavailable (see :mod:`.connection`), acquisitions go to a local
:class:`AdaptiveLimiter` holding this process's share, and waiters already queued for the fleet
are moved to it. The share counts every call this process has in flight, not only the ones it
admits itself: the fleet permits still held when Redis went away are *adopted* by it (each
holds a local slot until released), so the process admits nothing new while it runs its share.

Adopted permits may exceed the share (fleet admission does not split the quota evenly), and the
other workers' shares do not shrink to make up for it. So while cut off, a worker also admits
no more than the fleet's slots minus the leases the *other* workers held when it last asked
Redis for slots, minus the slots it gave back to Redis since (the others may have taken them;
a release Redis never received frees nothing): a ceiling on the local share (possibly 0),
lifted when fleet admission resumes. With two workers of half the quota each and the quota in
use, the quota then holds whoever held what when Redis went away. Slots that were free at that
last look may have gone to the others too; counting them would leave a lightly loaded worker
nothing during an outage, so they are not counted: the bound is exact for a saturated quota,
the case where it matters. No worker can know more without Redis: a provable bound would be
to admit nothing new during an outage, which ``fallback_share`` exists to avoid.

Recovery keeps the quota by *registering*, not by draining. When Redis answers again the worker
thread, before any new fleet admission, writes one lease per local permit still held (and
re-writes the leases of its fleet permits, which a restarted Redis has forgotten), renewed like
any lease and removed when those permits are released; it also sends the releases it could not
send while Redis was away. Draining instead (admitting no fleet work here until the local
holders finish) protects only this process: the other workers, seeing an empty Redis, would
fill the quota while our local calls still run, and a long call would shut this process out
for its whole length. Registered, every call in flight anywhere is a lease, and the fleet's
acquire script admits nobody until the total is below the quota again.

The other workers come back at slightly different moments (each one's probe notices on its own
schedule), so after registering, a worker keeps admitting locally for ``recovery_grace``
seconds (default two probe intervals) before it takes fleet slots again: by then every worker
whose probe runs on time has registered its own local holders too. A local permit granted
during the grace is registered before the switch, and one handed over after it is exchanged
for a fleet slot. What stays outside the guarantee: a worker whose probe is slower than the
grace, and outages shorter than one Redis command, which nobody notices.

Keys of the wrong type
----------------------
A ``WRONGTYPE`` answer (something else wrote over one of our keys, all namespaced under the
limiter's key) is not an outage. The limiter goes local, emits one
``asr_resilience.fleet_key_conflict`` warning naming the key and what it held, deletes that
key (only if it still has the wrong type; the scripts recreate it) and re-registers its holders
as after an outage. If the conflict comes back, it repairs again after an exponential backoff
(``probe_interval`` doubling to 30 s), logging at debug level only.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from .._clock import SYSTEM_CLOCK, Clock
from ..limits._limiter import (
    FAST_PROBE_ROUNDS,
    PROBE_ROUNDS,
    AdaptiveLimiter,
    ClosesOnExit,
    Outcome,
    Permit,
)
from ..limits._waiting import Blocking, Plan, WaiterQueue, run_async, run_sync
from ..observe import emit
from ..policy._model import ConcurrencySettings, FleetSettings
from ..policy._policy import Policy
from ._connection import (
    FleetConnection,
    FleetKeyConflict,
    FleetUnavailable,
    resolve_url,
    shared_connection,
    slot_keys,
)

__all__ = ["DEFAULT_WAITER_TTL", "FleetLimiter", "FleetPermit"]

DEFAULT_WAITER_TTL = 3.0
"""Seconds a waiting worker keeps its place in the fleet's queue without polling."""
_CLOSE_WAIT = 5.0
"""Seconds ``close`` waits for the worker thread to stop."""
_POLL_MIN = 0.005
_POLL_MAX = 0.05
_REPAIR_BACKOFF_MAX = 30.0
# The type each of the limiter's keys must have, in the order of FleetLimiter._keys.
_KEY_TYPES = ("zset", "zset", "zset", "string", "hash")
_Notice = Literal["success", "throttled", "dropped", "started"]
"""What the RELEASE script hears of a lease: an outcome, or that its call's task started."""


class FleetPermit(Permit):
    """A fleet slot: a lease in Redis, renewed while held; ``release`` it once."""

    __slots__ = ("_shadow", "lease_id")

    def __init__(self, fleet: FleetLimiter, lease_id: str, epoch: int) -> None:
        super().__init__(fleet, epoch)
        self.lease_id = lease_id
        # The local slot that counts this call while Redis is away (see "Without Redis").
        self._shadow: Permit | None = None

    def __repr__(self) -> str:
        return f"FleetPermit({self.lease_id!r}, epoch={self._epoch}, released={self._released})"


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _fallback_settings(
    quota: int | None, share: float, concurrency: ConcurrencySettings | None, high: int
) -> ConcurrencySettings:
    if quota is None and concurrency is not None:
        return concurrency
    cap = max(1, math.ceil((quota if quota is not None else high) * share))
    return ConcurrencySettings(adaptive=True, initial=cap, min=1, max=cap)


class FleetLimiter(ClosesOnExit):
    """Limits calls in flight across every process sharing ``key`` on one Redis server.

    Satisfies :class:`~asr_resilience.limits.Limiter`: ``acquire_sync``, ``acquire``, and
    ``Permit.release(outcome)``. ``quota`` fixes the fleet's limit; ``None`` learns it between
    ``min_limit`` and ``max_limit`` from ``initial``. ``fallback`` is the local limiter's settings
    while Redis is unavailable (default: ``ceil(quota * fallback_share)`` slots, or
    ``max_limit * fallback_share`` without a quota). ``on_change(old, new)`` runs on the worker
    thread when a release changes the fleet's slot count or cuts it. ``recovery_grace`` is how
    long after Redis comes back this process keeps admitting locally (default: two probe
    intervals of the connection). Poll backoff goes through ``clock`` (``testing.no_wait``).
    ``close()`` (or the end of a ``with`` / ``async with`` block) gives the leases back and wakes
    every waiter with :class:`~asr_resilience.limits.LimiterClosedError`.
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
        recovery_grace: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
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
        if recovery_grace is not None and not recovery_grace >= 0:
            raise ValueError(f"recovery_grace must be >= 0 seconds, not {recovery_grace!r}")
        self._connection = connection
        self.key = key
        # One hash tag for all: the scripts touch several keys at once (one slot on a cluster).
        self._keys = slot_keys(
            key, ("leases", "queue", "seen", "ticket", "state"), what="the limiter key"
        )
        self._quota = quota
        self._initial = min(max_limit, max(min_limit, initial))
        self._min = min_limit
        self._max = max_limit
        self._lease_ms = max(1, round(lease_ttl * 1000))
        self._renew_every = lease_ttl / 3
        self._waiter_ms = max(1, round(waiter_ttl * 1000))
        self._poll_min = poll_min
        self._poll_max = poll_max
        self._grace = 2 * connection.probe_interval if recovery_grace is None else recovery_grace
        self._clock = clock
        self._on_change = on_change
        self._fallback = AdaptiveLimiter(
            fallback or _fallback_settings(quota, fallback_share, None, max_limit),
            on_change=on_change,
            on_release=self._local_released,
        )
        # The worker's name in Redis: unique per limiter object, readable in diagnostics.
        self._me = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._next_lease = 0
        self._cond = threading.Condition(threading.Lock())
        self._waiters: WaiterQueue[FleetPermit] = WaiterQueue(self._cond, self._cond.notify)
        self._releases: list[tuple[str, _Notice, int]] = []
        self._live: dict[str, FleetPermit] = {}
        # Local permits handed out by this limiter -> their lease once registered in Redis.
        self._local: dict[Permit, tuple[str, int] | None] = {}
        self._unadopted = False  # some fleet permit in _live has no local shadow yet
        self._poke = False
        self._queued = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._slots = quota if quota is not None else self._initial  # as last seen in Redis
        self._fleet_in_flight = 0
        self._others_held = 0  # leases of the other workers, as last seen
        self._freed_since_look = 0  # slots released to Redis since then (others may have them)
        self._capped_for = -1  # the outage count the local share's ceiling was set for
        self._epoch = 0  # the fleet's epoch as last seen
        self._lost = 0
        # Fleet admission is on while _synced == connection.outages (see "Without Redis").
        self._synced = connection.outages if connection.healthy else -1
        self._hold_until: float | None = None  # end of the recovery grace under way
        self._hold_for = -1  # the outage count that grace is for
        self._sync_at = 0.0  # not before: the repair backoff
        self._repair_due = False
        self._repair_backoff = connection.probe_interval
        self._repaired = False
        self._conflicts = 0
        self._warned_keys: set[str] = set()
        self._unsubscribe = connection.subscribe(self._connection_changed)

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

    @classmethod
    def for_scope(
        cls,
        name: str,
        policy: Policy,
        *,
        clock: Callable[[], float],
        on_change: Callable[[float, float], None] | None,
    ) -> FleetLimiter:
        """The ``"redis"`` limiter backend (:mod:`asr_resilience.limits._backends`)."""
        del clock  # leases run on the server's clock
        return cls.from_settings(
            policy.fleet, name, concurrency=policy.concurrency, on_change=on_change
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

    @property
    def admitting(self) -> bool:
        """Whether new calls take fleet slots now (False while down, recovering or repairing)."""
        return self._admitting()

    def _admitting(self) -> bool:
        return (
            not self._closed
            and self._connection.healthy
            and self._synced == self._connection.outages
        )

    def stats(self) -> dict[str, float | int]:
        """A local snapshot: fleet slots and in-flight count last seen, this process's part."""
        with self._cond:
            return {
                "slots": self._slots,
                "fleet_in_flight": self._fleet_in_flight,
                "in_flight": len(self._live),
                "waiting": len(self._waiters),
                "fallback_in_flight": self._fallback.in_flight,
                "local_held": len(self._local),
                "local_registered": sum(1 for lease in self._local.values() if lease is not None),
                "healthy": int(self._connection.healthy),
                "admitting": int(self._admitting()),
                "lost_leases": self._lost,
                "key_conflicts": self._conflicts,
            }

    def fleet_stats(self) -> dict[str, float | int]:
        """The fleet's state in Redis: live leases, queued workers, adaptive limit, epoch, works.

        Raises :class:`FleetUnavailable` when Redis cannot be asked.
        """
        leases, queue, _seen, _ticket, state = self._keys

        def read(client: Any) -> list[Any]:
            now_ms = int(time.time() * 1000)
            pipe = client.pipeline(transaction=False)
            pipe.zcount(leases, f"({now_ms}", "+inf")
            pipe.zcard(queue)
            pipe.hmget(state, "limit", "ssthresh", "epoch", "works")
            return list(pipe.execute())

        live, queued, (limit, ssthresh, epoch, works) = self._call(read)
        fixed = self._quota
        return {
            "in_flight": int(live),
            "queued": int(queued),
            "limit": float(fixed if fixed is not None else limit or self._initial),
            "ssthresh": float(ssthresh or self._max),
            "epoch": int(epoch or 0),
            "works": int(works or 0),
        }

    # -- acquiring -----------------------------------------------------------------------------

    def acquire_sync(self, timeout: float | None = None) -> Permit | None:
        """Block the thread until a fleet slot is free; ``None`` if ``timeout`` passes first.

        While Redis is unavailable the slot comes from the local fallback limiter.
        """
        return run_sync(self.plan(timeout))

    async def acquire(self, timeout: float | None = None) -> Permit | None:
        """Wait in the event loop for a fleet slot; ``None`` if ``timeout`` passes first.

        Cancellation-safe: a waiter cancelled after it was handed a slot gives it back.
        """
        return await run_async(self.plan(timeout))

    def plan(self, timeout: float | None) -> Plan[Permit | None]:
        """The acquire, for :func:`~asr_resilience.limits._waiting.run_sync` or ``run_async``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._admitting():
            return (yield from self._local_plan(deadline))
        if timeout is not None and timeout <= 0:
            permit: FleetPermit | None = yield Blocking(self._try_now, undo=_drop)
            if permit is None and not self._admitting():
                return (yield from self._local_plan(deadline))
            return permit
        with self._cond:
            waiter = self._waiters.join()
            self._ensure_worker()
            self._cond.notify()
        permit = yield from self._waiters.wait(waiter, timeout, _drop)
        if waiter.redirected:  # Redis went away (or a key needs repair) while it waited
            return (yield from self._local_plan(deadline))
        return permit

    def _local_plan(self, deadline: float | None) -> Plan[Permit | None]:
        """A local slot; exchanged for a fleet slot if the fleet came back meanwhile."""
        self._adopt_live()
        self._cap_fallback()
        self._ensure_worker_if_needed()
        permit = yield from self._fallback.plan(_remaining(deadline))
        if permit is None:
            return None
        with self._cond:
            # Checked under the lock the recovery flips admission under: either this permit is
            # recorded before, and the recovery registers it, or it sees the fleet back.
            if not self._admitting():
                self._local[permit] = None
                return permit
        permit.release("dropped")
        return (yield from self.plan(_remaining(deadline)))

    def _try_now(self) -> FleetPermit | None:
        """One attempt without queueing (``timeout <= 0``), in the calling thread."""
        try:
            granted, epoch = self._acquire_remote(1, queue=False)
        except FleetUnavailable:
            return None  # the plan goes local when the fleet is not admitting
        if not granted:
            return None
        permit = FleetPermit(self, granted[0], epoch)
        with self._cond:
            self._live[permit.lease_id] = permit
            self._unadopted = True
            self._ensure_worker()  # it renews the lease
            self._cond.notify()
        return permit

    def _adopt_live(self) -> None:
        """Count the fleet permits still held against the local share (see "Without Redis")."""
        if not self._unadopted:
            return
        with self._cond:
            for permit in self._live.values():
                if permit._shadow is None:
                    permit._shadow = self._fallback.adopt()
            self._unadopted = False

    def _cap_fallback(self) -> None:
        """Cut off: admit locally no more than the fleet's slots the others left (see above)."""
        outages = self._connection.outages
        if self._capped_for == outages or self._connection.healthy or outages == 0:
            return  # set already; or not an outage (recovering, repairing, no Redis at all)
        with self._cond:
            if self._capped_for == outages:
                return
            self._capped_for = outages
            ceiling = self._slots - self._others_held - self._freed_since_look
        self._fallback.set_ceiling(max(0, ceiling))

    def _ensure_worker_if_needed(self) -> None:
        # Going local while Redis answers (recovering, repairing): the worker must sync.
        if self._connection.healthy and not self._closed:
            with self._cond:
                self._ensure_worker()
                self._cond.notify()

    def _ensure_worker(self) -> None:
        # Called with the lock held. A forked child inherits the object but not the thread.
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"asr-resilience-fleet-{self.key}", daemon=True
            )
            self._thread.start()

    # -- releasing -----------------------------------------------------------------------------

    def _release(self, permit: Permit, outcome: Outcome) -> None:
        assert isinstance(permit, FleetPermit)
        with self._cond:
            if permit._released:
                return
            permit._released = True
            self._live.pop(permit.lease_id, None)
            # A started call has taught the fleet already: its success is no second lesson.
            sent: _Notice = "dropped" if permit._started and outcome == "success" else outcome
            self._releases.append((permit.lease_id, sent, permit._epoch))
            self._poke = True  # a slot was freed: the waiters here should look again now
            if not self._closed:
                self._ensure_worker()
            self._cond.notify()
            shadow, permit._shadow = permit._shadow, None
        if shadow is not None:
            shadow.release(outcome)

    def _started(self, permit: Permit) -> None:
        """The call's task started: a learning fleet grows as on a success, now (the notice
        goes out with the releases, by the worker thread). While Redis is away the local slot
        that counts the call learns instead."""
        assert isinstance(permit, FleetPermit)
        with self._cond:
            shadow = permit._shadow
            if permit._released or permit._started or shadow is not None:
                pass
            elif self._quota is None and not self._closed:
                permit._started = True
                self._releases.append((permit.lease_id, "started", permit._epoch))
                self._ensure_worker()
                self._cond.notify()
        if shadow is not None:
            shadow.started()

    def _local_released(self, permit: Permit, outcome: Outcome) -> None:
        """A local permit came back: its lease in Redis, if registered, goes too."""
        with self._cond:
            if permit not in self._local:
                return  # a shadow, or a permit from before close()
            lease = self._local.pop(permit)
            if lease is None or self._closed:
                return
            lease_id, epoch = lease
            self._releases.append((lease_id, outcome, epoch))
            self._ensure_worker()
            self._cond.notify()

    # -- the worker thread ---------------------------------------------------------------------

    def _connection_changed(self, healthy: bool) -> None:
        with self._cond:
            self._cond.notify()

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
                    healthy = self._connection.healthy
                    admitting = healthy and self._synced == self._connection.outages
                    syncing = healthy and not admitting
                    sync_at = max(self._sync_at, self._hold_until or 0.0)
                    renew = healthy and bool(self._live or self._local)
                    waits = [renew_at - now] if renew else []
                    if self._waiters and not admitting:
                        break  # move them to the local share
                    if renew and now >= renew_at:
                        break
                    if syncing:
                        if now >= sync_at:
                            break
                        waits.append(sync_at - now)
                    if admitting:
                        if self._releases or self._poke:
                            break
                        if self._queued and not self._waiters:
                            break
                        if self._waiters:
                            if now >= poll_at:
                                break
                            waits.append(poll_at - now)
                    # Idle (or Redis down): wait for work, a due timer, or a connection change.
                    self._cond.wait(min(waits) if waits else None)
                releases: list[tuple[str, _Notice, int]] = []
                if admitting:
                    releases, self._releases = self._releases, []
                if self._poke:
                    self._poke = False
                    poll_at, delay = 0.0, self._poll_min
                want = len(self._waiters)
            try:
                if not admitting:
                    self._divert()
                    if syncing and now >= sync_at:
                        renew_at = time.monotonic() + self._renew_every
                        self._sync()  # registers and renews every lease held here
                    elif renew and now >= renew_at:
                        renew_at = time.monotonic() + self._renew_every
                        self._renew()
                    continue
                if releases:
                    self._release_remote(releases)
                if want:
                    if self._serve(want):
                        poll_at, delay = 0.0, self._poll_min
                    else:
                        # Jittered backoff: workers that lost a race must not poll in lockstep.
                        pause = self._clock.pause(random.uniform(delay / 2, delay))
                        poll_at = time.monotonic() + pause
                        delay = min(self._poll_max, delay * 2)
                elif self._queued:
                    self._leave_queue()
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + self._renew_every
                    self._renew()
            except FleetKeyConflict:
                self._conflict()
            except FleetUnavailable:
                pass  # the connection is marked down; the next turn moves the waiters
            except Exception as exc:  # a bug here must not strand the waiters forever
                emit("fleet_limiter_error", level="error", key=self.key, error=type(exc).__name__)
                self._connection.mark_down(exc)

    def _serve(self, want: int) -> bool:
        """Ask the fleet for ``want`` leases and hand them to the oldest waiters."""
        granted, epoch = self._acquire_remote(want, queue=True)
        woken = []
        with self._cond:
            for lease_id in granted:
                permit = FleetPermit(self, lease_id, epoch)
                if self._waiters:
                    woken.append(self._waiters.serve(permit))
                    self._live[lease_id] = permit
                    self._unadopted = True
                else:  # its waiter gave up meanwhile: give the lease straight back
                    permit._released = True
                    self._releases.append((lease_id, "dropped", epoch))
        for waiter in woken:
            if not waiter.wake():
                # The waiter's loop is closed: its task will never run again to use the slot.
                assert waiter.value is not None
                waiter.value.release("dropped")
        return len(granted) >= want

    def _divert(self) -> None:
        """The fleet is not admitting: every fleet waiter asks the local share instead."""
        with self._cond:
            diverted = self._waiters.redirect_all()
            self._queued = False  # our place in the fleet's queue lapses after waiter_ttl
        for waiter in diverted:
            waiter.wake()

    # -- recovery ------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Redis answers again: register what this process holds, then (after the grace) admit.

        Runs on the worker thread; raises FleetUnavailable if Redis goes away again.
        """
        outages = self._connection.outages
        with self._cond:
            if self._hold_for != outages or self._hold_until is None:
                self._hold_for = outages
                self._hold_until = time.monotonic() + self._grace
            repair = self._repair_due
        if repair:
            self._repair()
        self._push_holders()
        with self._cond:
            if self._hold_until is not None and time.monotonic() < self._hold_until:
                return  # the other workers are registering theirs: admit after the grace
            if any(lease is None for lease in self._local.values()):
                return  # granted during the grace: registered on the next turn, at once
            if self._hold_for != self._connection.outages:
                return  # down and up again meanwhile: start over
            self._synced = outages
            self._hold_until = None
            registered = len(self._local)
        self._fallback.set_ceiling(None)  # the next outage sets its own
        emit("fleet_limiter_resumed", level="info", key=self.key, local_registered=registered)

    def _push_holders(self) -> None:
        """One round trip: every lease this process holds upserted, pending releases sent."""
        with self._cond:
            fresh = 0
            for permit, lease in self._local.items():
                if lease is None:
                    self._local[permit] = (f"{self._me}:{self._next_lease}", self._epoch)
                    self._next_lease += 1
                    fresh += 1
            live = list(self._live)
            local = [lease[0] for lease in self._local.values() if lease is not None]
            releases, self._releases = self._releases, []
        renew = self._connection.scripts.renew
        release = self._connection.scripts.release
        args: list[Any] = [self._lease_ms, *live, *local]

        def push(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            if live or local:
                renew(keys=self._keys[:1], args=args, client=pipe)
            for lease_id, outcome, granted in releases:
                release(
                    keys=[self._keys[0], self._keys[4]],
                    args=self._release_args(lease_id, outcome, granted),
                    client=pipe,
                )
            return list(pipe.execute())

        try:
            replies = self._call(push)
        except FleetUnavailable:
            with self._cond:
                self._releases[:0] = releases  # kept for the next try, in order
            raise
        if live or local:
            # The leases Redis had lost (a restart, or expired while away), not counting the
            # ones this push registers for the first time.
            self._note_lost(int(replies[0]) - fresh)

    def _repair(self) -> None:
        """Delete whichever of our keys holds another type; warn once per key."""
        repair = self._connection.scripts.repair
        reply = self._call(lambda client: repair(keys=self._keys, args=list(_KEY_TYPES)))
        found = dict(zip(reply[::2], reply[1::2], strict=True))
        with self._cond:
            self._repair_due = False
            self._repaired = True
            fresh = {key: kind for key, kind in found.items() if key not in self._warned_keys}
            self._warned_keys.update(found)
        if fresh:
            for key, kind in fresh.items():
                emit(
                    "fleet_key_conflict",
                    level="warning",
                    key=key,
                    found=kind,
                    expected=_KEY_TYPES[self._keys.index(key)],
                    action="deleted and recreated",
                )
        elif found:
            emit("fleet_key_repaired", level="debug", keys=sorted(found))

    def _conflict(self) -> None:
        """WRONGTYPE on one of our keys: go local, repair (after a backoff if it recurs)."""
        with self._cond:
            self._conflicts += 1
            if not self._repair_due:
                self._repair_due = True
                if self._repaired:
                    # It came back after a repair: something keeps writing there. Back off.
                    pause = self._clock.pause(self._repair_backoff)
                    self._sync_at = time.monotonic() + pause
                    self._repair_backoff = min(_REPAIR_BACKOFF_MAX, self._repair_backoff * 2)
            self._synced = -1
            self._hold_until = None
            if not self._closed:
                self._ensure_worker()
            self._cond.notify()

    def _call(self, operation: Callable[[Any], Any]) -> Any:
        """``connection.run(operation)``; a WRONGTYPE also schedules the repair."""
        try:
            return self._connection.run(operation)
        except FleetKeyConflict:
            if threading.current_thread() is not self._thread:
                self._conflict()
            raise

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
        reply = self._call(lambda client: script(keys=self._keys, args=args))
        grant, epoch, slots, held = (int(x) for x in reply)
        with self._cond:
            if queue:
                self._queued = grant < want
            self._slots = slots
            self._fleet_in_flight = held
            # Ours in Redis at this reply: live, just granted, registered, released but unsent.
            mine = len(self._live) + grant + len(self._releases)
            mine += sum(1 for lease in self._local.values() if lease is not None)
            self._others_held = max(0, held - mine)
            self._freed_since_look = 0
            self._epoch = epoch
        return [f"{self._me}:{first + i}" for i in range(grant)], epoch

    def _release_args(self, lease_id: str, outcome: _Notice, epoch: int) -> list[Any]:
        """The RELEASE script's arguments: the learning steps are AdaptiveLimiter's own."""
        fixed = self._quota or 0
        return [
            lease_id,
            outcome,
            epoch,
            fixed,
            self._min,
            self._max,
            PROBE_ROUNDS,
            FAST_PROBE_ROUNDS,
        ]

    def _release_remote(self, releases: list[tuple[str, _Notice, int]]) -> None:
        script = self._connection.scripts.release
        keys = [self._keys[0], self._keys[4]]

        def send(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for lease_id, outcome, epoch in releases:
                script(keys=keys, args=self._release_args(lease_id, outcome, epoch), client=pipe)
            return list(pipe.execute())

        try:
            replies = self._call(send)
        except FleetUnavailable:
            with self._cond:
                self._releases[:0] = releases  # sent when Redis answers again
            raise
        with self._cond:
            # In Redis now: another worker may take them (a start notice frees nothing).
            self._freed_since_look += sum(1 for _, outcome, _ in releases if outcome != "started")
        if self._on_change is None or self._quota is not None:
            return
        for old_text, new_text in replies:
            old, new = float(old_text), float(new_text)
            if old and (math.floor(old) != math.floor(new) or new < old):
                self._on_change(old, new)

    def _renew(self) -> None:
        with self._cond:
            leases = list(self._live)
            leases += [lease[0] for lease in self._local.values() if lease is not None]
        if not leases:
            return
        script = self._connection.scripts.renew
        args: list[Any] = [self._lease_ms, *leases]
        self._note_lost(int(self._call(lambda client: script(keys=self._keys[:1], args=args))))

    def _note_lost(self, lost: int) -> None:
        if lost > 0:
            # Expired while Redis was away or slow: counted again now, as the calls still run.
            with self._cond:
                self._lost += lost
            emit("fleet_lease_lost", level="warning", key=self.key, leases=lost)

    def _leave_queue(self) -> None:
        queue, seen = self._keys[1], self._keys[2]

        def leave(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(queue, self._me)
            pipe.zrem(seen, self._me)
            pipe.execute()

        self._call(leave)
        with self._cond:
            self._queued = False

    # -- shutting down -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker, give every held lease back, and leave the fleet's queue.

        Waiters wake with :class:`~asr_resilience.limits.LimiterClosedError`, as later acquires
        fail; permits still held afterwards release locally only. Idempotent.
        """
        self._unsubscribe()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # Its Redis calls time out (socket timeout); past this bound it is a daemon left
            # to finish on its own, and the leases below are released from here regardless.
            thread.join(_CLOSE_WAIT)
        with self._cond:
            releases = self._releases
            self._releases = []
            leases = list(self._live)
            leases += [lease[0] for lease in self._local.values() if lease is not None]
            self._live.clear()
            self._local.clear()
        releases += [(lease_id, "dropped", 0) for lease_id in leases]
        try:
            if releases:
                self._release_remote(releases)
            self._leave_queue()
        except FleetUnavailable:
            pass  # the leases expire on their own within lease_ttl
        # Fleet waiters go to the local share, which is closed: they raise LimiterClosedError.
        self._fallback.close()
        self._divert()

    def __repr__(self) -> str:
        return (
            f"FleetLimiter({self.key!r}, slots={self._slots}, in_flight={len(self._live)}, "
            f"waiting={len(self._waiters)}, healthy={self._connection.healthy})"
        )


def _drop(permit: Permit) -> None:
    permit.release("dropped")

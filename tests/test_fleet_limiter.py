"""Tests for asr_resilience.fleet._limiter against a real Redis: leases, contention, fairness."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import fleet_support as fs

fs.require_redis_py()

from asr_resilience.fleet import (  # noqa: E402
    FleetConnection,
    FleetKeyConflict,
    FleetLimiter,
    FleetPermit,
)
from asr_resilience.limits import AdaptiveLimiter, Permit, get_scope  # noqa: E402
from asr_resilience.policy import Policy  # noqa: E402
from asr_resilience.policy._model import ConcurrencySettings, FleetSettings  # noqa: E402

redis_url = pytest.fixture(fs.redis_url)
prefix = pytest.fixture(fs.prefix)
events = pytest.fixture(fs.events)
private_redis = pytest.fixture(fs.private_redis)
CALL_ROUND_TRIPS = fs.CALL_ROUND_TRIPS


@pytest.fixture
def connection(redis_url: str) -> Iterator[FleetConnection]:
    """A connection of the test's own (its health state is not shared with other tests)."""
    conn = FleetConnection.from_url(redis_url, probe_interval=0.05)
    yield conn
    conn.close()


@pytest.fixture
def make(connection: FleetConnection, prefix: str) -> Iterator[Any]:
    """Build limiters on the test's key (each one a separate "worker"); closed afterwards."""
    built: list[FleetLimiter] = []

    def build(**kwargs: Any) -> FleetLimiter:
        conn = kwargs.pop("connection", connection)
        limiter = FleetLimiter(conn, f"{prefix}limiter:{{acct}}", **kwargs)
        built.append(limiter)
        return limiter

    yield build
    for limiter in built:
        limiter.close()


def _take(limiter: FleetLimiter, timeout: float = 5.0) -> Permit:
    permit = limiter.acquire_sync(timeout=timeout)
    assert permit is not None
    return permit


def test_quota_caps_leases_and_release_frees_a_slot(make: Any) -> None:
    """With quota 2 a third caller times out; a release lets it in; leases live in Redis."""
    limiter = make(quota=2)
    first, second = _take(limiter), _take(limiter)
    assert isinstance(first, FleetPermit)
    assert limiter.acquire_sync(timeout=0.05) is None
    assert limiter.acquire_sync(timeout=0) is None
    assert limiter.fleet_stats()["in_flight"] == 2
    first.release("success")
    third = _take(limiter)
    assert limiter.fleet_stats()["in_flight"] == 2
    for permit in (second, third):
        permit.release("success")
    fs.wait_until(lambda: limiter.fleet_stats()["in_flight"] == 0, what="leases released")


def test_two_workers_share_one_quota(make: Any) -> None:
    """Two limiters on one key (two workers) together never exceed the quota."""
    worker_a, worker_b = make(quota=3), make(quota=3)
    held = [_take(worker_a), _take(worker_b), _take(worker_a)]
    assert worker_b.acquire_sync(timeout=0.05) is None
    assert worker_a.acquire_sync(timeout=0) is None
    held[0].release("dropped")
    held.append(_take(worker_b))
    for permit in held[1:]:
        permit.release("success")


def test_waiting_thread_gets_the_released_slot(make: Any) -> None:
    """A thread blocked in acquire_sync gets the slot as soon as it is released."""
    limiter = make(quota=1)
    permit = _take(limiter)
    got: list[Permit | None] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire_sync(timeout=10)))
    waiter.start()
    fs.wait_until(lambda: limiter.stats()["waiting"] == 1, what="the waiter to queue")
    started = time.monotonic()
    permit.release("success")
    waiter.join()
    assert got[0] is not None
    assert time.monotonic() - started < 1.0
    got[0].release("success")


async def test_async_acquire_release_and_cancellation(make: Any) -> None:
    """Tasks wait without blocking the loop; a cancelled waiter leaves no slot behind."""
    limiter = make(quota=1)
    permit = await limiter.acquire(timeout=5)
    assert permit is not None
    waiting = asyncio.ensure_future(limiter.acquire(timeout=10))
    await asyncio.sleep(0)
    assert await limiter.acquire(timeout=0.05) is None
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    permit.release("success")
    again = await limiter.acquire(timeout=5)
    assert again is not None
    assert limiter.fleet_stats()["in_flight"] == 1
    again.release("success")


async def test_many_tasks_of_one_process_get_through(
    make: Any, connection: FleetConnection
) -> None:
    """250 tasks of one process all get through a quota of 5, never more than 5 at once."""
    limiter = make(quota=5)
    peak = 0
    active = 0

    async def call() -> None:
        nonlocal peak, active
        permit = await limiter.acquire(timeout=30)
        assert permit is not None
        active += 1
        peak = max(peak, active)
        for _ in range(CALL_ROUND_TRIPS):  # the "call": real I/O with the slot held
            await asyncio.to_thread(connection.client.ping)
        active -= 1
        permit.release("success")

    await asyncio.gather(*(call() for _ in range(250)))
    assert peak == 5


def test_held_lease_is_renewed_past_its_ttl(make: Any, connection: FleetConnection) -> None:
    """A permit held longer than lease_ttl keeps its lease: the renewer extends it."""
    holder, other = make(quota=1, lease_ttl=0.5), make(quota=1, lease_ttl=0.5)
    permit = _take(holder)
    assert isinstance(permit, FleetPermit)
    leases = f"{holder.key}:leases"
    first_expiry = connection.client.zscore(leases, permit.lease_id)

    def server_ms() -> float:
        seconds, micros = connection.client.time()
        return float(seconds * 1000 + micros // 1000)

    fs.wait_until(lambda: server_ms() > first_expiry + 300, what="the first expiry to pass")
    assert connection.client.zscore(leases, permit.lease_id) > first_expiry
    assert other.acquire_sync(timeout=0) is None
    permit.release("success")


def test_killed_worker_slots_come_back_within_lease_ttl(redis_url: str, prefix: str) -> None:
    """SIGKILL a worker holding every slot: the slots are free again within lease_ttl."""
    lease_ttl = 0.6
    holding = fs.CONTEXT.Event()
    worker = fs.spawn(fs.hold_slots, redis_url, prefix, 2, lease_ttl, holding, 2)
    connection = FleetConnection.from_url(redis_url)
    limiter = FleetLimiter(connection, f"{prefix}limiter:{{acct}}", quota=2, lease_ttl=lease_ttl)
    try:
        assert holding.wait(30), "the worker never took its slots"
        assert limiter.acquire_sync(timeout=0) is None
        fs.kill(worker)
        killed = time.monotonic()
        permits = [_take(limiter, timeout=5), _take(limiter, timeout=5)]
        back_after = time.monotonic() - killed
        assert back_after < lease_ttl + 0.5, back_after
        for permit in permits:
            permit.release("success")
    finally:
        if worker.is_alive():
            fs.kill(worker)
        limiter.close()
        connection.close()


def test_acquire_is_atomic_under_contention_from_processes(redis_url: str, prefix: str) -> None:
    """4 processes x 4 threads on quota 3: never more than 3 holders, every round completes."""
    processes, threads, rounds, quota = 4, 4, 15, 3
    start = fs.CONTEXT.Event()
    results = fs.CONTEXT.Queue()
    workers = [
        fs.spawn(fs.contend, redis_url, prefix, quota, threads, rounds, start, results, f"w{i}")
        for i in range(processes)
    ]
    start.set()
    granted = dict(results.get(timeout=60) for _ in workers)
    fs.join_all(workers)
    assert sum(granted.values()) == processes * threads * rounds
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert int(client.get(f"{prefix}high") or 0) == quota  # reached, never exceeded
        assert int(client.get(f"{prefix}active") or 0) == 0
    finally:
        client.close()


def test_queued_worker_is_served_before_a_greedy_one(make: Any) -> None:
    """The fleet serves workers in ticket order: a freed slot goes to the worker queued first."""
    greedy, patient = make(quota=1), make(quota=1)
    held = _take(greedy)
    order: list[str] = []
    permits: dict[str, Permit] = {}

    def wait_for(name: str, limiter: FleetLimiter) -> None:
        permit = limiter.acquire_sync(timeout=10)
        assert permit is not None
        order.append(name)
        permits[name] = permit

    patient_thread = threading.Thread(target=wait_for, args=("patient", patient))
    patient_thread.start()
    fs.wait_until(lambda: greedy.fleet_stats()["queued"] == 1, what="patient to queue")
    greedy_thread = threading.Thread(target=wait_for, args=("greedy", greedy))
    greedy_thread.start()
    fs.wait_until(lambda: greedy.fleet_stats()["queued"] == 2, what="greedy to queue")
    held.release("success")  # the greedy worker polls at once after its own release
    patient_thread.join()
    assert order == ["patient"]
    permits["patient"].release("success")
    greedy_thread.join()
    assert order == ["patient", "greedy"]
    permits["greedy"].release("success")


def test_no_worker_starves_against_a_busier_one(redis_url: str, prefix: str) -> None:
    """A 1-thread worker against an 8-thread one on quota 1 gets about every other slot."""
    start, stop = fs.CONTEXT.Event(), fs.CONTEXT.Event()
    ready = fs.CONTEXT.Semaphore(0)
    results = fs.CONTEXT.Queue()
    busy = fs.spawn(fs.compete, redis_url, prefix, 1, 8, ready, start, stop, results, "busy")
    lone = fs.spawn(fs.compete, redis_url, prefix, 1, 1, ready, start, stop, results, "lone")
    for _ in range(2):  # both workers imported and connected: the race starts for both at once
        assert ready.acquire(timeout=60), "a worker process did not start"
    start.set()
    connection = FleetConnection.from_url(redis_url)
    ticket = f"{prefix}limiter:{{acct}}:ticket"
    try:
        # Run until the fleet has queued enough turns to judge (Redis state, bounded).
        fs.wait_until(
            lambda: int(connection.client.get(ticket) or 0) >= 150, timeout=20, what="150 turns"
        )
    finally:
        stop.set()
        connection.close()
    granted = dict(results.get(timeout=30) for _ in range(2))
    fs.join_all([busy, lone])
    share = granted["lone"] / (granted["busy"] + granted["lone"])
    # Round-robin between workers gives the lone one about 1/2; a race between threads would
    # give it about 1/9 (one thread of nine).
    assert share > 0.35, granted


def test_adaptive_limit_grows_on_success_and_a_refusal_sets_it_to_the_leases_held(
    make: Any,
) -> None:
    """Without a quota the fleet limit grows on successes; a round of 40000005 cuts it once, to
    the leases still held anywhere in the fleet."""
    worker_a = make(initial=2, min_limit=1, max_limit=16)
    worker_b = make(initial=2, min_limit=1, max_limit=16)
    for _ in range(6):
        permits = [_take(worker_a), _take(worker_b)]
        for permit in permits:
            permit.release("success")
    # Releases are sent by each limiter's worker thread: wait until all of them have landed.
    fs.wait_until(lambda: worker_a.fleet_stats()["in_flight"] == 0, what="the releases")
    before = worker_a.fleet_stats()
    assert before["limit"] >= 5  # slow start stops where half the slots go unused
    held = [_take(worker_a), _take(worker_a), _take(worker_b)]
    same_round = [_take(worker_a), _take(worker_b)]
    for permit in same_round:
        permit.release("throttled")  # one 40000005 per worker, same round
    fs.wait_until(lambda: worker_a.fleet_stats()["in_flight"] == len(held), what="the refusals")
    after = worker_b.fleet_stats()
    assert after["limit"] == len(held)  # what was in flight when the last refusal came back
    assert after["epoch"] == before["epoch"] + 1  # the second throttle of the round did not cut
    for permit in held:
        permit.release("dropped")


def test_a_started_call_teaches_the_fleet_once(make: Any) -> None:
    """``started()`` grows a learning fleet's limit as a success would; the success that ends
    the call later does not grow it again."""
    worker = make(initial=2, min_limit=1, max_limit=16)
    permits = [_take(worker), _take(worker)]
    for permit in permits:
        permit.started()
    fs.wait_until(lambda: worker.fleet_stats()["limit"] == 4.0, what="two start notices")
    for permit in permits:
        permit.release("success")
    fs.wait_until(lambda: worker.fleet_stats()["in_flight"] == 0, what="the releases")
    assert worker.fleet_stats()["limit"] == 4.0


def test_adaptive_fleet_converges_on_an_unknown_quota(
    make: Any, connection: FleetConnection
) -> None:
    """Two workers, 12 threads, a vendor that throttles above 3 in flight: the limit settles.

    As the gateway does, the vendor refuses a call at its start (the 40000005 answers the start
    directive), so a refusal comes back while the calls that filled the quota still run.
    """
    quota = 3
    workers = [make(initial=1, min_limit=1, max_limit=32) for _ in range(2)]
    lock = threading.Lock()
    in_flight = 0
    outcomes: list[str] = []

    def call(limiter: FleetLimiter) -> None:
        nonlocal in_flight
        for _ in range(40):
            permit = limiter.acquire_sync(timeout=20)
            assert permit is not None
            with lock:
                in_flight += 1
                throttled = in_flight > quota
                if throttled:
                    in_flight -= 1
                    outcomes.append("throttled")
            if throttled:
                permit.release("throttled")
                continue
            for _ in range(CALL_ROUND_TRIPS):  # the "call": real I/O with the slot held
                connection.client.ping()
            with lock:
                in_flight -= 1
                outcomes.append("success")
            permit.release("success")

    threads = [threading.Thread(target=call, args=(workers[i % 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = workers[0].fleet_stats()
    assert quota / 2 <= final["limit"] <= 2 * quota + 1, final
    late = outcomes[len(outcomes) // 2 :]
    assert late.count("throttled") / len(late) < 0.35, late.count("throttled")


def test_redis_down_at_start_uses_the_fallback_share(events: list[str]) -> None:
    """No Redis at all: calls still get slots, ceil(quota * fallback_share) per process."""
    connection = FleetConnection.from_url(f"redis://127.0.0.1:{fs.free_port()}/0")
    limiter = FleetLimiter(connection, "asr-test:none:limiter:{acct}", quota=8, fallback_share=0.25)
    try:
        started = time.monotonic()
        permits = [_take(limiter), _take(limiter)]
        assert limiter.acquire_sync(timeout=0.05) is None
        assert time.monotonic() - started < 1.0
        assert not any(isinstance(p, FleetPermit) for p in permits)
        assert events.count("asr_resilience.fleet_unavailable") == 1
        for permit in permits:
            permit.release("success")
    finally:
        limiter.close()
        connection.close()


def test_waiters_move_to_local_limits_when_redis_dies(
    private_redis: fs.RedisServer, events: list[str]
) -> None:
    """A caller waiting for a fleet slot moves to the local share when Redis goes away mid-wait,
    and is served there as soon as the share has room: the other worker's slot still counts (it
    may still be running), this worker's own release makes room."""
    connection = FleetConnection.from_url(private_redis.url, probe_interval=0.05)
    limiter = FleetLimiter(connection, "limiter:{acct}", quota=2, fallback_share=1.0)
    other = FleetLimiter(connection, "limiter:{acct}", quota=2, fallback_share=1.0)
    try:
        # The other worker first: this worker's last look at the fleet sees its slot taken.
        elsewhere = _take(other)
        held = _take(limiter)
        got: list[Permit | None] = []
        waiter = threading.Thread(target=lambda: got.append(limiter.acquire_sync(timeout=20)))
        waiter.start()
        fs.wait_until(lambda: limiter.stats()["waiting"] == 1, what="the waiter to queue")
        private_redis.kill()
        fs.wait_until(
            lambda: limiter._fallback.stats()["waiting"] == 1, what="the waiter to go local"
        )
        assert limiter.stats()["waiting"] == 0
        assert not got  # the fleet's two slots are both taken: no room in the local share yet
        held.release("success")
        waiter.join()
        assert got[0] is not None
        assert not isinstance(got[0], FleetPermit)
        assert "asr_resilience.fleet_unavailable" in events
        got[0].release("success")
        elsewhere.release("success")
    finally:
        limiter.close()
        other.close()
        connection.close()


def test_redis_restart_mid_run(private_redis: fs.RedisServer, events: list[str]) -> None:
    """Calls keep getting slots through a Redis restart; one warning each way; the fleet resumes."""
    connection = FleetConnection.from_url(private_redis.url, probe_interval=0.05)
    limiter = FleetLimiter(connection, "limiter:{acct}", quota=4, lease_ttl=1.0)
    kinds: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            permit = limiter.acquire_sync(timeout=2)
            if permit is None:
                failures.append("no slot")
                continue
            kinds.append("fleet" if isinstance(permit, FleetPermit) else "local")
            permit.release("success")

    runner = threading.Thread(target=loop)
    runner.start()
    try:
        fs.wait_until(lambda: "fleet" in kinds, what="fleet permits")
        private_redis.kill()
        fs.wait_until(lambda: "local" in kinds, what="local permits after the crash")
        private_redis.start()
        fs.wait_until(lambda: "asr_resilience.fleet_recovered" in events, what="the recovery event")
        seen = len(kinds)
        fs.wait_until(lambda: "fleet" in kinds[seen:], what="fleet permits after recovery")
    finally:
        stop.set()
        runner.join()
        limiter.close()
        connection.close()
    assert failures == []
    assert events.count("asr_resilience.fleet_unavailable") == 1
    assert events.count("asr_resilience.fleet_recovered") == 1


def test_scope_builds_a_fleet_limiter_when_enabled(redis_url: str, prefix: str) -> None:
    """get_scope gives a FleetLimiter keyed by prefix and scope name when fleet is enabled."""
    from asr_resilience.fleet import close_shared_connections

    fleet = FleetSettings(enabled=True, redis_url=redis_url, key_prefix=prefix, quota=3)
    try:
        scope = get_scope("appkey-123", Policy(fleet=fleet))
        assert isinstance(scope.limiter, FleetLimiter)
        assert scope.limiter.key == f"{prefix}limiter:{{appkey-123}}"
        adaptive = Policy(concurrency=ConcurrencySettings(adaptive=True))
        assert isinstance(get_scope("local-only", adaptive).limiter, AdaptiveLimiter)
        assert get_scope("nothing", Policy()).limiter is None
    finally:
        from asr_resilience.limits import reset_scopes

        reset_scopes()
        close_shared_connections()


def test_resilient_calls_share_the_fleet_quota(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """@resilient with a fleet: policy: 8 threads of calls, never more than the quota in flight."""
    import asr_resilience as ar
    from asr_resilience.fleet import close_shared_connections

    from .helpers import write_policy

    policy = write_policy(
        tmp_path,
        f"fleet: {{enabled: true, redis_url: '{redis_url}', key_prefix: '{prefix}', "
        "quota: 2, lease_ttl: 5s}\n",
    )
    lock = threading.Lock()
    active = peak = 0
    import redis

    vendor = redis.Redis.from_url(redis_url)

    @ar.resilient(policy, scope="appkey-fleet")
    def recognize() -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        for _ in range(CALL_ROUND_TRIPS):  # the "call": real I/O with the slot held
            vendor.ping()
        with lock:
            active -= 1
        return "ok"

    try:
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.extend(recognize() for _ in range(5)))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == ["ok"] * 40
        assert peak == 2
    finally:
        from asr_resilience.limits import reset_scopes

        reset_scopes()
        close_shared_connections()
        vendor.close()


# -- recovery keeps the quota --------------------------------------------------------------------


def _live_leases(url: str, key: str) -> int:
    """Leases in Redis that have not expired (the fleet's own count of calls in flight)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
        return int(client.zcount(f"{key}:leases", f"({seconds * 1000 + micros // 1000}", "+inf"))
    finally:
        client.close()


def test_local_holders_become_leases_when_redis_returns(
    private_redis: fs.RedisServer, events: list[str]
) -> None:
    """Slots taken locally during an outage are leases after it: nobody overfills the quota."""
    key = "limiter:{acct}"
    conns = [FleetConnection.from_url(private_redis.url, probe_interval=0.05) for _ in range(3)]
    a, b, c = (FleetLimiter(conn, key, quota=4, fallback_share=0.5) for conn in conns)
    try:
        private_redis.kill()
        local = [_take(a), _take(a), _take(b), _take(b)]  # each worker's share: 2
        assert not any(isinstance(p, FleetPermit) for p in local)
        assert a.acquire_sync(timeout=0) is None  # the share is full
        private_redis.start()  # empty: as after a crash
        fs.wait_until(lambda: a.admitting and b.admitting, what="both workers to resume")
        assert _live_leases(private_redis.url, key) == 4
        assert a.stats()["local_registered"] == b.stats()["local_registered"] == 2
        # Worker c never saw the outage: the fleet is full for it too.
        assert c.acquire_sync(timeout=0) is None
        assert c.acquire_sync(timeout=0.1) is None
        for permit in local[:2]:
            permit.release("success")  # their leases go with them
        fleet = [_take(c), _take(c)]
        assert all(isinstance(p, FleetPermit) for p in fleet)
        assert _live_leases(private_redis.url, key) == 4
        assert c.acquire_sync(timeout=0) is None
        for permit in local[2:] + fleet:
            permit.release("success")
        fs.wait_until(lambda: _live_leases(private_redis.url, key) == 0, what="every lease back")
    finally:
        for limiter in (a, b, c):
            limiter.close()
        for conn in conns:
            conn.close()


def test_fleet_slots_held_through_an_outage_count_against_the_local_share(
    private_redis: fs.RedisServer,
) -> None:
    """While Redis is away, the fleet slots still held fill the local share before new calls."""
    connection = FleetConnection.from_url(private_redis.url, probe_interval=0.05)
    limiter = FleetLimiter(connection, "limiter:{acct}", quota=4, fallback_share=0.5)
    try:
        held = [_take(limiter), _take(limiter)]
        private_redis.kill()
        assert limiter.acquire_sync(timeout=0.2) is None  # 2 still in flight = the share
        assert limiter.stats()["fallback_in_flight"] == 2
        held[0].release("success")
        local = _take(limiter, timeout=5)
        assert not isinstance(local, FleetPermit)
        assert limiter.acquire_sync(timeout=0) is None
        private_redis.start()
        fs.wait_until(lambda: limiter.admitting, what="the limiter to resume")
        # The fleet slot still held and the local one are both leases again.
        assert _live_leases(private_redis.url, limiter.key) == 2
        for permit in (held[1], local):
            permit.release("success")
    finally:
        limiter.close()
        connection.close()


def test_a_worker_over_its_share_at_the_outage_shrinks_the_others_local_share(
    private_redis: fs.RedisServer,
) -> None:
    """Cut off while another worker holds 3 of 4, a worker admits only the 1 slot left."""
    conns = [FleetConnection.from_url(private_redis.url, probe_interval=0.05) for _ in range(2)]
    big, small = (FleetLimiter(c, "limiter:{acct}", quota=4, fallback_share=0.5) for c in conns)
    try:
        big_held = [_take(big) for _ in range(3)]
        small_held = _take(small)  # its last look at the fleet: the others hold 3
        private_redis.kill()
        # Share 2 each, but the big worker's 3 run on: the small one may run 1 in all.
        assert small.acquire_sync(timeout=0.2) is None
        assert big.acquire_sync(timeout=0.2) is None
        small_held.release("success")
        local = _take(small, timeout=5)
        assert not isinstance(local, FleetPermit)
        big_held[0].release("success")
        assert small.acquire_sync(timeout=0) is None  # it cannot see the big worker's release
        private_redis.start()
        fs.wait_until(lambda: small.admitting and big.admitting, what="both to resume")
        assert small.fallback.slots == 2  # the ceiling is lifted with the fleet back
        for permit in (*big_held[1:], local):
            permit.release("success")
    finally:
        for limiter in (big, small):
            limiter.close()
        for conn in conns:
            conn.close()


def test_quota_holds_through_a_redis_restart_under_load(private_redis: fs.RedisServer) -> None:
    """Two workers, 8 threads, quota 4, Redis killed and restarted: never more than 4 in flight."""
    import redis

    quota = 4
    key = "limiter:{acct}"
    conns = [FleetConnection.from_url(private_redis.url, probe_interval=0.05) for _ in range(2)]
    # A generous grace: on a loaded machine a worker's probe may run late.
    workers = [
        FleetLimiter(conn, key, quota=quota, fallback_share=0.5, lease_ttl=1.0, recovery_grace=0.5)
        for conn in conns
    ]
    vendor = redis.Redis.from_url(fs.SHARED_URL)  # the "calls" talk to a server that stays up
    lock = threading.Lock()
    in_flight = 0
    peaks = {"before": 0, "outage": 0, "after": 0}
    phase = "before"
    kinds: list[str] = []
    stop = threading.Event()

    def call(limiter: FleetLimiter) -> None:
        nonlocal in_flight
        while not stop.is_set():
            permit = limiter.acquire_sync(timeout=5)
            assert permit is not None
            with lock:
                in_flight += 1
                peaks[phase] = max(peaks[phase], in_flight)
                kinds.append("fleet" if isinstance(permit, FleetPermit) else "local")
            for _ in range(CALL_ROUND_TRIPS):
                vendor.ping()
            with lock:
                in_flight -= 1
            permit.release("success")

    threads = [threading.Thread(target=call, args=(workers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        fs.wait_until(lambda: kinds.count("fleet") >= 50, timeout=20, what="fleet calls")
        phase = "outage"
        private_redis.kill()
        fs.wait_until(lambda: kinds.count("local") >= 50, timeout=20, what="local calls")
        private_redis.start()
        phase = "after"
        fs.wait_until(lambda: all(w.admitting for w in workers), timeout=20, what="resume")
        seen = len(kinds)
        fs.wait_until(lambda: kinds[seen:].count("fleet") >= 100, timeout=20, what="fleet again")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for limiter in workers:
            limiter.close()
        for conn in conns:
            conn.close()
        vendor.close()
    assert max(peaks.values()) <= quota, peaks
    assert peaks["after"] == quota, peaks  # the quota is used, not only respected


# -- a key of the wrong type ----------------------------------------------------------------------


def test_wrong_type_key_is_repaired_with_one_warning(make: Any, redis_url: str) -> None:
    """A string SET over the leases key: one warning naming it, repaired, no outage flood."""
    import redis
    import structlog

    limiter = make(quota=2, lease_ttl=5)
    leases = f"{limiter.key}:leases"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.set(leases, "not a sorted set")
        with structlog.testing.capture_logs() as logs:
            first = _take(limiter)  # local while the key is repaired: the call is not refused
            first.release("success")
            fs.wait_until(lambda: limiter.admitting, what="the limiter to resume")
            assert client.type(leases) in ("zset", "none")
            for _ in range(20):  # many calls, each one a round trip to Redis
                permit = _take(limiter)
                assert isinstance(permit, FleetPermit)
                permit.release("success")
            # Written over again: repaired again, quietly.
            client.delete(leases)
            client.set(leases, "again")
            _take(limiter).release("success")
            fs.wait_until(lambda: limiter.stats()["key_conflicts"] >= 2, what="the 2nd conflict")
            fs.wait_until(lambda: limiter.admitting, timeout=10, what="the limiter to resume")
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["event"] for e in warnings] == ["asr_resilience.fleet_key_conflict"], warnings
        assert warnings[0]["key"] == leases
        assert warnings[0]["found"] == "string"
        assert client.type(leases) in ("zset", "none")
    finally:
        client.close()


def test_wrong_type_key_does_not_mark_redis_down(make: Any, redis_url: str) -> None:
    """WRONGTYPE is not an outage: the shared connection stays healthy for everything else."""
    import redis

    limiter = make(quota=1)
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{limiter.key}:state", "oops")
        with pytest.raises(FleetKeyConflict):
            limiter.fleet_stats()
        assert limiter.connection.healthy
        fs.wait_until(lambda: limiter.admitting, what="the repair")
        assert limiter.connection.outages == 0
    finally:
        client.close()


def test_no_wait_reaches_the_redis_probe(private_redis: fs.RedisServer) -> None:
    """Under testing.no_wait the probe does not wait its interval: recovery is seen at once."""
    from asr_resilience.fleet import FleetUnavailable
    from asr_resilience.testing import no_wait

    connection = FleetConnection.from_url(private_redis.url, probe_interval=600.0)
    try:
        with no_wait():
            private_redis.kill()
            with pytest.raises(FleetUnavailable):
                connection.run(lambda client: client.ping())
            private_redis.start()
            fs.wait_until(lambda: connection.healthy, timeout=10, what="the probe to answer")
    finally:
        connection.close()

"""Resilient calls under concurrency: token storms, proactive refresh, adaptive limits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import asr_resilience as ar
from asr_resilience.limits import AdaptiveLimiter, get_scope
from asr_resilience.simulator import Account, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait
from asr_resilience.tokens import Token, TokenManager

from .audio_fixtures import tone
from .helpers import CountingProvider, write_policy


class RevokingServer:
    """Accepts only the newest token; revoke() makes every token issued so far invalid."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0

    def issue(self, provider: CountingProvider) -> Token:
        token = provider()
        with self.lock:
            self.valid.add(token.value)
        return token

    def revoke(self) -> None:
        with self.lock:
            self.valid.clear()

    def check(self, token: str) -> str:
        with self.lock:
            if token not in self.valid:
                self.rejected += 1
                raise ar.NlsError(
                    40000001, f"Gateway:ACCESS_DENIED:The token '{token}' is invalid!"
                )
            self.accepted += 1
        return "ok"


async def test_token_revoked_under_1000_mixed_callers() -> None:
    """1000 callers (tasks and threads) in flight when the token is revoked: 1 provider call."""
    server = RevokingServer()
    provider = CountingProvider()
    tokens = TokenManager(lambda: server.issue(provider))
    tokens.get_sync()
    assert provider.calls == 1
    n_tasks, n_threads = 800, 200
    arrived = 0
    arrived_lock = threading.Lock()
    all_in_flight = threading.Event()
    revoked = threading.Event()
    revoked_async = asyncio.Event()
    loop = asyncio.get_running_loop()

    def arrive() -> None:
        nonlocal arrived
        with arrived_lock:
            arrived += 1
            if arrived == n_tasks + n_threads:
                all_in_flight.set()

    @ar.resilient("default", tokens=tokens, scope="storm-mixed")
    async def acall(*, token: str = "") -> str:
        if not revoked_async.is_set():
            arrive()
            await revoked_async.wait()
        return server.check(token)

    @ar.resilient("default", tokens=tokens, scope="storm-mixed")
    def scall(*, token: str = "") -> str:
        if not revoked.is_set():
            arrive()
            revoked.wait()
        return server.check(token)

    tasks = [asyncio.create_task(acall()) for _ in range(n_tasks)]
    threads_done: list[str] = []

    def run_thread() -> None:
        threads_done.append(scall())

    threads = [threading.Thread(target=run_thread) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(all_in_flight.wait)
    server.revoke()
    revoked.set()
    loop.call_soon(revoked_async.set)
    results = await asyncio.gather(*tasks)

    def join_all() -> None:
        for thread in threads:
            thread.join()

    await asyncio.to_thread(join_all)
    assert results == ["ok"] * n_tasks
    assert threads_done == ["ok"] * n_threads
    assert provider.calls == 2  # the first token, and exactly one refresh
    assert server.rejected == n_tasks + n_threads
    assert server.accepted == n_tasks + n_threads


async def test_proactive_refresh_avoids_expiry_failures() -> None:
    """A token renewed refresh_ahead before expiry: no attempt ever fails on an expired token."""
    now = [1_000_000.0]
    issued = threading.Event()
    provider = CountingProvider()

    def provide() -> Token:
        value = provider().value
        issued.set()
        return Token(value, now[0] + 100)

    tokens = TokenManager(provide, refresh_ahead=10, clock=lambda: now[0])
    expiry: dict[str, float] = {}

    @ar.resilient("default", tokens=tokens, scope="proactive")
    async def call(*, token: str = "") -> str:
        held = tokens.peek_token()
        assert held is not None
        expiry.setdefault(token, held.expires_at or 0)
        if now[0] >= expiry[token]:
            raise ar.NlsError(40000001, "The token 'x' has expired")
        return token

    first = await call()
    issued.clear()
    now[0] += 95  # inside refresh_ahead: still valid, renewed in the background
    assert await call() == first
    await asyncio.to_thread(issued.wait)
    for _ in range(50):  # let the background task store the new token
        if tokens.peek_token() is not None and tokens.peek_token().value != first:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0)
    now[0] += 10  # the first token has expired now
    second = await call()
    assert second != first
    assert provider.calls == 2


async def test_adaptive_concurrency_finds_the_quota(tmp_path: Path) -> None:
    """With a quota of 5 unknown to the client, 200 calls succeed with few throttled attempts."""
    policy = write_policy(
        tmp_path,
        "concurrency: {adaptive: true, initial: 2, min: 1, max: 100}\n"
        "retry_budget: {enabled: false}\ndefaults: {deadline: 60s}\n",
    )
    quota = 5
    in_flight = 0
    peak = 0
    throttled = 0
    attempts = 0

    @ar.resilient(policy, scope="adaptive")
    async def call() -> str:
        nonlocal in_flight, peak, throttled, attempts
        attempts += 1
        if in_flight >= quota:
            throttled += 1
            raise ar.NlsError(40000005, "Gateway:TOO_MANY_REQUESTS:Too many requests!")
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            in_flight -= 1
        return "ok"

    with no_wait():
        results = await asyncio.gather(*(call() for _ in range(200)))
    assert results == ["ok"] * 200
    assert peak <= quota
    assert throttled / 200 < 0.25


async def test_waiting_for_a_slot_is_bounded_by_the_deadline(tmp_path: Path) -> None:
    """A caller that finds no free slot within its deadline gets DeadlineExceededError."""
    limits = "concurrency: {adaptive: true, initial: 1, min: 1, max: 1}\n"
    # One scope (one slot), two deadlines: the holder may wait, the caller may not.
    patient = write_policy(tmp_path, limits + "defaults: {deadline: 60s}\n")
    hasty = write_policy(tmp_path, limits + "defaults: {deadline: 300ms}\n")
    holding = asyncio.Event()
    release = asyncio.Event()

    @ar.resilient(patient, scope="slot-deadline")
    async def hold() -> str:
        holding.set()
        await release.wait()
        return "ok"

    @ar.resilient(hasty, scope="slot-deadline")
    async def call() -> str:
        return "ok"

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        with pytest.raises(ar.DeadlineExceededError) as info:
            await call()
        assert "slot" in str(info.value)
    finally:
        release.set()
    assert await holder == "ok"
    assert await call() == "ok"  # the slot came back


async def test_recognizer_reads_the_gateways_quota_off_its_refusal(tmp_path: Path) -> None:
    """Over loopback, quota 4 unknown to the client: the limit lands on it and the gateway's own
    count of sessions reaches the quota without a second round of refusals."""
    policy = write_policy(
        tmp_path,
        "concurrency: {adaptive: true, initial: 2, min: 1, max: 100}\n"
        "retry_budget: {enabled: false}\ndefaults: {deadline: 60s}\n",
    )
    quota = 4
    account = Account(name="loopback", appkeys=("loopback-appkey",), quota=quota)
    config = SimulatorConfig(service_time=0.02)
    async with Simulator(accounts=[account], config=config) as sim:
        scope = get_scope("loopback-quota", policy)
        limiter = scope.limiter
        assert isinstance(limiter, AdaptiveLimiter)
        recognizer = ar.Recognizer(
            sim.gateway_url, sim.appkey, sim.token(), policy, scope="loopback-quota"
        )
        audio = tone(200, 440)
        with no_wait():
            results = await asyncio.gather(*(recognizer.recognize(audio) for _ in range(40)))
        stats = sim.stats.snapshot()
    assert len(results) == 40
    assert stats["max_concurrent"]["loopback"] == quota
    assert quota - 1 <= limiter.slots <= quota + 1  # the quota, or one probe above it
    assert limiter.stats()["cuts"] >= 1

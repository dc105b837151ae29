"""Closing a limiter (local, fleet, or a scope's): waiters wake with LimiterClosedError."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import asr_resilience as ar
from asr_resilience.limits import (
    AdaptiveLimiter,
    Limiter,
    LimiterClosedError,
    Permit,
    get_scope,
    reset_scopes,
)
from asr_resilience.policy import ConcurrencySettings, Policy

from . import fleet_support as fs
from .helpers import until

ONE_SLOT = ConcurrencySettings(adaptive=True, initial=1, min=1, max=1)


@pytest.fixture(autouse=True)
def _fresh_scopes() -> Iterator[None]:
    """Every test starts and ends with an empty registry."""
    reset_scopes()
    yield
    reset_scopes()


def _held(limiter: AdaptiveLimiter) -> Permit:
    permit = limiter.acquire_sync(timeout=0)
    assert permit is not None
    return permit


def _waiting_thread(limiter: Limiter) -> tuple[threading.Thread, list[LimiterClosedError]]:
    """A thread queued in ``limiter.acquire_sync`` (30 s), and what it raises once woken."""
    raised: list[LimiterClosedError] = []

    def wait() -> None:
        try:
            limiter.acquire_sync(timeout=30)
        except LimiterClosedError as exc:
            raised.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    fs.wait_until(lambda: limiter.stats()["waiting"] == 1, what="the waiter to queue")
    return thread, raised


async def test_close_wakes_an_async_waiter_and_refuses_later_acquires() -> None:
    """A task waiting without a timeout raises LimiterClosedError at close; so does any later
    acquire; the permit held meanwhile is released as usual."""
    limiter = AdaptiveLimiter(ONE_SLOT)
    permit = _held(limiter)
    waiting = asyncio.create_task(limiter.acquire())
    await until(lambda: limiter.stats()["waiting"] == 1, "the waiter to queue")
    limiter.close()
    with pytest.raises(LimiterClosedError, match="closed"):
        await waiting
    with pytest.raises(LimiterClosedError):
        await limiter.acquire(timeout=1)
    with pytest.raises(LimiterClosedError):
        limiter.acquire_sync(timeout=0)
    permit.release("success")
    assert limiter.in_flight == 0
    assert limiter.stats()["waiting"] == 0
    limiter.close()  # idempotent


def test_close_wakes_a_waiting_thread() -> None:
    """A thread blocked in acquire_sync raises LimiterClosedError when the limiter closes."""
    limiter = AdaptiveLimiter(ONE_SLOT)
    permit = _held(limiter)
    thread, raised = _waiting_thread(limiter)
    limiter.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(raised) == 1
    assert isinstance(raised[0], ar.AsrResilienceError)
    assert isinstance(raised[0], RuntimeError)
    permit.release("success")


async def test_with_and_async_with_close_the_limiter() -> None:
    """Leaving a `with` or `async with` block closes the limiter."""
    with AdaptiveLimiter(ONE_SLOT) as limiter:
        _held(limiter).release("success")
    assert limiter.closed
    async with AdaptiveLimiter(ONE_SLOT) as other:
        permit = await other.acquire(timeout=1)
        assert permit is not None
        permit.release("success")
    assert other.closed
    with pytest.raises(LimiterClosedError):
        await other.acquire(timeout=1)


async def test_reset_scopes_wakes_a_call_waiting_for_a_slot() -> None:
    """A @resilient call queued for its scope's only slot raises LimiterClosedError (unchanged)
    when the scopes are closed; the next call gets a fresh scope and goes through."""
    policy = Policy(concurrency=ONE_SLOT)
    inside = asyncio.Event()
    leave = asyncio.Event()

    @ar.resilient(policy, scope="closing-scope")
    async def call() -> str:
        inside.set()
        await leave.wait()
        return "done"

    holder = asyncio.create_task(call())
    await inside.wait()
    limiter = get_scope("closing-scope", policy).limiter
    assert isinstance(limiter, AdaptiveLimiter)
    queued = asyncio.create_task(call())
    await until(lambda: limiter.stats()["waiting"] == 1, "the second call to queue")
    reset_scopes()
    with pytest.raises(LimiterClosedError):
        await queued
    leave.set()
    assert await holder == "done"
    assert limiter.in_flight == 0
    assert await call() == "done"  # a new scope, a new limiter
    assert get_scope("closing-scope", policy).limiter is not limiter


def test_fleet_close_wakes_its_waiters(redis_url: str, prefix: str) -> None:
    """A thread queued for a fleet slot raises LimiterClosedError when the fleet limiter
    closes; later acquires do too, and the leases are back in Redis."""
    fs.require_redis_py()
    from asr_resilience.fleet import FleetConnection, FleetLimiter

    connection = FleetConnection.from_url(redis_url, probe_interval=0.05)
    try:
        with FleetLimiter(connection, f"{prefix}limiter:{{close}}", quota=1) as limiter:
            permit = limiter.acquire_sync(timeout=5)
            assert permit is not None
            thread, raised = _waiting_thread(limiter)
        thread.join(10)
        assert not thread.is_alive()
        assert len(raised) == 1
        with pytest.raises(LimiterClosedError):
            limiter.acquire_sync(timeout=1)
        assert limiter.fleet_stats()["in_flight"] == 0
        permit.release("success")
    finally:
        connection.close()


redis_url = pytest.fixture(fs.redis_url)
prefix = pytest.fixture(fs.prefix)

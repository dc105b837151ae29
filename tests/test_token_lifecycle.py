"""TokenManager's lifecycle: close()/aclose(), ``with`` and ``async with``."""

from __future__ import annotations

import asyncio
import threading

import pytest

import asr_resilience as ar
from asr_resilience.tokens import Token, TokenManager

from .helpers import CountingProvider


def test_close_makes_later_calls_raise() -> None:
    """After close() current, get_sync and get raise a RuntimeError saying it is closed."""
    manager = TokenManager(CountingProvider())
    assert manager.get_sync(timeout=5).startswith("secret-token")
    manager.close()
    assert manager.closed
    with pytest.raises(RuntimeError, match="closed"):
        manager.current()
    with pytest.raises(RuntimeError, match="closed"):
        manager.get_sync(timeout=5)
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(manager.get(timeout=5))
    assert manager.peek_token() is None
    manager.close()  # again: nothing happens


def test_with_block_closes() -> None:
    """Leaving ``with`` closes the manager."""
    with TokenManager(CountingProvider()) as manager:
        manager.get_sync(timeout=5)
    assert manager.closed


async def test_aclose_cancels_a_refresh_task_and_settles_its_waiters() -> None:
    """aclose() cancels a refresh running as a task; its waiter gets TokenRefreshError."""
    entered = asyncio.Event()
    never = asyncio.Event()

    async def hanging() -> Token:
        entered.set()
        await never.wait()
        raise AssertionError("unreachable")

    manager = TokenManager(hanging)
    waiter = asyncio.create_task(manager.get(timeout=30))
    await entered.wait()
    (refresh,) = manager._tasks  # the refresh task the waiter joined
    await manager.aclose()
    assert refresh.done()
    with pytest.raises(ar.TokenRefreshError, match="closed"):
        await waiter


async def test_async_with_stops_the_background_refresh() -> None:
    """Leaving ``async with`` while a proactive refresh runs stops it; no token is kept."""
    entered = asyncio.Event()
    never = asyncio.Event()
    calls = 0

    async def provider() -> Token:
        nonlocal calls
        calls += 1
        if calls > 1:
            entered.set()
            await never.wait()
        return Token(f"tok-{calls}", expires_at=None)

    async with TokenManager(provider) as manager:
        await manager.get(timeout=5)
        manager.invalidate("tok-1")
        refresh = asyncio.create_task(manager.get(timeout=30))
        await entered.wait()
    assert manager.closed
    with pytest.raises(ar.TokenRefreshError):
        await refresh
    assert not manager._tasks


def test_a_thread_refresh_finishing_after_close_is_discarded() -> None:
    """A provider call in a worker thread cannot be stopped: its token is dropped on arrival."""
    release = threading.Event()
    entered = threading.Event()

    def slow() -> Token:
        entered.set()
        release.wait(30)
        return Token("late-token")

    manager = TokenManager(slow)
    outcome: list[BaseException | str] = []

    def wait() -> None:
        try:
            outcome.append(manager.get_sync(timeout=30))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert entered.wait(30)
    manager.close()
    waiter.join(30)
    assert isinstance(outcome[0], ar.TokenRefreshError)
    fetchers = [t for t in threading.enumerate() if t.name == "asr-resilience-token-fetch"]
    release.set()
    for fetcher in fetchers:
        fetcher.join(30)
    assert manager.peek_token() is None


def test_a_closed_manager_ends_a_resilient_call_with_its_error() -> None:
    """A call made with a closed manager propagates the RuntimeError, not a retry."""
    manager = TokenManager(CountingProvider())
    manager.close()
    calls = 0

    @ar.resilient("default", tokens=manager, scope="token-lifecycle-closed")
    def call(*, token: str = "") -> str:
        nonlocal calls
        calls += 1
        return token

    with pytest.raises(RuntimeError, match="closed"):
        call()
    assert calls == 0

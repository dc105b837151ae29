"""Tests for asr_resilience.limits._waiting: one wait primitive, one FIFO queue, two drivers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from asr_resilience.limits._waiting import (
    Blocking,
    Plan,
    WaiterQueue,
    run_async,
    run_sync,
)


def _plan(queue: WaiterQueue[str], lock: threading.Lock, dropped: list[str]) -> Plan[str | None]:
    """Join the queue and wait for a value, as a limiter's acquire does."""
    with lock:
        waiter = queue.join()
    return (yield from queue.wait(waiter, 10.0, dropped.append))


def _serve_when_queued(queue: WaiterQueue[str], lock: threading.Lock, value: str) -> None:
    """From another thread: hand ``value`` to the oldest waiter once there is one."""
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            with lock:
                if queue:
                    waiter = queue.serve(value)
                    done.set()
                    break
            done.wait(0.001)  # bounded poll of the queue's real state
        waiter.wake()

    threading.Thread(target=serve, daemon=True).start()


def test_sync_face_is_woken_from_another_thread() -> None:
    """A thread waiting in the queue gets the value another thread hands it."""
    lock = threading.Lock()
    queue: WaiterQueue[str] = WaiterQueue(lock)
    _serve_when_queued(queue, lock, "slot")
    assert run_sync(_plan(queue, lock, [])) == "slot"
    assert not queue


async def test_async_face_is_woken_from_another_thread() -> None:
    """A task waiting in the queue gets the value a thread hands it (call_soon_threadsafe)."""
    lock = threading.Lock()
    queue: WaiterQueue[str] = WaiterQueue(lock)
    _serve_when_queued(queue, lock, "slot")
    assert await run_async(_plan(queue, lock, [])) == "slot"


def test_served_before_waiting_does_not_wait() -> None:
    """A waiter settled before its caller starts waiting returns at once (no lost wake-up)."""
    lock = threading.Lock()
    queue: WaiterQueue[str] = WaiterQueue(lock)
    with lock:
        waiter = queue.join()
        queue.serve("early")
    assert waiter.wake()
    waiter.wait_sync(None)  # would hang if the wake-up were lost
    assert queue.leave(waiter) == "early"


def test_timeout_leaves_the_queue() -> None:
    """A waiter whose time runs out gets None and is out of the queue."""
    lock = threading.Lock()
    queue: WaiterQueue[str] = WaiterQueue(lock)

    def plan() -> Plan[str | None]:
        with lock:
            waiter = queue.join()
        return (yield from queue.wait(waiter, 0.01, lambda value: None))

    assert run_sync(plan()) is None
    assert len(queue) == 0


async def test_cancelled_after_hand_off_drops_the_value() -> None:
    """A task cancelled after it was handed a value gives it to ``drop``, then re-raises."""
    lock = threading.Lock()
    queue: WaiterQueue[str] = WaiterQueue(lock)
    dropped: list[str] = []
    task = asyncio.create_task(run_async(_plan(queue, lock, dropped)))
    for _ in range(100):
        if queue:
            break
        await asyncio.sleep(0)
    with lock:
        waiter = queue.serve("slot")
    waiter.wake()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dropped == ["slot"]


def test_fifo_order_and_redirect() -> None:
    """Values go to the oldest waiter first; redirect_all settles the rest without a value."""
    lock = threading.Lock()
    queue: WaiterQueue[int] = WaiterQueue(lock)
    with lock:
        waiters = [queue.join() for _ in range(3)]
        first = queue.serve(1)
        rest = queue.redirect_all()
    assert first is waiters[0]
    assert rest == waiters[1:]
    assert all(w.redirected and w.value is None for w in rest)
    assert not queue


async def test_blocking_step_runs_off_the_loop_and_undoes_when_cancelled() -> None:
    """A Blocking step runs in a thread; if its task is cancelled, undo gets the result."""
    release = threading.Event()
    undone: list[Any] = []
    undo_seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def fn() -> str:
        release.wait(10)
        return "permit"

    def undo(value: Any) -> None:
        undone.append(value)
        loop.call_soon_threadsafe(undo_seen.set)

    def plan() -> Plan[str]:
        return (yield Blocking(fn, undo=undo))  # type: ignore[no-any-return]

    task = asyncio.create_task(run_async(plan()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await asyncio.wait_for(undo_seen.wait(), 10)
    assert undone == ["permit"]
    assert run_sync(plan()) == "permit"

"""Waiting for a slot, written once for threads and asyncio tasks.

How this works
--------------
A limiter's acquire is a *plan*: a generator that does the bookkeeping (under the limiter's
lock, plain synchronous code) and yields a :class:`Step` wherever it must wait. Two small drivers
run a plan: :func:`run_sync` performs each step by blocking the thread, :func:`run_async` by
awaiting in the event loop. So the decisions exist once, and sync and async differ only at the
points where something waits (as tenacity's sync and async classes share ``iter()``). An
exception raised while waiting (``KeyboardInterrupt``, ``CancelledError``) is thrown back into
the plan at its ``yield``, so the plan's own ``except`` gives back a slot it was handed meanwhile.

A :class:`Waiter` is one caller's place in a :class:`WaiterQueue`, the FIFO both limiters use.
It is settled once, under the owner's lock, from any thread (a value handed over, or redirected
elsewhere) and woken after the lock is released: a ``threading.Event`` for a thread, a future
set through ``loop.call_soon_threadsafe`` for a task. Which face it has is decided when its
caller starts waiting, not when it joins the queue, so a plan need not know who runs it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

__all__ = ["Blocking", "Plan", "Step", "Wait", "Waiter", "WaiterQueue", "run_async", "run_sync"]

T = TypeVar("T")
R = TypeVar("R")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter(Generic[T]):
    """One caller queued for a value (a permit); settled at most once under the owner's lock."""

    __slots__ = ("_event", "_future", "_lock", "_loop", "redirected", "settled", "value")

    def __init__(self, lock: AbstractContextManager[Any]) -> None:
        self._lock = lock
        self.settled = False
        self.value: T | None = None
        self.redirected = False  # settled without a value: the caller must look elsewhere
        self._event: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def wait_sync(self, timeout: float | None) -> None:
        """Block the thread until woken or ``timeout`` seconds pass."""
        with self._lock:
            if self.settled:
                return
            event = self._event = threading.Event()
        event.wait(timeout)

    async def wait_async(self, timeout: float | None) -> None:
        """Wait in the running loop until woken or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.settled:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._loop, self._future = loop, future
        timer = None if timeout is None else loop.call_later(timeout, _resolve, future)
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()

    def wake(self) -> bool:
        """Wake the caller (after it was settled, outside the lock); False if it never can be.

        False means the caller's event loop is closed: its task will never run again to use
        what it was handed, so the owner takes it back.
        """
        event, loop, future = self._event, self._loop, self._future
        if event is not None:
            event.set()
        elif loop is not None and future is not None:
            if asyncio.events._get_running_loop() is loop:
                _resolve(future)
            else:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:
                    return False
        # Not waiting yet: it sees ``settled`` under the lock when it starts, and does not wait.
        return True


class WaiterQueue(Generic[T]):
    """First come, first served: the owner hands values to the oldest waiters under its lock."""

    __slots__ = ("_lock", "_on_leave", "_waiters")

    def __init__(
        self, lock: AbstractContextManager[Any], on_leave: Callable[[], None] | None = None
    ) -> None:
        self._lock = lock
        self._waiters: deque[Waiter[T]] = deque()
        self._on_leave = on_leave  # called under the lock when a waiter gives up

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:
        return bool(self._waiters)

    def join(self) -> Waiter[T]:
        """A new waiter at the back (the caller holds the lock)."""
        waiter: Waiter[T] = Waiter(self._lock)
        self._waiters.append(waiter)
        return waiter

    def serve(self, value: T) -> Waiter[T]:
        """Hand ``value`` to the oldest waiter (the caller holds the lock, then wakes it)."""
        waiter = self._waiters.popleft()
        waiter.value = value
        waiter.settled = True
        return waiter

    def redirect_all(self) -> list[Waiter[T]]:
        """Settle every waiter without a value (the caller holds the lock, then wakes them)."""
        waiters = list(self._waiters)
        self._waiters.clear()
        for waiter in waiters:
            waiter.settled = True
            waiter.redirected = True
        return waiters

    def wait(
        self, waiter: Waiter[T], timeout: float | None, drop: Callable[[T], None]
    ) -> Plan[T | None]:
        """Wait for ``waiter`` to be served; ``None`` if it timed out or was redirected.

        Interrupted or cancelled, it leaves the queue, or passes a value handed to it
        meanwhile to ``drop``, and re-raises.
        """
        try:
            yield Wait(waiter, timeout)
        except BaseException:
            value = self.leave(waiter)
            if value is not None:
                drop(value)
            raise
        return self.leave(waiter)

    def leave(self, waiter: Waiter[T]) -> T | None:
        """After a wait: what ``waiter`` was handed, or ``None`` and it is out of the queue."""
        with self._lock:
            if not waiter.settled:
                waiter.settled = True
                self._waiters.remove(waiter)
                if self._on_leave is not None:
                    self._on_leave()
            return waiter.value


class Step:
    """Something a plan waits for: performed by blocking (sync) or by awaiting (async)."""

    __slots__ = ()

    def run_sync(self) -> Any:
        raise NotImplementedError

    async def run_async(self) -> Any:
        raise NotImplementedError


class Wait(Step):
    """Wait until ``waiter`` is woken or ``timeout`` seconds pass; the plan reads the waiter."""

    __slots__ = ("timeout", "waiter")

    def __init__(self, waiter: Waiter[Any], timeout: float | None) -> None:
        self.waiter = waiter
        self.timeout = timeout

    def run_sync(self) -> None:
        self.waiter.wait_sync(self.timeout)

    async def run_async(self) -> None:
        await self.waiter.wait_async(self.timeout)


class Blocking(Step):
    """Call ``fn`` that may block on the network: in the thread, or off the event loop.

    A task cancelled while ``fn`` runs in its thread cannot stop it: ``undo`` gets what ``fn``
    returns then (a permit nobody will use), unless it is ``None``.
    """

    __slots__ = ("fn", "undo")

    def __init__(self, fn: Callable[[], Any], undo: Callable[[Any], None] | None = None) -> None:
        self.fn = fn
        self.undo = undo

    def run_sync(self) -> Any:
        return self.fn()

    async def run_async(self) -> Any:
        future = asyncio.get_running_loop().run_in_executor(None, self.fn)
        try:
            return await asyncio.shield(future)
        except BaseException:
            if self.undo is not None:
                future.add_done_callback(self._undo)
            raise

    def _undo(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        if result is not None and self.undo is not None:
            self.undo(result)


Plan = Generator[Step, Any, R]
"""An acquire written once: yields the steps it waits on, returns its result."""


def run_sync(plan: Plan[R]) -> R:
    """Run ``plan`` in this thread, blocking at each step."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            reply, error = step.run_sync(), None
        except BaseException as exc:  # the plan decides: it cleans up and re-raises
            reply, error = None, exc


async def run_async(plan: Plan[R]) -> R:
    """Run ``plan`` in the event loop, awaiting at each step."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            reply, error = await step.run_async(), None
        except BaseException as exc:  # the plan decides: it cleans up and re-raises
            reply, error = None, exc

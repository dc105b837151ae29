"""The events a stream holds for its caller: bounded, so a flooding gateway cannot fill memory.

A stream's reader puts sentence events in, the caller's ``async for`` takes them out. Two rules
keep the number held bounded whatever the gateway sends:

- past ``coalesce_at`` events held, an event that ``replaces`` the newest one held takes its
  place (a partial result supersedes the previous partial of the same sentence: the newest text
  is all a partial is for), counted in ``coalesced``;
- at ``limit`` events held, or ``max_size`` units of their ``size`` (text characters), :meth:`put`
  waits until the caller takes one: the reader stops reading the connection, the WebSocket's
  own receive queue fills, and TCP pushes back on the gateway. Nothing that matters (a sentence
  end, a begin) is ever dropped.

:meth:`push` (for the few notices a stream makes itself: reconnects, the end) does not wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Inbox"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """A bounded FIFO between one reader task and the caller's iterators."""

    __slots__ = (
        "_coalesce_at",
        "_held",
        "_items",
        "_limit",
        "_max_size",
        "_readable",
        "_replaces",
        "_size",
        "_writable",
        "coalesced",
        "peak",
    )

    def __init__(
        self,
        limit: int,
        coalesce_at: int,
        replaces: Callable[[T, T], bool],
        size: Callable[[T], int],
        max_size: int,
    ) -> None:
        self._limit = limit
        self._coalesce_at = coalesce_at
        self._replaces = replaces
        self._size = size
        self._max_size = max_size
        self._held = 0  # the size of the events held
        self._items: deque[T] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.coalesced = 0
        """Events replaced by a newer one before the caller took them."""
        self.peak = 0
        """The most events held at once."""

    def __len__(self) -> int:
        return len(self._items)

    def _full(self) -> bool:
        # An empty inbox always takes one event, however large: the stream cannot wedge.
        return bool(self._items) and (
            len(self._items) >= self._limit or self._held >= self._max_size
        )

    async def put(self, item: T) -> None:
        """Add ``item``, replacing the newest event past ``coalesce_at``; wait while full."""
        while True:
            items = self._items
            if len(items) >= self._coalesce_at and self._replaces(items[-1], item):
                self._held += self._size(item) - self._size(items[-1])
                items[-1] = item
                self.coalesced += 1
                return
            if not self._full():
                self.push(item)
                return
            self._writable.clear()
            await self._writable.wait()

    def push(self, item: T) -> None:
        """Add ``item`` now, past the limit if need be (for the stream's own few notices)."""
        self._items.append(item)
        self._held += self._size(item)
        self.peak = max(self.peak, len(self._items))
        self._readable.set()

    async def get(self) -> T:
        """The oldest event; waits for one."""
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._held -= self._size(item)
        if not self._full():
            self._writable.set()
        return item

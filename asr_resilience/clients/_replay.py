"""The replay buffer of a real-time stream: the audio a new task needs after a fault.

Positions are byte offsets of the stream (the audio the caller sent, from 0); times are ms of
it, for 16-bit mono PCM (docs/protocol.md "Audio frames": ``2 * sample_rate`` bytes a second). The
buffer holds the audio from the last committed point on — the end of the last delivered
sentence: audio before it belongs to sentences the caller already has, so no task needs it again.

Memory is bounded by ``max_seconds``. When appending would pass the bound, the oldest audio goes,
but only audio the current task has already been sent (``evictable_to``): that task still hears
it, only a *future* task could not. The audio dropped that way and never committed is an
unreplayable span: :meth:`take_gap` reports it once, when a resume has to start after it. Audio
no task has been sent yet is never dropped: while it fills the buffer, :meth:`has_room` says no
and the sender waits.

Every cut lands on a whole ms (16 bytes a ms at 8 kHz, 32 at 16 kHz), so the buffer's start is
an exact time and a resumed task's times can be offset by it without drift.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_SECONDS", "ReplayBuffer"]

DEFAULT_MAX_SECONDS = 60.0
"""Default bound: one minute of audio (1.9 MB at 16 kHz)."""


class ReplayBuffer:
    """Audio of a stream since its last committed point, bounded by ``max_seconds``."""

    __slots__ = ("_accounted", "_data", "_step", "bytes_per_second", "limit", "peak", "start")

    def __init__(self, bytes_per_second: int, max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
        if bytes_per_second <= 0 or max_seconds <= 0:
            raise ValueError("bytes_per_second and max_seconds must be positive")
        self.bytes_per_second = bytes_per_second
        # The smallest cut that is a whole ms and a whole 16-bit sample.
        self._step = bytes_per_second // 1000 if bytes_per_second % 1000 == 0 else 2
        self.limit = max(self._step, self._floor(int(max_seconds * bytes_per_second)))
        self._data = bytearray()
        self.start = 0
        """Stream position of the first byte held."""
        self._accounted = 0  # up to here audio was committed or reported as a gap
        self.peak = 0
        """Most bytes held at once."""

    # -- positions and times -------------------------------------------------------------------

    @property
    def end(self) -> int:
        """Stream position after the last byte held (= every byte the caller sent)."""
        return self.start + len(self._data)

    @property
    def size(self) -> int:
        return len(self._data)

    def ms(self, position: int) -> int:
        """The stream time (ms) of a position."""
        return position * 1000 // self.bytes_per_second

    def position(self, ms: int) -> int:
        """The position of a stream time, on a whole sample."""
        return self._floor(max(0, ms) * self.bytes_per_second // 1000)

    @property
    def start_ms(self) -> int:
        return self.ms(self.start)

    @property
    def peak_ms(self) -> int:
        return self.ms(self.peak)

    def _floor(self, position: int) -> int:
        return position - position % self._step

    # -- filling and draining ------------------------------------------------------------------

    def has_room(self, size: int, evictable_to: int) -> bool:
        """Whether ``size`` more bytes fit once the audio before ``evictable_to`` may go.

        An empty buffer always takes a frame, however large: the bound is on what is kept.
        """
        evictable = max(0, self._floor(min(evictable_to, self.end)) - self.start)
        return not self._data or len(self._data) - evictable + size <= self.limit

    def append(self, data: bytes, evictable_to: int) -> None:
        """Keep ``data``; past the bound, drop the oldest audio before ``evictable_to``."""
        self._data += data
        over = len(self._data) - self.limit
        if over > 0:
            evictable = max(0, self._floor(min(evictable_to, self.end)) - self.start)
            cut = min(evictable, -(-over // self._step) * self._step)
            self._drop(cut)
        self.peak = max(self.peak, len(self._data))

    def commit(self, ms: int) -> None:
        """A sentence ending at ``ms`` was delivered: audio before it is never needed again."""
        position = min(self.position(ms), self.end)
        if position > self.start:
            self._drop(position - self.start)
        self._accounted = max(self._accounted, position)

    def forget(self, position: int) -> None:
        """Drop the audio before ``position`` for good: a stream that will not resume."""
        position = min(position, self.end)
        if position > self.start:
            self._drop(position - self.start)
        self._accounted = max(self._accounted, self.start)

    def take_gap(self) -> tuple[int, int] | None:
        """The span (ms) dropped by the bound and not yet reported; reported once."""
        if self.start <= self._accounted:
            return None
        gap = (self.ms(self._accounted), self.start_ms)
        self._accounted = self.start
        return gap

    def read(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes from stream position ``position`` (at or after :attr:`start`)."""
        if position < self.start:
            raise ValueError(f"position {position} was dropped (the buffer starts at {self.start})")
        offset = position - self.start
        return bytes(self._data[offset : offset + size])

    def _drop(self, size: int) -> None:
        # bytearray deletes from the front in place without copying the rest (CPython).
        del self._data[:size]
        self.start += size

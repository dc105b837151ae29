"""Flow control of a real-time stream: how far a leg may be sent ahead of what its task heard.

The gateway hears audio at a bounded speed (docs/protocol.md "Limits"); whatever a sender pushes
beyond that waits in socket buffers, and a cut connection makes the next leg replay all of it
from the last delivered sentence. So a leg is sent at most ``max_unconfirmed`` seconds of audio
past the last time its task *reported*: every SentenceBegin, intermediate result and SentenceEnd
carries a time, the ms of the task's audio it has processed (docs/protocol.md "Events").

A sender past the window waits for the next report, but not for ever: silence and a sentence
without intermediate results bring no report until the gateway hears more (a sentence ends only
after its trailing silence), so once the gateway has had time to hear what it was sent the audio
counts as heard and the window moves on. That time is the unconfirmed audio divided by the
speed the gateway has shown — the audio between two reports in a row (the leg's start counting
as one) over the time between them, summed across the stream's legs; a wait for the deadline
between two reports measures the sender, not the gateway, and is left out — and never less than
real time: a gateway that keeps real time has heard it by then. Sans I/O: the stream does the
waiting, on an event that a report sets.
"""

from __future__ import annotations

from ._leg import Leg

__all__ = ["FlowWindow"]


class FlowWindow:
    """The window of one stream: ``room`` to send, ``report`` from the task, ``deadline``."""

    __slots__ = ("_heard_s", "_heard_seconds", "bytes_per_second", "size")

    def __init__(self, max_unconfirmed: float, bytes_per_second: int, step: int) -> None:
        self.bytes_per_second = bytes_per_second
        size = int(max_unconfirmed * bytes_per_second)
        self.size = max(step, size - size % step)
        """The window in bytes, on a whole sample."""
        self._heard_seconds = 0.0  # audio confirmed between two reports of a leg ...
        self._heard_s = 0.0  # ... and the wall time it took

    @property
    def speed(self) -> float:
        """How fast the gateway has been seen to hear audio, in multiples of real time (>= 1)."""
        if self._heard_s <= 0:
            return 1.0
        return max(1.0, self._heard_seconds / self._heard_s)

    def start(self, leg: Leg, now: float) -> None:
        """``leg`` starts: its start counts as a report of its first position."""
        leg.confirmed, leg.confirmed_at, leg.last_report = leg.offset, now, (leg.offset, now)

    def room(self, leg: Leg) -> int:
        """Bytes ``leg`` may still be sent (0 or less: wait for a report)."""
        return leg.confirmed + self.size - leg.sent

    def report(self, leg: Leg, position: int, now: float) -> bool:
        """The task reported hearing the stream up to ``position``; True when the window moved.

        A report is the truth: it replaces a position only taken as heard, even one further on
        (the gateway was slower than it seemed), so a sender that ran ahead waits for it again.
        """
        position = min(position, leg.sent)
        last = leg.last_report
        if last is not None:
            if position <= last[0]:
                return False  # nothing new (reports of one task only move forward)
            # Two reports in a row, no deadline between them: how fast the gateway heard.
            self._heard_seconds += (position - last[0]) / self.bytes_per_second
            self._heard_s += now - last[1]
        leg.last_report = (position, now)
        leg.confirmed, leg.confirmed_at = position, now
        return True

    def deadline(self, leg: Leg) -> float:
        """When the audio ``leg`` was sent counts as heard without a report (loop time)."""
        unconfirmed = (leg.sent - leg.confirmed) / self.bytes_per_second
        return leg.confirmed_at + unconfirmed / self.speed

    def assume_heard(self, leg: Leg, now: float) -> None:
        """No report by the deadline: what ``leg`` was sent counts as heard, until the next
        report says how far the gateway really got."""
        leg.confirmed, leg.confirmed_at = leg.sent, now
        if leg.last_report is not None:
            # The time since the last report measured the sender, not the gateway.
            leg.last_report = (leg.last_report[0], now)

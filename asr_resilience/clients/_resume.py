"""Between two legs of a resumable stream: settle the leg that ended, start the next, say so.

A stream's leg is an attempt of the execution core held from connect to close
(:mod:`~asr_resilience.clients._leg`). When it ends, :meth:`Resumption.settle` gives its slot
back with the outcome and, for a failure, lets the current fault episode
(:mod:`~asr_resilience.clients._episode`) decide; :meth:`Resumption.next_leg` is the engine's
loop started from that failure; :meth:`Resumption.notices` turns a successful reconnect into
the caller's ``Reconnected`` (and ``AudioGap``) events and the ``stream_resumed`` log event.
The send path's replay of the buffered audio stays with the stream, which owns the buffer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..observe import emit
from ..retry._attempt import Attempt
from ..retry._call import CallSettings
from ..retry._engine import run_async
from ._episode import FaultEpisode
from ._leg import Leg
from ._replay import ReplayBuffer
from ._results import AudioGap, Reconnected, StreamEvent

__all__ = ["Counters", "Resumption"]


@dataclass(slots=True)
class Counters:
    """How a stream fared across its reconnects."""

    reconnects: int = 0
    replayed_ms: int = 0
    gaps: int = 0
    gap_ms: int = 0


class Resumption:
    """A stream's fault episodes and reconnect notices (one per stream run)."""

    __slots__ = ("counters", "episode", "settings")

    def __init__(self, settings: CallSettings) -> None:
        self.settings = settings
        self.episode: FaultEpisode | None = None
        self.counters = Counters()

    def progress(self) -> None:
        """A sentence was delivered: the current fault episode (if any) is over."""
        self.episode = None

    def settle(self, leg: Leg, failure: Exception | None, *, resume: bool) -> None:
        """Settle the ended leg's attempt: success, or a failure the episode decides.

        Without ``resume`` a failure only gives the slot back (the stream ends with it).
        """
        attempt, leg.attempt = leg.attempt, None
        if attempt is None:
            return
        if failure is None or not resume:
            attempt.close(failure, decide=False)
            return
        if self.episode is None:
            self.episode = FaultEpisode(self.settings, leg.token)
        attempt.close(failure, self.episode.state)  # the slot goes back; the episode decides

    async def next_leg(
        self, failure: Exception, start: Callable[[Attempt], Awaitable[Leg | None]]
    ) -> Leg | None:
        """The next leg per policy (``start`` is one attempt); raises the typed error.

        The engine's loop, started from ``failure`` as the episode already decided it.
        """
        assert self.episode is not None  # settle() opened it
        return await run_async(self.episode.state, start, first=failure)

    def notices(self, leg: Leg, failed: Leg, buffer: ReplayBuffer, heard: int) -> list[StreamEvent]:
        """The caller's events for a reconnect (and a gap the bounded buffer left), logged."""
        episode = self.episode
        assert episode is not None
        replayed = buffer.ms(max(0, min(heard, buffer.end) - buffer.start))
        gap = buffer.take_gap()
        record = episode.state.history[-1]  # the failure this leg recovers from
        code, transport = record.code, record.transport
        counters = self.counters
        counters.reconnects += 1
        counters.replayed_ms += replayed
        events: list[StreamEvent] = [
            Reconnected(
                cause=str(code) if code is not None else transport or "error",
                code=code,
                action=record.action or "retry",
                attempt=episode.failures,
                resume_time=buffer.start_ms,
                replayed_ms=replayed,
                task_id=leg.task_id,
                previous_task_id=failed.task_id,
            )
        ]
        emit(
            "stream_resumed",
            function="Transcriber",
            code=code,
            transport=transport,
            action=record.action,
            rule=record.rule,
            attempt=episode.failures,
            task_id=leg.task_id,
            previous_task_id=failed.task_id,
            resume_time=buffer.start_ms,
            replayed_ms=replayed,
        )
        if gap is not None:
            counters.gaps += 1
            counters.gap_ms += gap[1] - gap[0]
            events.append(AudioGap(*gap))
            emit(
                "stream_gap",
                level="warning",
                function="Transcriber",
                task_id=leg.task_id,
                begin_time=gap[0],
                end_time=gap[1],
            )
        return events

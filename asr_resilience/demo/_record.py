"""What the demo observed: one record per call, and the events of the resilience machinery."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..observe import Event

PREFIX = "asr_resilience."
FAILED_ATTEMPT_EVENTS = ("retry_scheduled", "token_invalidated")
"""Events each of which reports one failed attempt (``gave_up`` too, when ``failed_attempt``;
a stream's ``stream_resumed`` follows its ``retry_scheduled``: the same failure)."""

current_call: contextvars.ContextVar[int] = contextvars.ContextVar("demo_call")
"""The index of the workload call whose task (or a task it started) emits an event."""


@dataclass
class CallRecord:
    """How one call of the workload ended."""

    index: int
    kind: str
    expected: str
    why: str
    start: float
    end: float = 0.0
    outcome: str = "pending"
    """``ok`` or the name of the typed error."""
    code: int | None = None
    attempts: int = 0
    part: str = "chaos"
    """``chaos`` (this process's clients) or ``fleet`` (a worker process)."""

    @property
    def matched(self) -> bool:
        return self.outcome == self.expected

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Recorder:
    """Collects call records and hook events (thread-safe); times are seconds since start."""

    t0: float = field(default_factory=time.monotonic)
    calls: list[CallRecord] = field(default_factory=list)
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    """(time, name without the prefix, fields plus ``call``: the workload call's index)."""
    stream: dict[str, Any] = field(default_factory=dict)
    """The real-time transcription's figures (reconnects, replayed audio, sentence check)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def hook(self, event: Event) -> None:
        fields = dict(event.fields)
        fields["call"] = current_call.get(None)
        with self._lock:
            self.events.append((self.now(), event.name[len(PREFIX) :], fields))

    def count(self, name: str, **where: Any) -> int:
        with self._lock:
            return sum(
                1
                for _, n, f in self.events
                if n == name and all(f.get(k) == v for k, v in where.items())
            )

    def failed_attempts(self) -> Counter[int | str]:
        """Failed attempts the clients saw, by vendor code (``transport:KIND`` for a drop)."""
        found: Counter[int | str] = Counter()
        with self._lock:
            for _, name, fields in self.events:
                if name in FAILED_ATTEMPT_EVENTS or (
                    name == "gave_up" and fields.get("failed_attempt")
                ):
                    found[fields.get("code") or f"transport:{fields.get('transport', '?')}"] += 1
        return found

"""What the clients hand back: a one-sentence result and the events of a real-time stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..protocol import Word

__all__ = ["Recognition", "SentenceEvent", "Word"]


@dataclass(frozen=True, slots=True)
class Recognition:
    """The outcome of one-sentence recognition (WebSocket or REST).

    ``duration`` is the audio's length in ms as the gateway measured it (None when it did not
    say: the REST API never does); ``attempts`` counts every attempt the call made, token
    refreshes included, so 1 means the first try succeeded.
    """

    text: str
    task_id: str
    duration: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class SentenceEvent:
    """One sentence event of real-time transcription; times are ms of audio from the task start.

    ``begin``: a sentence started (``begin_time`` = ``end_time`` = where). ``partial``: the open
    sentence's text so far (only with ``enable_intermediate_result``). ``end``: the finished
    sentence; ``timed_out`` marks one the gateway cut off (PROTOCOL.md "Events": SentenceEnd
    ``payload.status`` 51040104 is not a failure of the task).
    """

    kind: Literal["begin", "partial", "end"]
    index: int
    text: str
    begin_time: int
    end_time: int
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    timed_out: bool = False

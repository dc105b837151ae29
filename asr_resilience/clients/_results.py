"""What the clients hand back: a one-sentence result and the events of a real-time stream.

A real-time stream yields :data:`StreamEvent`: the sentence events of the task, plus, when the
stream resumed after a fault, a :class:`Reconnected` (the stream moved to a new task) and maybe an
:class:`AudioGap` (audio the new task could not be given). Each carries a ``kind`` tag, so
``if event.kind == "end":`` narrows the type for mypy as well as at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..protocol import Word

__all__ = [
    "AudioGap",
    "Recognition",
    "Reconnected",
    "SentenceEvent",
    "StreamEvent",
    "StreamStats",
    "StreamSummary",
    "Word",
]


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
    """One sentence event of real-time transcription; times are ms of audio from the stream start.

    ``begin``: a sentence started (``begin_time`` = ``end_time`` = where). ``partial``: the open
    sentence's text so far (only with ``enable_intermediate_result``). ``end``: the finished
    sentence; ``timed_out`` marks one the gateway cut off (docs/protocol.md "Events":
    SentenceEnd ``payload.status`` 51040104 is not a failure of the task).

    ``index`` counts the stream's sentences from 1. Across reconnects times and indexes continue
    as if one task had heard the whole stream (see :class:`Reconnected`).
    """

    kind: Literal["begin", "partial", "end"]
    index: int
    text: str
    begin_time: int
    end_time: int
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The stream moved to a new task after a fault; what follows continues the same stream.

    ``cause``: the failure that ended the previous task (``"50000000"``, ``"abnormal_close"``,
    ...), with its vendor ``code`` when it had one, and the policy's ``action`` (``retry`` or
    ``refresh-token``). ``attempt`` counts the failures of this fault episode so far (1 for the
    first). The new task starts at ``resume_time`` (ms of the stream: the end of the last
    delivered sentence, or later after an :class:`AudioGap`) and is given again ``replayed_ms``
    of audio an earlier task had already received. ``task_id`` is the new task's.
    """

    cause: str
    code: int | None
    action: str
    attempt: int
    resume_time: int
    replayed_ms: int
    task_id: str
    previous_task_id: str
    kind: Literal["reconnect"] = "reconnect"


@dataclass(frozen=True, slots=True)
class AudioGap:
    """Audio (ms of the stream) the resumed task was not given: the replay buffer had dropped it.

    Only a sentence longer than the buffer's bound (or a long stretch without a finished
    sentence) gets here: a sentence overlapping ``begin_time``..``end_time`` comes back cut (its
    tail only) or not at all. The span may also be silence that held no sentence.
    """

    begin_time: int
    end_time: int
    kind: Literal["gap"] = "gap"


StreamEvent = SentenceEvent | Reconnected | AudioGap
"""What iterating a :class:`~asr_resilience.clients.Transcriber` yields."""


@dataclass(frozen=True, slots=True)
class StreamStats:
    """How a real-time stream fared: reconnects, replayed audio, the replay buffer's peak.

    ``sentences`` delivered; ``reconnects`` (new tasks after a fault) and ``replayed_ms`` (audio
    sent again to them); ``gaps`` / ``gap_ms`` (audio they could not be given, see
    :class:`AudioGap`); ``duplicates`` (sentence ends dropped because an earlier task had
    delivered them); ``peak_buffer_ms`` (the most audio the replay buffer held at once);
    ``coalesced`` (partial results replaced by a newer partial of their sentence because the
    caller was reading slower than they came) and ``peak_queued`` (the most events waiting for
    the caller at once).
    """

    sentences: int = 0
    reconnects: int = 0
    replayed_ms: int = 0
    gaps: int = 0
    gap_ms: int = 0
    duplicates: int = 0
    peak_buffer_ms: int = 0
    coalesced: int = 0
    peak_queued: int = 0

    @property
    def replayed_seconds(self) -> float:
        return self.replayed_ms / 1000

    @property
    def peak_buffer_seconds(self) -> float:
        return self.peak_buffer_ms / 1000


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What a closed real-time stream delivered: ``Transcriber.aclose()`` returns it, and
    ``Transcriber.summary`` holds it once the stream is closed.

    ``completed``: the last task ended with TranscriptionCompleted after StopTranscription, so
    the gateway processed all the audio it was sent. ``sentences``: sentences delivered (end
    events). ``audio_sent_seconds``: the audio the caller handed to ``send``;
    ``audio_confirmed_seconds``: how much of it the gateway confirmed (all of it when
    ``completed``, less any :class:`AudioGap`; else up to the end of the last delivered
    sentence). Either is ``None`` when the audio's length cannot be told from its bytes (a
    format other than PCM). ``task_id`` is the last task's.
    """

    completed: bool
    sentences: int
    audio_sent_seconds: float | None
    audio_confirmed_seconds: float | None
    bytes_sent: int
    task_id: str

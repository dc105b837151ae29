"""Resilient asyncio clients for NLS: one-sentence recognition over WebSocket and REST, and
real-time transcription that resumes across drops and server errors.

Every call runs under a policy (the execution core, ``asr_resilience.retry``): tokens are refreshed,
throttling and drops are retried, and the rest ends in a typed error.
"""

from .._errors import InvalidTokenError, RedirectRefusedError
from ._audio import (
    FRAME_BYTES,
    ONE_SENTENCE_MAX_BYTES,
    ONE_SENTENCE_MAX_SECONDS,
    AudioData,
    AudioSourceError,
    ReplayableStream,
    load_audio,
    paced,
    split_frames,
)
from ._connection import Connection, connected, mapped_errors, open_connection
from ._recognizer import DEFAULT_GATEWAY, Recognizer
from ._rest import DEFAULT_REST_URL, RestRecognizer
from ._results import (
    AudioGap,
    Recognition,
    Reconnected,
    SentenceEvent,
    StreamEvent,
    StreamStats,
    StreamSummary,
    Word,
)
from ._transcribe_file import transcribe_file
from ._transcriber import Transcriber

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_REST_URL",
    "FRAME_BYTES",
    "ONE_SENTENCE_MAX_BYTES",
    "ONE_SENTENCE_MAX_SECONDS",
    "AudioData",
    "AudioGap",
    "AudioSourceError",
    "Connection",
    "InvalidTokenError",
    "Recognition",
    "Recognizer",
    "Reconnected",
    "RedirectRefusedError",
    "ReplayableStream",
    "RestRecognizer",
    "SentenceEvent",
    "StreamEvent",
    "StreamStats",
    "StreamSummary",
    "Transcriber",
    "Word",
    "connected",
    "load_audio",
    "mapped_errors",
    "open_connection",
    "paced",
    "split_frames",
    "transcribe_file",
]

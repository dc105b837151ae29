"""Resilient asyncio clients for NLS: one-sentence recognition over WebSocket and REST, and
real-time transcription.

Every call runs under a policy (``asr_resilience.retry.retrying``): tokens are refreshed,
throttling and drops are retried, and the rest ends in a typed error.
"""

from .audio import (
    FRAME_BYTES,
    ONE_SENTENCE_MAX_BYTES,
    AudioData,
    AudioSourceError,
    ReplayableStream,
    load_audio,
    paced,
    split_frames,
)
from .connection import Connection, connected, mapped_errors, open_connection
from .recognizer import DEFAULT_GATEWAY, Recognizer
from .rest import DEFAULT_REST_URL, RestRecognizer
from .results import Recognition, SentenceEvent, Word
from .transcriber import Transcriber

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_REST_URL",
    "FRAME_BYTES",
    "ONE_SENTENCE_MAX_BYTES",
    "AudioData",
    "AudioSourceError",
    "Connection",
    "Recognition",
    "Recognizer",
    "ReplayableStream",
    "RestRecognizer",
    "SentenceEvent",
    "Transcriber",
    "Word",
    "connected",
    "load_audio",
    "mapped_errors",
    "open_connection",
    "paced",
    "split_frames",
]

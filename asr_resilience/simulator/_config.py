"""The simulated gateway's limits and knobs (docs/protocol.md "Limits", "Simulator choices").

Deliberately a plain, mutable dataclass: the gateway reads it afresh for every decision, so a
test may shorten a timeout or change the transcripts while the simulator runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_REST_BYTES = 2 * 1024 * 1024
"""docs/protocol.md "Limits": ≤ 2 MB of audio per one-sentence request."""


@dataclass
class SimulatorConfig:
    """Limits and behaviour of the simulated gateway (defaults are the vendor's)."""

    idle_timeout: float = 10.0
    """Seconds without a directive (or, one-sentence, without audio) → 40000004 IDLE_TIMEOUT."""
    client_data_timeout: float = 5.0
    """Real-time transcription: seconds without audio after Started → 41040201 [?]."""
    max_sentence_ms: int = 60_000
    """One-sentence recognition: more audio than this → 41010104 TOO_LONG_SPEECH."""
    max_vocabulary: int = 128
    """Hotword items allowed in ``vocabulary`` before 40010003."""
    service_time: float = 0.0
    """Extra seconds of "processing" before the final event, holding the slot (quota benches)."""
    intermediate_results: bool = True
    """Send ResultChanged events when the client asks (``enable_intermediate_result``)."""
    transcripts: Sequence[str] | None = None
    """Texts of the sentences in order (instead of the deterministic vocabulary phrases)."""
    max_sentence_silence: int = 800
    """Silence (ms) that ends a sentence, unless the task asks for another one."""
    realtime_factor: float | None = None
    """Real-time transcription: the gateway processes audio at most this many times real time,
    reading no further frame until it has; the socket buffers then hold a faster client back,
    as the vendor's gateway does. None (the default): as fast as it arrives, which keeps tests
    that stream recordings unpaced quick [?]."""
    intermediate_every_ms: int = 200
    """Real-time transcription: audio (ms) between two intermediate results of a sentence [?]."""
    pacing: float | None = None
    """Real-time transcription: refuse audio faster than this many times real time [?]."""
    pacing_grace_ms: int = 1000
    """Audio a client may send ahead of the pacing limit (a burst at the start is normal)."""
    token_ttl: float | None = None
    """Lifetime of tokens the simulator issues; None = the account store's (a day)."""
    meta_throttle_interval: float = 0.0
    """CreateToken: an AccessKeyId calling again sooner than this gets Throttling.User."""
    max_rest_bytes: int = MAX_REST_BYTES
    """REST one-sentence recognition: a body larger than this → 41010104 TOO_LONG_SPEECH."""

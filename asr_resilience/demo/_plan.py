"""The demo's chaos scenario and its workload, with the outcome every call must end in.

The expected outcome of each call is written down from what the scenario does to it — bad
audio, an unknown appkey, silence — never by asking the policy, so the demo's check can fail.
Transient trouble (gRPC bursts, drops, the quota, a revoked token) is expected to be survived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..simulator import Account, Fault, Scenario, SimulatorConfig
from ..simulator._engine import Sentence, SentenceDetector
from . import _audio as audio

Kind = Literal["one-sentence", "rest", "realtime"]
Expected = Literal["ok", "FixClientError", "FailFastError"]

APPKEY = "demo-appkey"
QUOTA = 6
"""The account's concurrency quota: smaller than the client's concurrency."""
CONCURRENCY = 16
TOKEN_TTL = 3600.0
STREAM_SPEED = 20
"""The real-time transcription is sent at this many times real time."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call of the workload and how it must end."""

    index: int
    kind: Kind
    expected: Expected
    code: int | None = None
    """The vendor code behind an expected error."""
    why: str = "clean"
    appkey: str = APPKEY
    sample_rate: int = 16000
    audio: bytes = b""
    params: Mapping[str, Any] = field(default_factory=dict)


def accounts() -> list[Account]:
    return [
        Account(
            name="demo",
            appkeys=(APPKEY,),
            access_key_id="LTAI-demo",
            access_key_secret="demo-secret-do-not-log",
            quota=QUOTA,
        ),
        Account(name="neighbour", appkeys=("neighbour-appkey",), access_key_id="LTAI-n"),
        # The fleet part's account: worker processes share its quota through Redis.
        Account(name="fleet", appkeys=("fleet-appkey",), access_key_id="LTAI-f", quota=4),
    ]


def config() -> SimulatorConfig:
    return SimulatorConfig(service_time=0.15, token_ttl=TOKEN_TTL)


def scenario() -> Scenario:
    """Transient trouble only: every call it touches is expected to succeed after retries."""
    return Scenario(
        [
            # The token is revoked mid-run: every call still holding it gets 40000001.
            Fault("revoke_token", "start", sessions=(18,)),
            # A short burst of gRPC errors, and a steady trickle of another one.
            Fault("code", "start", code=50000000, burst=(25, 3)),
            Fault("code", "start", code=52010001, every=17, service=("SpeechRecognizer",)),
            Fault("code", "start", code=50000001, sessions=(62,)),
            # Dropped connections in the middle of the audio.
            Fault("close", "audio", after_ms=100, sessions=(9, 41), service=("SpeechRecognizer",)),
            Fault("reset", "audio", after_ms=100, sessions=(33,), service=("SpeechRecognizer",)),
            # The real-time stream loses its connection after 12 s of audio, and the task that
            # resumes it fails with a gRPC error 12 s later: it must resume both times.
            Fault("close", "audio", after_ms=12000, times=1, service=("SpeechTranscriber",)),
            Fault(
                "code",
                "audio",
                code=50000000,
                after_ms=12000,
                times=1,
                service=("SpeechTranscriber",),
            ),
        ],
        seed=2026,
    )


def workload() -> list[Call]:
    """48 one-sentence calls, 16 REST calls, one real-time transcription."""
    calls: list[Call] = []
    for i in range(48):
        pitch = 140.0 + (i % 7) * 30
        clip = audio.speech([(600 + (i % 5) * 200, pitch)], gap_ms=300)
        call = Call(i, "one-sentence", "ok", audio=clip)
        if i == 5:
            hotwords = {f"词{n}": 1 for n in range(200)}
            call = Call(
                i,
                "one-sentence",
                "FixClientError",
                40010003,
                "200 hotwords",
                audio=clip,
                params={"vocabulary": hotwords},
            )
        elif i == 11:
            call = Call(
                i,
                "one-sentence",
                "FailFastError",
                40020105,
                "appkey that does not exist",
                appkey="no-such-appkey",
                audio=clip,
            )
        elif i == 19:
            call = Call(
                i,
                "one-sentence",
                "FailFastError",
                41010105,
                "only silence",
                audio=audio.silence(1500),
            )
        elif i == 29:
            call = Call(
                i,
                "one-sentence",
                "FixClientError",
                41010101,
                "sample rate 44100",
                sample_rate=44100,
                audio=clip,
            )
        elif i == 37:
            call = Call(
                i,
                "one-sentence",
                "FailFastError",
                40020106,
                "another account's appkey",
                appkey="neighbour-appkey",
                audio=clip,
            )
        calls.append(call)
    for j in range(16):
        i = 48 + j
        clip = audio.speech([(800, 200.0 + j * 10)], gap_ms=300)
        call = Call(i, "rest", "ok", audio=clip)
        if j == 7:
            call = Call(
                i,
                "rest",
                "FixClientError",
                40000003,
                "flag that is not a boolean",
                audio=clip,
                params={"enable_punctuation_prediction": "maybe"},
            )
        calls.append(call)
    calls.append(Call(64, "realtime", "ok", why="45 s recording", audio=audio.recording(45)))
    return calls  # fmt: skip


def expected_sentences(pcm: bytes) -> list[Sentence]:
    """The sentences the audio itself contains, as one uninterrupted task would report them."""
    detector = SentenceDetector(sample_rate=16000)
    detector.feed(pcm)
    detector.flush()
    return list(detector.finished)

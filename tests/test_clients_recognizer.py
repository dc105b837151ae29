"""Recognizer: one-sentence recognition against the simulator, under the default policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import asr_resilience as ar
from asr_resilience.clients import AudioSourceError, Recognizer
from asr_resilience.simulator import Fault, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait
from asr_resilience.tokens import TokenManager

from .audio_fixtures import frames, speech_like, tone, wav

SPEECH = speech_like([(800, 440)], gap_ms=300)  # one sentence, 1.1 s
TEXT = "北京欢迎你"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator whose one sentence always reads TEXT."""
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


class SimTokens:
    """A token provider backed by the simulator; its first token may be a spoiled one."""

    def __init__(self, sim: Simulator, first: str | None = None) -> None:
        self.sim = sim
        self.first = first
        self.issued: list[str] = []

    def __call__(self) -> str:
        token = self.first if self.first is not None and not self.issued else self.sim.token()
        self.issued.append(token)
        return token


def recognizer(sim: Simulator, **options: Any) -> Recognizer:
    """A Recognizer aimed at the simulator with a valid static token."""
    options.setdefault("tokens", sim.token())
    return Recognizer(sim.gateway_url, sim.appkey, **options)


async def test_recognizes_bytes(sim: Simulator) -> None:
    """PCM bytes come back as the text, task id and duration of a single attempt."""
    result = await recognizer(sim).recognize(SPEECH)
    assert result.text == TEXT
    assert result.duration == 1100
    assert result.attempts == 1
    assert len(result.task_id) == 32
    assert sim.stats.sessions_completed == 1
    assert sim.stats.audio_bytes == len(SPEECH)


async def test_recognizes_a_wav_file(sim: Simulator, tmp_path: Path) -> None:
    """A WAV file is sent as its PCM at the header's sample rate."""
    path = tmp_path / "hello.wav"
    path.write_bytes(wav(speech_like([(800, 440)], gap_ms=200)))
    result = await recognizer(sim).recognize(path)
    assert (result.text, result.duration) == (TEXT, 1000)
    assert sim.stats.audio_bytes == 32000  # the samples, without the 44-byte header


async def test_recognizes_an_async_iterator(sim: Simulator) -> None:
    """Chunks from an async iterator are framed and sent; params reach the gateway."""

    async def microphone() -> AsyncIterator[bytes]:
        for chunk in frames(SPEECH, 5000):
            yield chunk

    rec = recognizer(sim, params={"enable_punctuation_prediction": True})
    result = await rec.recognize(microphone())
    assert (result.text, result.duration) == (TEXT, 1100)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("code", "start", code=40000009), ar.FixClientError),
        (Fault("code", "start", code=40000010), ar.FailFastError),
        (Fault("code", "audio", code=41010101), ar.FixClientError),
    ],
)
async def test_task_failed_raises_the_policy_error(
    sim: Simulator, fault: Fault, error: type[ar.ResilienceError]
) -> None:
    """A TaskFailed the policy does not retry raises its typed error, the NlsError as cause."""
    sim.set_scenario([fault])
    with pytest.raises(error) as info:
        await recognizer(sim).recognize(SPEECH)
    assert sim.stats.connections == 1
    cause = info.value.__cause__
    assert isinstance(cause, ar.NlsError)
    assert cause.code == fault.code
    assert cause.task_id is not None
    assert len(cause.task_id) == 32
    assert info.value.hint  # the catalog's fix


async def test_silence_fails_fast(sim: Simulator) -> None:
    """Audio without speech is the vendor's definitive answer (41010105): no retry."""
    with pytest.raises(ar.FailFastError) as info:
        await recognizer(sim).recognize(bytes(32000))
    assert info.value.code == 41010105
    assert sim.stats.connections == 1


async def test_expired_token_is_refreshed(sim: Simulator) -> None:
    """40000001 invalidates the token, a fresh one is fetched, and the next attempt succeeds."""
    stale = sim.token()
    sim.store.revoke(stale)
    provider = SimTokens(sim, first=stale)
    result = await recognizer(sim, tokens=TokenManager(provider)).recognize(SPEECH)
    assert result.text == TEXT
    assert result.attempts == 2
    assert len(provider.issued) == 2
    assert sim.stats.failed == {40000001: 1}


async def test_handshake_403_is_refreshed(sim: Simulator) -> None:
    """A token the gateway does not know is refused with 403 at the handshake, then refreshed."""
    provider = SimTokens(sim, first="no-such-token")
    result = await recognizer(sim, tokens=TokenManager(provider)).recognize(SPEECH)
    assert result.attempts == 2
    assert sim.stats.handshakes_rejected == 1


async def test_a_refused_fresh_token_gives_up(sim: Simulator) -> None:
    """A static token the gateway refuses cannot be refreshed: TokenRefreshError."""
    with pytest.raises(ar.TokenRefreshError) as info:
        await recognizer(sim, tokens="no-such-token").recognize(SPEECH)
    assert info.value.code == 403
    assert sim.stats.handshakes_rejected == 2


async def test_throttled_start_is_retried(sim: Simulator) -> None:
    """40000005 at the start is retried on a new connection with a new task."""
    sim.set_scenario([Fault("code", "start", code=40000005, sessions=(1, 2))])
    with no_wait():
        result = await recognizer(sim).recognize(SPEECH)
    assert result.attempts == 3
    assert sim.stats.connections == 3
    assert sim.stats.failed == {40000005: 2}


async def test_dropped_connection_is_retried_with_all_the_audio(sim: Simulator) -> None:
    """Drops mid-stream retry; an async source is read once and replayed in full."""
    sim.set_scenario(
        [
            Fault("close", "audio", after_ms=300, sessions=(1,)),
            Fault("reset", "audio", after_ms=500, sessions=(2,)),
        ]
    )
    reads: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(frames(SPEECH)):
            reads.append(i)
            yield chunk

    with no_wait():
        result = await recognizer(sim).recognize(source())
    assert (result.text, result.duration) == (TEXT, 1100)
    assert result.attempts == 3
    assert reads == list(range(len(reads)))  # each chunk read exactly once
    assert sim.stats.faults == {"close": 1, "reset": 1}


async def test_a_failing_audio_source_is_not_retried(sim: Simulator) -> None:
    """An exception from the caller's iterator ends the call at once: not the service's fault."""

    async def source() -> AsyncIterator[bytes]:
        yield SPEECH[:3200]
        raise OSError("microphone unplugged")

    with pytest.raises(AudioSourceError) as info:
        await recognizer(sim).recognize(source())
    assert isinstance(info.value.__cause__, OSError)
    assert sim.stats.connections == 1


async def test_start_timeout_is_retried_then_gives_up(sim: Simulator) -> None:
    """A gateway that never answers the start times out; the transport rule retries it."""
    sim.set_scenario([Fault("stall", "start")])
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
        await recognizer(sim, start_timeout=0.05).recognize(SPEECH)
    assert sim.stats.connections == 4  # the default policy's max_attempts
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "RecognitionStarted" in str(info.value.__cause__)
    assert [a.transport for a in info.value.attempts] == ["timeout"] * 4


async def test_stop_timeout(sim: Simulator) -> None:
    """A gateway that never completes after the audio raises TimeoutError, retried."""
    sim.set_scenario([Fault("stall", "stop", sessions=(1,))])
    with no_wait():
        result = await recognizer(sim, stop_timeout=0.05).recognize(SPEECH)
    assert result.attempts == 2


async def test_realtime_pacing(sim: Simulator) -> None:
    """realtime=True sends PCM no faster than real time."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await recognizer(sim, realtime=True).recognize(tone(300, 440))
    assert result.duration == 300
    assert loop.time() - began >= 0.2  # 3 frames of 100 ms: the last is due at 200 ms


async def test_missing_credentials_are_refused_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a token or an appkey the constructor says where to put them."""
    monkeypatch.delenv("NLS_TOKEN", raising=False)
    monkeypatch.delenv("NLS_APPKEY", raising=False)
    with pytest.raises(ValueError, match="NLS_TOKEN"):
        Recognizer("ws://127.0.0.1:1/ws/v1", "key")
    with pytest.raises(ValueError, match="NLS_APPKEY"):
        Recognizer("ws://127.0.0.1:1/ws/v1", tokens="tok")
    monkeypatch.setenv("NLS_TOKEN", "env-token")
    monkeypatch.setenv("NLS_APPKEY", "env-key")
    rec = Recognizer("ws://127.0.0.1:1/ws/v1")
    assert (rec.appkey, await rec.tokens.get()) == ("env-key", "env-token")


async def test_wav_longer_than_a_sentence_is_refused_before_connecting(
    sim: Simulator, tmp_path: Path
) -> None:
    """A 90 s WAV file is refused locally (ValueError naming the 60 s limit); no connection."""
    path = tmp_path / "long.wav"
    path.write_bytes(wav(bytes(90 * 32000)))
    with pytest.raises(
        ValueError, match=r"90\.0 s long; one-sentence recognition takes at most 60"
    ):
        await recognizer(sim).recognize(path)
    assert sim.stats.connections == 0

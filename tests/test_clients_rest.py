"""RestRecognizer: RESTful one-sentence recognition against the simulator's HTTP endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import asr_resilience as ar
from asr_resilience.clients import RestRecognizer
from asr_resilience.simulator import Fault, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait
from asr_resilience.tokens import TokenManager

from .audio_fixtures import speech_like, wav

SPEECH = speech_like([(800, 440)], gap_ms=300)
TEXT = "北京欢迎你"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator whose one sentence always reads TEXT."""
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


def rest(sim: Simulator, **options: Any) -> RestRecognizer:
    """A RestRecognizer aimed at the simulator with a valid static token."""
    options.setdefault("tokens", sim.token())
    return RestRecognizer(sim.rest_url, sim.appkey, **options)


async def test_recognizes_a_wav(sim: Simulator) -> None:
    """A WAV body comes back as the text and task id; REST gives no duration."""
    rec = rest(sim, params={"enable_punctuation_prediction": True})
    result = await rec.recognize(wav(SPEECH))
    assert result.text == TEXT
    assert len(result.task_id) == 32
    assert (result.duration, result.attempts) == (None, 1)
    assert sim.stats.audio_bytes == len(SPEECH)


async def test_shared_client_is_used_and_left_open(sim: Simulator) -> None:
    """A caller's httpx client carries the requests and stays open afterwards."""
    async with httpx.AsyncClient() as client:
        rec = rest(sim, client=client)
        assert (await rec.recognize(SPEECH)).text == TEXT
        assert (await rec.recognize(SPEECH)).text == TEXT
        assert not client.is_closed


async def test_vendor_code_under_http_error_is_nls_error(sim: Simulator) -> None:
    """A body with a failing status raises the policy's error; the NlsError keeps both codes."""
    sim.set_scenario([Fault("code", "start", code=40000009, service=("rest",))])
    with pytest.raises(ar.FixClientError) as info:
        await rest(sim).recognize(SPEECH)
    cause = info.value.__cause__
    assert isinstance(cause, ar.NlsError)
    assert (cause.code, cause.http_status) == (40000009, 400)
    assert cause.task_id is not None


async def test_expired_token_is_refreshed(sim: Simulator) -> None:
    """40000001 (HTTP 403) refreshes the token and the next request succeeds."""
    stale = sim.token()
    sim.store.revoke(stale)
    issued = iter([stale, sim.token()])
    result = await rest(sim, tokens=TokenManager(lambda: next(issued))).recognize(SPEECH)
    assert (result.text, result.attempts) == (TEXT, 2)
    assert sim.stats.failed == {40000001: 1}


async def test_throttled_and_bare_http_errors_are_retried(sim: Simulator) -> None:
    """40000005 in a body and a bare HTTP 503 without JSON are both retried."""
    sim.set_scenario(
        [
            Fault("code", "start", code=40000005, sessions=(1,)),
            Fault("code", "handshake", code=503, sessions=(2,)),
            Fault("reset", "audio", sessions=(3,)),
        ]
    )
    with no_wait():
        result = await rest(sim).recognize(SPEECH)
    assert result.attempts == 4
    assert sim.stats.rest_requests == 4


async def test_bare_client_error_is_fix_client(sim: Simulator) -> None:
    """A bare HTTP 404 (no vendor body) is classified by its status: fix-client."""
    sim.set_scenario([Fault("code", "handshake", code=404)])
    with pytest.raises(ar.FixClientError) as info:
        await rest(sim).recognize(SPEECH)
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    assert info.value.code == 404


async def test_answer_that_is_not_a_result_is_a_protocol_error(sim: Simulator) -> None:
    """A 200 whose body is not an NLS result raises RemoteProtocolError, not retried."""
    sim.set_scenario([Fault("garbage", "stop")])
    with pytest.raises(ar.protocol.RemoteProtocolError, match="not an NLS result"):
        await rest(sim).recognize(SPEECH)
    assert sim.stats.rest_requests == 1


async def test_audio_longer_than_a_sentence_is_refused_before_sending(sim: Simulator) -> None:
    """61 s of PCM is refused locally (ValueError naming the 60 s limit); nothing is sent."""
    with pytest.raises(ValueError, match="takes at most 60 s"):
        await rest(sim).recognize(bytes(61 * 32000))
    assert sim.stats.rest_requests == 0

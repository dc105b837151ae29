"""RESTful one-sentence recognition (POST /stream/v1/asr) of the simulator, through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asr_resilience.protocol import RECOGNIZER, TRANSCRIBER, Completed, Started
from asr_resilience.simulator import Account, Fault, Simulator
from asr_resilience.simulator._scenario import Action, Phase

from .audio_fixtures import clicks, silence, speech_like, wav
from .simulator_client import assert_seed, quick_config, run_task, task

SPEECH = speech_like([(1200, 440), (800, 660)])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    accounts = [Account(), Account(name="small", appkeys=("small-key",), quota=1)]
    async with Simulator(accounts=accounts, config=quick_config()) as simulator:
        yield simulator


async def post(
    sim: Simulator,
    body: bytes = SPEECH,
    *,
    token: str | None = None,
    **query: Any,
) -> httpx.Response:
    params = {"appkey": sim.appkey, "format": "pcm", "sample_rate": 16000, **query}
    params = {key: value for key, value in params.items() if value is not None}
    headers = {
        "X-NLS-Token": sim.token() if token is None else token,
        "Content-Type": "application/octet-stream",
    }
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        return await client.post(sim.rest_url, params=params, headers=headers, content=body)


def assert_error(response: httpx.Response, http_status: int, code: int) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == http_status, body
    assert body["status"] == code
    assert body["result"] == ""
    assert len(body["task_id"]) == 32
    return body


async def test_success_matches_websocket_recognition(sim: Simulator) -> None:
    """200 with status 20000000, SUCCESS, and the text a WebSocket task gives for that audio."""
    response = await post(sim)
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["message"]) == (20000000, "SUCCESS")
    ws = (await run_task(sim, RECOGNIZER, SPEECH))[-1]
    assert isinstance(ws, Completed)
    assert body["result"] == ws.text
    assert sim.stats.rest_requests == 1


async def test_wav_body(sim: Simulator) -> None:
    """format=wav: the header is stripped, the text is the same."""
    plain = (await post(sim)).json()["result"]
    assert (await post(sim, wav(SPEECH), format="wav")).json()["result"] == plain


async def test_token_problems_are_403(sim: Simulator) -> None:
    """Missing, unknown, expired or revoked tokens → HTTP 403 with 40000001."""
    assert_error(await post(sim, token=""), 403, 40000001)
    unknown = assert_error(await post(sim, token="nope"), 403, 40000001)
    assert unknown["message"] == "Meta:ACCESS_DENIED:The token 'nope' is invalid!"
    revoked = sim.token()
    sim.store.revoke(revoked)
    assert_error(await post(sim, token=revoked), 403, 40000001)
    expired = sim.token()
    sim.store.expire_all()
    body = assert_error(await post(sim, token=expired), 403, 40000001)
    assert_seed(40000001, body["message"])
    assert "has expired" in body["message"]


async def test_appkey_problems(sim: Simulator) -> None:
    """Missing appkey → 41000002; unknown → 40020105; another account's → 40020106 (HTTP 400)."""
    assert_error(await post(sim, appkey=None), 400, 41000002)
    assert_error(await post(sim, appkey="nobody"), 400, 40020105)
    assert_error(await post(sim, appkey="small-key"), 400, 40020106)


async def test_parameter_problems(sim: Simulator) -> None:
    """A rate that is not a number → 40000003 (seed's REST text); 44100 → 41010101."""
    bad = assert_error(await post(sim, sample_rate="abc"), 400, 40000003)
    assert bad["message"] == "Failed to decode url params"
    assert_seed(40000003, bad["message"])
    assert_error(await post(sim, sample_rate=44100), 400, 41010101)
    assert_error(await post(sim, enable_voice_detection="maybe"), 400, 40000003)


@pytest.mark.parametrize(
    ("audio", "code"),
    [(b"", 40000000), (silence(1500), 41010105), (clicks(), 40270002)],
)
async def test_audio_outcomes(sim: Simulator, audio: bytes, code: int) -> None:
    """Empty, silent and click-only bodies get the one-sentence table's codes."""
    body = assert_error(await post(sim, audio), 400, code)
    assert_seed(code, body["message"])


async def test_too_long(sim: Simulator) -> None:
    """More audio than max_sentence_ms, or a body over max_rest_bytes → 41010104."""
    sim.configure(max_sentence_ms=1000)
    assert_error(await post(sim), 400, 41010104)
    sim.configure(max_sentence_ms=60000, max_rest_bytes=10_000)
    assert_error(await post(sim), 400, 41010104)


async def test_quota_is_429(sim: Simulator) -> None:
    """The account's slot held by a WebSocket task → REST gets 429 with 40000005."""
    token = sim.token("small")
    async with task(sim, TRANSCRIBER, token=token, appkey="small-key") as t:
        assert isinstance(await t.start(), Started)
        body = assert_error(await post(sim, token=token, appkey="small-key"), 429, 40000005)
        assert body["message"] == "Gateway:TOO_MANY_REQUESTS:Too many requests!"


async def test_illegal_path(sim: Simulator) -> None:
    """Another path under /stream/ → 40010001 NAMESPACE_NOT_FOUND."""
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        response = await client.post(sim.rest_url.replace("/asr", "/asx"), content=b"")
    body = assert_error(response, 400, 40010001)
    assert_seed(40010001, body["message"])


async def test_rest_fault_code_is_500_for_server_codes(sim: Simulator) -> None:
    """A 5xxxxxxx code fault on REST → HTTP 500 with that status in the body."""
    sim.set_scenario([Fault("code", "start", code=50000000, service=("rest",))])
    body = assert_error(await post(sim), 500, 50000000)
    assert body["message"] == "GRPC_ERROR:Grpc error!"


@pytest.mark.parametrize("phase", ["audio", "stop"])
async def test_rest_fault_phases(sim: Simulator, phase: Phase) -> None:
    """Code faults at the audio and stop phases answer instead of the result."""
    sim.set_scenario([Fault("code", phase, code=40000005, service=("rest",))])
    assert_error(await post(sim), 429, 40000005)


async def test_rest_fault_at_handshake_is_a_bare_status(sim: Simulator) -> None:
    """A handshake fault answers a plain HTTP status before any NLS processing."""
    sim.set_scenario([Fault("code", "handshake", code=503, service=("rest",))])
    response = await post(sim)
    assert response.status_code == 503
    assert response.text == "Injected fault\n"


@pytest.mark.parametrize("action", ["close", "reset"])
async def test_rest_dropped_connection(sim: Simulator, action: Action) -> None:
    """close/reset: the HTTP client gets no response at all."""
    sim.set_scenario([Fault(action, "start", service=("rest",))])
    with pytest.raises(httpx.TransportError):
        await post(sim)


async def test_rest_garbage(sim: Simulator) -> None:
    """garbage: a 200 whose body is not JSON."""
    sim.set_scenario([Fault("garbage", "stop", service=("rest",))])
    response = await post(sim)
    assert response.status_code == 200
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


async def test_rest_stall_and_slow(sim: Simulator) -> None:
    """stall: no answer within the client's timeout; slow: the answer comes late but whole."""
    sim.set_scenario([Fault("stall", "start", service=("rest",), sessions=(1,))])
    params = {"appkey": sim.appkey}
    async with httpx.AsyncClient(timeout=0.3, trust_env=False) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(sim.rest_url, params=params, headers={"X-NLS-Token": sim.token()})
    sim.set_scenario([Fault("slow", "start", delay=0.2, service=("rest",))])
    assert (await post(sim)).json()["status"] == 20000000


async def test_rest_trickle_drips_the_answer(sim: Simulator) -> None:
    """trickle: the headers at once, then the body in many one-byte reads, intact at the end."""
    sim.set_scenario([Fault("trickle", "start", delay=0.002, service=("rest",))])
    params: dict[str, str | int] = {"appkey": sim.appkey, "format": "pcm", "sample_rate": 16000}
    headers = {"X-NLS-Token": sim.token(), "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        request = client.build_request(
            "POST", sim.rest_url, params=params, headers=headers, content=SPEECH
        )
        response = await client.send(request, stream=True)
        held = sim.stats.concurrent.get("default")  # the headers came: the answer is under way
        reads = [chunk async for chunk in response.aiter_raw()]
        await response.aclose()
    body = b"".join(reads)
    assert len(body) == int(response.headers["Content-Length"])
    assert len(reads) > 20  # a few reads may coalesce on a loaded machine
    assert httpx.Response(200, content=body).json()["status"] == 20000000
    assert held == 1  # the request keeps its slot while the answer drips


async def test_websocket_only_fault_spares_rest(sim: Simulator) -> None:
    """A fault for SpeechRecognizer does not touch REST requests."""
    sim.set_scenario([Fault("code", "start", code=50000000, service=("SpeechRecognizer",))])
    assert (await post(sim)).json()["status"] == 20000000

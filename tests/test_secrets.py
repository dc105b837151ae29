"""Secrets: no error the library raises holds a token, an AccessKey secret or an STS token —
in its text, its ``args``, its ``repr`` or anywhere along its ``__cause__``/``__context__``
chain; the handshake never follows a redirect with the token; a token with whitespace is
refused before any I/O."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

import asr_resilience as ar
from asr_resilience._secrets import RedactedError, redact_text, scrub_exception
from asr_resilience.clients import (
    InvalidTokenError,
    Recognizer,
    RedirectRefusedError,
    RestRecognizer,
    Transcriber,
)
from asr_resilience.observe import REDACTED
from asr_resilience.simulator import Account, Simulator, SimulatorThread
from asr_resilience.testing import no_wait
from asr_resilience.tokens import AliyunTokenProvider, Token, TokenManager, TokenProviderError

from .audio_fixtures import speech_like

SPEECH = speech_like([(600, 440)], gap_ms=200)


# -- what "no trace" means ------------------------------------------------------------------------


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending.extend(e for e in (link.__cause__, link.__context__) if e is not None)


def renderings(exc: BaseException) -> str:
    """Every way the error is commonly printed: the traceback with its whole chain, and the
    ``str``, ``repr``, ``args`` and attributes of each link."""
    parts = ["".join(traceback.format_exception(exc))]
    for link in chain(exc):
        parts += [str(link), repr(link), repr(link.args)]
        parts += [repr(v) for v in getattr(link, "__dict__", {}).values()]
        parts += [repr(getattr(link, "__notes__", ""))]
    return "\n".join(parts)


def assert_no_trace(exc: BaseException, *secrets: str) -> None:
    text = renderings(exc)
    for secret in secrets:
        assert secret not in text, f"{secret[:4]}… found in the rendering of {exc!r}"


class Always:
    """A provider that always hands out the same (spoiled) token."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator on loopback ports."""
    async with Simulator() as simulator:
        yield simulator


# -- the exceptions themselves --------------------------------------------------------------------


def test_nls_error_scrubs_the_vendor_text_when_built() -> None:
    """An NlsError built from a 40000001 text keeps no token in message, args, str or repr."""
    token = f"never-registered-{uuid.uuid4().hex}"
    error = ar.NlsError(40000001, f"Gateway:ACCESS_DENIED:The token '{token}' has expired!")
    assert error.message == f"Gateway:ACCESS_DENIED:The token '{REDACTED}' has expired!"
    assert_no_trace(error, token)


def test_transport_and_protocol_errors_scrub_their_text() -> None:
    """TransportError's detail and a RemoteProtocolError's text lose a quoted token."""
    token = f"never-registered-{uuid.uuid4().hex}"
    assert_no_trace(ar.TransportError("abnormal_close", f"closed: token={token}"), token)
    from asr_resilience.protocol import RemoteProtocolError

    assert_no_trace(RemoteProtocolError(f'not JSON: {{"token": "{token}"}}'), token)


def test_a_foreign_cause_holding_a_secret_is_replaced() -> None:
    """Another library's exception in the chain whose text holds a secret becomes a
    RedactedError with its type's name and traceback; a clean one stays as it is."""
    token = f"never-registered-{uuid.uuid4().hex}"
    try:
        try:
            raise ValueError(f"bad header X-NLS-Token: {token}")
        except ValueError as inner:
            raise ar.NlsError(403, "Forbidden") from inner
    except ar.NlsError as outer:
        error = outer
    original = error.__cause__
    scrub_exception(error)
    assert isinstance(error.__cause__, RedactedError)
    assert error.__context__ is error.__cause__  # the same exception, replaced once
    assert "builtins.ValueError: bad header X-NLS-Token: <redacted>" in str(error.__cause__)
    assert original is not None
    assert error.__cause__.__traceback__ is original.__traceback__
    assert_no_trace(error, token)

    clean = ar.NlsError(50000000, "SERVER_ERROR")
    clean.__cause__ = OSError("connection reset")
    scrub_exception(clean)
    assert isinstance(clean.__cause__, OSError)


# -- every error path against the simulator -------------------------------------------------------


async def test_websocket_expired_token(sim: Simulator) -> None:
    """40000001 over the WebSocket (the token quoted in the text): the final error and its
    chain hold no token."""
    expired = sim.token(ttl=-1)
    rec = Recognizer(sim.gateway_url, sim.appkey, TokenManager(Always(expired)))
    with no_wait(), pytest.raises(ar.AsrResilienceError) as caught:
        await rec.recognize(SPEECH)
    assert any(isinstance(e, ar.NlsError) and e.code == 40000001 for e in chain(caught.value)), (
        renderings(caught.value)
    )
    assert_no_trace(caught.value, expired)


async def test_rest_expired_token(sim: Simulator) -> None:
    """40000001 over REST: the final error and its chain hold no token."""
    expired = sim.token(ttl=-1)
    rec = RestRecognizer(sim.rest_url, sim.appkey, TokenManager(Always(expired)))
    with no_wait(), pytest.raises(ar.AsrResilienceError) as caught:
        await rec.recognize(SPEECH)
    assert any(isinstance(e, ar.NlsError) and e.code == 40000001 for e in chain(caught.value))
    assert_no_trace(caught.value, expired)


async def test_handshake_403(sim: Simulator) -> None:
    """An unknown token refused at the handshake (403): no token in the error's chain."""
    unknown = f"unknown-{uuid.uuid4().hex}"
    rec = Recognizer(sim.gateway_url, sim.appkey, TokenManager(Always(unknown)))
    with no_wait(), pytest.raises(ar.AsrResilienceError) as caught:
        await rec.recognize(SPEECH)
    assert any(isinstance(e, ar.NlsError) and e.code == 403 for e in chain(caught.value))
    assert_no_trace(caught.value, unknown)


async def test_transcriber_task_failed_mid_stream(sim: Simulator) -> None:
    """A stream without resume raises the 40000001 TaskFailed as it came: without the token."""
    token = sim.token()
    sim.set_scenario(
        {"faults": [{"action": "code", "phase": "audio", "code": 40000001, "after_ms": 100}]}
    )

    async def stream() -> None:
        async with Transcriber(sim.gateway_url, sim.appkey, token, resume=False) as t:
            await t.send_all([SPEECH[i : i + 3200] for i in range(0, len(SPEECH), 3200)])
            await t.finish()

    with pytest.raises(ar.NlsError) as caught:
        await stream()
    assert caught.value.code == 40000001
    assert_no_trace(caught.value, token)


async def test_create_token_wrong_secret_and_sts_token(sim: Simulator) -> None:
    """CreateToken refusing a wrong secret: neither the secret nor the STS security token
    appears in TokenProviderError, in the TokenRefreshError of a call, or their chains."""
    secret = f"wrong-secret-{uuid.uuid4().hex}"
    sts = f"sts-token-{uuid.uuid4().hex}"
    key_id = Account(name="x").access_key_id  # the simulator's default account's key
    provider = AliyunTokenProvider(key_id, secret, endpoint=sim.meta_url, security_token=sts)
    with pytest.raises(TokenProviderError) as direct:
        await provider()
    assert direct.value.code == "SignatureDoesNotMatch"
    assert_no_trace(direct.value, secret, sts)
    with pytest.raises(TokenProviderError) as blocking:
        await asyncio.to_thread(provider.sync)
    assert_no_trace(blocking.value, secret, sts)
    rec = Recognizer(sim.gateway_url, sim.appkey, TokenManager(provider))
    with no_wait(), pytest.raises(ar.TokenRefreshError) as caught:
        await rec.recognize(SPEECH)
    assert_no_trace(caught.value, secret, sts)


async def test_expired_sts_credentials_leave_no_trace(sim: Simulator) -> None:
    """Real STS credentials the meta service refuses as expired: neither their secret nor their
    security token appears in the provider's error, a call's TokenRefreshError or their chains."""
    expired = sim.issue_sts(ttl=-1)
    provider = AliyunTokenProvider(
        expired.access_key_id,
        expired.access_key_secret,
        security_token=expired.security_token,
        endpoint=sim.meta_url,
    )
    with pytest.raises(TokenProviderError) as direct:
        await provider()
    assert direct.value.code == "InvalidSecurityToken.Expired"
    assert_no_trace(direct.value, expired.access_key_secret, expired.security_token)
    rec = Recognizer(sim.gateway_url, sim.appkey, TokenManager(provider))
    with no_wait(), pytest.raises(ar.TokenRefreshError) as caught:
        await rec.recognize(SPEECH)
    assert_no_trace(caught.value, expired.access_key_secret, expired.security_token)


def test_sts_credentials_in_texts_are_redacted() -> None:
    """An STS token in a query (SecurityToken=), a V3 header (x-acs-security-token:) or a JSON
    answer ("SecurityToken": "...") is scrubbed from any text, registered or not."""
    token = f"CAIS{uuid.uuid4().hex}"
    secret = f"sts-secret-{uuid.uuid4().hex}"
    texts = [
        f"GET /?AccessKeyId=STS.x&SecurityToken={token}&Signature=y",
        f"x-acs-security-token: {token}",
        f'{{"AccessKeySecret": "{secret}", "SecurityToken": "{token}"}}',
    ]
    for text in texts:
        clean = ar.observe.redact_text(text)
        assert token not in clean
        assert secret not in clean


async def test_a_close_reason_quoting_the_token() -> None:
    """A gateway closing with the token in its close reason: the TransportError and the
    websockets exception under it are scrubbed."""
    token = f"tok-{uuid.uuid4().hex}"

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1011, f"bad token={token}")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        policy = ar.load_policy("default")
        rec = Recognizer(
            f"ws://127.0.0.1:{port}/ws/v1", "appkey", f"{token}", policy, start_timeout=2
        )
        with no_wait(), pytest.raises(ar.AsrResilienceError) as caught:
            await rec.recognize(SPEECH)
    assert any(isinstance(e, ar.TransportError) for e in chain(caught.value))
    assert_no_trace(caught.value, token)


def test_resilient_function_raising_the_vendor_text() -> None:
    """A decorated function whose NlsError quotes a token: the typed error's chain is clean."""
    quoted = f"never-registered-{uuid.uuid4().hex}"

    @ar.resilient(policy="default", tokens=TokenManager(Always("static-token-0001")))
    def call(token: str = "") -> None:
        raise ar.NlsError(40000001, f"Meta:ACCESS_DENIED:The token '{quoted}' is invalid!")

    with no_wait(), pytest.raises(ar.ResilienceError) as caught:
        call()
    assert_no_trace(caught.value, quoted)


def test_block_form_raising_the_vendor_text() -> None:
    """The retrying block's typed error, raised to the caller directly, has a clean chain."""
    token = f"never-registered-{uuid.uuid4().hex}"

    def block() -> None:
        for attempt in ar.retrying(policy="default"):
            with attempt:
                raise ar.NlsError(40000003, f"Gateway:ACCESS_DENIED:The token '{token}' bad")

    with no_wait(), pytest.raises(ar.ResilienceError) as caught:
        block()
    assert_no_trace(caught.value, token)


@pytest.fixture(scope="module")
def gateway() -> Iterator[SimulatorThread]:
    """A simulator in a thread, for the blocking SDK adapter."""
    with SimulatorThread() as thread:
        yield thread


def test_sdk_adapter_expired_token(gateway: SimulatorThread) -> None:
    """The official SDK's TaskFailed 40000001 under the adapter: no token in the error."""
    sdk = pytest.importorskip("nls")
    assert sdk is not None
    expired = gateway.token(ttl=-1)
    adapter = ar.SdkRecognizer(
        gateway.gateway_url, gateway.appkey, TokenManager(Always(expired)), timeout=5
    )
    with no_wait(), pytest.raises(ar.AsrResilienceError) as caught:
        adapter.recognize(SPEECH)
    assert_no_trace(caught.value, expired)


# -- redirects ----------------------------------------------------------------------------------


class Listener:
    """A TCP listener that records every request it gets and answers 404."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@contextlib.asynccontextmanager
async def redirecting(status: int, location: str) -> AsyncIterator[int]:
    """A gateway that answers every request with ``status`` and ``Location: location``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                f"HTTP/1.1 {status} Found\r\nLocation: {location}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("same_origin", [False, True])
async def test_websocket_redirect_is_refused(same_origin: bool) -> None:
    """A handshake answered with 302 (to another port, or the same origin) ends at once with
    RedirectRefusedError (fix-client, one attempt); the other listener never hears the token."""
    token = f"tok-{uuid.uuid4().hex}"
    async with Listener() as elsewhere:
        target = f"ws://127.0.0.1:{elsewhere.port}/ws/v1" if not same_origin else "/ws/v2"
        async with redirecting(302, target) as port:
            rec = Recognizer(f"ws://127.0.0.1:{port}/ws/v1", "appkey", token)
            with pytest.raises(RedirectRefusedError) as caught:
                await rec.recognize(SPEECH)
    assert isinstance(caught.value, ar.FixClientError)
    assert caught.value.status == 302
    assert elsewhere.requests == []
    assert_no_trace(caught.value, token)


async def test_rest_redirect_is_not_followed() -> None:
    """REST never follows a redirect, even on a client built to: the token stays home."""
    token = f"tok-{uuid.uuid4().hex}"
    async with Listener() as elsewhere:
        location = f"http://127.0.0.1:{elsewhere.port}/stream/v1/asr"
        async with (
            redirecting(307, location) as port,
            httpx.AsyncClient(follow_redirects=True) as client,
        ):
            rec = RestRecognizer(
                f"http://127.0.0.1:{port}/stream/v1/asr", "appkey", token, client=client
            )
            with no_wait(), pytest.raises(ar.AsrResilienceError):
                await rec.recognize(SPEECH)
    assert elsewhere.requests == []


# -- tokens with whitespace or control characters -------------------------------------------------


BROKEN = ["abc def-0123456789", "abcdef0123456789\n", "abc\r\nX-Evil: 1", "\tabcdef0123456789"]


@pytest.mark.parametrize("token", BROKEN)
@pytest.mark.parametrize("client", [Recognizer, RestRecognizer, Transcriber])
def test_static_token_with_whitespace_is_refused_at_construction(token: str, client: Any) -> None:
    """A token string with whitespace or CR/LF is a ValueError (InvalidTokenError) at
    construction, and the message does not repeat it."""
    with pytest.raises(InvalidTokenError) as caught:
        client("ws://127.0.0.1:9/ws/v1", "appkey", token)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ar.FixClientError)
    assert_no_trace(caught.value, token.strip())


def test_nls_token_env_with_a_newline_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """$NLS_TOKEN with a trailing newline is refused, naming the variable, not the value."""
    monkeypatch.setenv("NLS_TOKEN", "abcdef0123456789\n")
    with pytest.raises(InvalidTokenError, match=r"\$NLS_TOKEN") as caught:
        Recognizer("ws://127.0.0.1:9/ws/v1", "appkey")
    assert "abcdef0123456789" not in renderings(caught.value)


@pytest.mark.parametrize("transport", ["websocket", "rest"])
async def test_provider_token_with_a_newline_is_refused_before_any_io(
    sim: Simulator, transport: str
) -> None:
    """A provider's token with a newline ends the call at once as a client mistake: one
    provider call, no connection, no retry, no echo."""
    bad = sim.token() + "\n"
    provider = Always(bad)
    tokens = TokenManager(provider)
    rec: Recognizer | RestRecognizer
    if transport == "websocket":
        rec = Recognizer(sim.gateway_url, sim.appkey, tokens)
    else:
        rec = RestRecognizer(sim.rest_url, sim.appkey, tokens)
    with no_wait(), pytest.raises(InvalidTokenError) as caught:
        await rec.recognize(SPEECH)
    assert provider.calls == 1
    assert sim.stats.connections == 0
    assert sim.stats.rest_requests == 0
    assert_no_trace(caught.value, bad.strip())


def test_token_manager_token_is_checked_by_the_sdk_adapter(gateway: SimulatorThread) -> None:
    """The SDK adapter refuses a token with whitespace before the SDK connects."""
    pytest.importorskip("nls")
    before = gateway.stats.connections
    adapter = ar.SdkRecognizer(
        gateway.gateway_url, gateway.appkey, TokenManager(lambda: Token("abc def-01234567"))
    )
    with pytest.raises(InvalidTokenError):
        adapter.recognize(SPEECH)
    assert gateway.stats.connections == before


def test_a_url_password_is_redacted() -> None:
    """The password of a URL's user information (a proxy login) is scrubbed from any text."""
    text = "tinyproxy at http://tester:pw@127.0.0.1:3128 isn't valid; 'https://u:p-2@h:1/x'"
    assert redact_text(text) == (
        "tinyproxy at http://tester:<redacted>@127.0.0.1:3128 isn't valid; "
        "'https://u:<redacted>@h:1/x'"
    )
    assert redact_text("http://user@host:1 and a:b@c") == "http://user@host:1 and a:b@c"

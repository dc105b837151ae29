"""Proxies and TLS, for real: every client through a tinyproxy on loopback, against a simulator
serving plain or TLS connections, with the environment's proxy variables and the explicit ones."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

import asr_resilience as ar
from asr_resilience import cli
from asr_resilience._network import resolve_network
from asr_resilience.clients import Recognizer, RestRecognizer, SentenceEvent, Transcriber
from asr_resilience.simulator import Account, Simulator, SimulatorConfig, SimulatorThread
from asr_resilience.tokens import AliyunTokenProvider, TokenProviderError

from .audio_fixtures import speech_like, wav
from .proxy_support import (
    PROXY_PASSWORD,
    Certificates,
    TinyProxy,
    certificates,
    free_port,
    tinyproxy,
)

SPEECH = speech_like([(800, 440)], gap_ms=300)
TEXT = "北京欢迎你"
AKID, SECRET = Account.access_key_id, Account.access_key_secret


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[TinyProxy]:
    """A tinyproxy on a free loopback port, no login."""
    with tinyproxy(tmp_path) as running:
        yield running


@pytest.fixture
def login_proxy(tmp_path: Path) -> Iterator[TinyProxy]:
    """A tinyproxy that wants PROXY_USER / PROXY_PASSWORD."""
    with tinyproxy(tmp_path, login=True) as running:
        yield running


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    """A throw-away CA and a certificate for 127.0.0.1."""
    return certificates(tmp_path)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A plain simulator (ws://, http://)."""
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


@pytest.fixture
async def tls_sim(certs: Certificates) -> AsyncIterator[Simulator]:
    """A simulator serving TLS (wss://, https://) with a certificate of the test CA."""
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT]), ssl=certs.server) as simulator:
        yield simulator


def no_password_anywhere(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """The proxy's password is in no rendering of the error, its chain, or the log records."""
    rendered = "".join(traceback.format_exception(error))
    link: BaseException | None = error
    while link is not None:
        rendered += repr(link) + str(link.args)
        link = link.__cause__ or link.__context__
    assert PROXY_PASSWORD not in rendered
    for record in caplog.records:
        assert PROXY_PASSWORD not in record.getMessage()


# -- the WebSocket ------------------------------------------------------------------------------


async def test_recognizer_through_an_explicit_proxy(sim: Simulator, proxy: TinyProxy) -> None:
    """Recognition goes through the proxy given as proxy=: the proxy sees the CONNECT."""
    rec = Recognizer(sim.gateway_url, sim.appkey, sim.token(), proxy=proxy.url)
    assert (await rec.recognize(SPEECH)).text == TEXT
    assert proxy.saw(f"CONNECT 127.0.0.1:{sim.port} ")


async def test_transcriber_legs_through_the_proxy(sim: Simulator, proxy: TinyProxy) -> None:
    """A real-time stream's connection is tunnelled through the proxy as well."""
    async with Transcriber(sim.gateway_url, sim.appkey, sim.token(), proxy=proxy.url) as stream:
        await stream.send(SPEECH)
        await stream.finish()
        texts = [event.text async for event in stream if isinstance(event, SentenceEvent)]
    assert TEXT in texts
    assert proxy.saw(f"CONNECT 127.0.0.1:{sim.port} ")


async def test_wss_through_the_proxy_with_a_custom_ca(
    tls_sim: Simulator, proxy: TinyProxy, certs: Certificates
) -> None:
    """wss:// through the proxy: TLS runs end to end inside the tunnel, verified by ssl=."""
    assert tls_sim.gateway_url.startswith("wss://")
    rec = Recognizer(
        tls_sim.gateway_url, tls_sim.appkey, tls_sim.token(), proxy=proxy.url, ssl=certs.client()
    )
    assert (await rec.recognize(SPEECH)).text == TEXT
    assert proxy.saw(f"CONNECT 127.0.0.1:{tls_sim.port} ")


async def test_environment_proxy_is_honoured(
    sim: Simulator, proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With http_proxy set and no proxy= given, the WebSocket and REST go through it."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert (await Recognizer(sim.gateway_url, sim.appkey, sim.token()).recognize(SPEECH)).text
    assert proxy.saw(f"CONNECT 127.0.0.1:{sim.port} ")
    rest = RestRecognizer(sim.rest_url, sim.appkey, sim.token())
    assert (await rest.recognize(SPEECH)).text == TEXT
    assert proxy.saw(f"POST http://127.0.0.1:{sim.http_port}/stream/v1/asr")


async def test_no_proxy_is_honoured(
    sim: Simulator, proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host in no_proxy is reached directly even with http_proxy set: the proxy sees nothing."""
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert (await Recognizer(sim.gateway_url, sim.appkey, sim.token()).recognize(SPEECH)).text
    rest = RestRecognizer(sim.rest_url, sim.appkey, sim.token())
    assert (await rest.recognize(SPEECH)).text == TEXT
    assert proxy.requests() == []


async def test_proxy_none_ignores_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxy=None (or False) connects directly although the environment names a dead proxy."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    rec = Recognizer(sim.gateway_url, sim.appkey, sim.token(), proxy=None)
    assert (await rec.recognize(SPEECH)).text == TEXT
    rest = RestRecognizer(sim.rest_url, sim.appkey, sim.token(), proxy=False)
    assert (await rest.recognize(SPEECH)).text == TEXT


async def test_dead_proxy_is_a_clear_error_within_the_deadline(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy nobody listens on: the call gives up by its deadline, naming the proxy without
    its password."""
    caplog.set_level(logging.DEBUG)
    dead = f"http://tester:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    rec = Recognizer(sim.gateway_url, sim.appkey, sim.token(), proxy=dead)
    with pytest.raises(ar.RetryExhaustedError) as info:
        await asyncio.wait_for(rec.recognize(SPEECH, deadline=1.5), 30)
    cause = info.value.__cause__
    assert isinstance(cause, ar.TransportError)
    assert cause.kind == "refused"
    assert "cannot reach the proxy http://tester:<redacted>@127.0.0.1:" in str(cause)
    no_password_anywhere(info.value, caplog)
    assert sim.stats.connections == 0


async def test_wrong_proxy_login_fails_at_once_without_the_password(
    sim: Simulator, login_proxy: TinyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy refusing the login (401/407) is a configuration error: raised at once, not retried,
    and the password given shows nowhere."""
    caplog.set_level(logging.DEBUG)
    wrong = login_proxy.url_with("tester", PROXY_PASSWORD + "-wrong")
    rec = Recognizer(sim.gateway_url, sim.appkey, sim.token(), proxy=wrong)
    with structlog.testing.capture_logs() as events, pytest.raises(ar.TransportError) as info:
        await rec.recognize(SPEECH)
    assert info.value.kind == "proxy_auth"
    assert "refused the login (HTTP 401)" in str(info.value)  # tinyproxy's answer to a bad one
    assert len(login_proxy.requests()) == 1  # not retried
    no_password_anywhere(info.value, caplog)
    assert PROXY_PASSWORD not in repr(events)


async def test_proxy_login_is_sent(sim: Simulator, login_proxy: TinyProxy) -> None:
    """The user:password of the proxy URL logs in to the proxy (WebSocket and REST)."""
    rec = Recognizer(sim.gateway_url, sim.appkey, sim.token(), proxy=login_proxy.url)
    assert (await rec.recognize(SPEECH)).text == TEXT
    rest = RestRecognizer(sim.rest_url, sim.appkey, sim.token(), proxy=login_proxy.url)
    assert (await rest.recognize(SPEECH)).text == TEXT
    assert repr(rec.network) == (
        f"Network(proxy='http://tester:<redacted>@127.0.0.1:{login_proxy.port}', ssl=None)"
    )


async def test_wss_with_a_ca_bundle_path(tls_sim: Simulator, certs: Certificates) -> None:
    """ssl= a CA bundle path verifies the gateway's certificate."""
    rec = Recognizer(tls_sim.gateway_url, tls_sim.appkey, tls_sim.token(), ssl=certs.ca_bundle)
    assert (await rec.recognize(SPEECH)).text == TEXT


async def test_wss_with_an_unknown_ca_fails_at_once(tls_sim: Simulator) -> None:
    """Without the test CA the certificate does not verify: a TransportError of kind tls that
    says what to pass, raised without retrying."""
    rec = Recognizer(tls_sim.gateway_url, tls_sim.appkey, tls_sim.token())
    with pytest.raises(ar.TransportError) as info:
        await rec.recognize(SPEECH)
    assert info.value.kind == "tls"
    assert "the certificate of 127.0.0.1 does not verify" in str(info.value)
    assert "pass ssl=" in str(info.value)


# -- REST ---------------------------------------------------------------------------------------


async def test_rest_through_an_explicit_proxy(sim: Simulator, proxy: TinyProxy) -> None:
    """http:// REST is forwarded by the proxy (absolute-form request), in and out of a block."""
    async with RestRecognizer(sim.rest_url, sim.appkey, sim.token(), proxy=proxy.url) as rest:
        assert (await rest.recognize(SPEECH)).text == TEXT
    assert proxy.saw(f"POST http://127.0.0.1:{sim.http_port}/stream/v1/asr?")


async def test_https_rest_through_the_proxy_with_a_custom_ca(
    tls_sim: Simulator, proxy: TinyProxy, certs: Certificates
) -> None:
    """https:// REST is tunnelled (CONNECT) and verified against ssl= a CA bundle."""
    rest = RestRecognizer(
        tls_sim.rest_url, tls_sim.appkey, tls_sim.token(), proxy=proxy.url, ssl=certs.ca_bundle
    )
    assert (await rest.recognize(SPEECH)).text == TEXT
    assert proxy.saw(f"CONNECT 127.0.0.1:{tls_sim.http_port} ")


async def test_https_rest_with_an_unknown_ca_fails_at_once(tls_sim: Simulator) -> None:
    """REST against a certificate of an unknown CA: the same tls TransportError, not retried."""
    rest = RestRecognizer(tls_sim.rest_url, tls_sim.appkey, tls_sim.token())
    with pytest.raises(ar.TransportError) as info:
        await rest.recognize(SPEECH)
    assert info.value.kind == "tls"
    assert "pass ssl=" in str(info.value)


async def test_rest_dead_proxy_names_the_proxy(
    tls_sim: Simulator, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """REST through a dead proxy gives up by the deadline naming it, password redacted."""
    dead = f"http://tester:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    rest = RestRecognizer(
        tls_sim.rest_url, tls_sim.appkey, tls_sim.token(), proxy=dead, ssl=certs.ca_bundle
    )
    with pytest.raises(ar.RetryExhaustedError) as info:
        await asyncio.wait_for(rest.recognize(SPEECH, deadline=1.5), 30)
    assert "cannot reach the proxy http://tester:<redacted>@" in str(info.value.__cause__)
    no_password_anywhere(info.value, caplog)


async def test_rest_refuses_proxy_with_a_callers_client(sim: Simulator) -> None:
    """proxy= or ssl= next to client= is refused: the caller's client has its own settings."""
    import httpx

    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="with client="):
            RestRecognizer(sim.rest_url, sim.appkey, sim.token(), client=client, proxy=None)


# -- CreateToken --------------------------------------------------------------------------------


async def test_create_token_through_the_proxy(
    sim: Simulator, login_proxy: TinyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """CreateToken (async and sync) goes through the explicit proxy with its login."""
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=sim.meta_url, proxy=login_proxy.url)
    assert provider.proxy == f"http://tester:<redacted>@127.0.0.1:{login_proxy.port}"
    assert sim.store.check_token((await provider()).value) is not None
    token = await asyncio.to_thread(provider.sync)  # the simulator serves from this loop
    assert sim.store.check_token(token.value) is not None
    forwarded = [r for r in login_proxy.requests() if r.startswith(f"POST {sim.meta_url}")]
    assert len(forwarded) == 2


async def test_create_token_honours_the_environment_proxy(
    sim: Simulator, proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http_proxy from the environment carries CreateToken too."""
    monkeypatch.setenv("http_proxy", proxy.url)
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=sim.meta_url)
    assert sim.store.check_token((await provider()).value) is not None
    assert proxy.saw(f"POST {sim.meta_url}")


def test_create_token_refuses_direct_while_the_vendor_reads_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """no_proxy (or proxy=None) with HTTP_PROXY set: the vendor's client would still use the
    variable, so the provider says so when built instead of going through that proxy."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(ValueError, match="HTTP_PROXY is set and the vendor's client would use"):
        AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:8080/")
    with pytest.raises(ValueError, match="unset HTTP_PROXY and http_proxy"):
        AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:8080/", proxy=None)


async def test_create_token_over_https_with_a_ca_bundle(
    tls_sim: Simulator, certs: Certificates
) -> None:
    """ssl= a CA bundle verifies the meta service; without it the certificate is refused."""
    assert tls_sim.meta_url.startswith("https://")
    trusted = AliyunTokenProvider(AKID, SECRET, endpoint=tls_sim.meta_url, ssl=certs.ca_bundle)
    assert tls_sim.store.check_token((await trusted()).value) is not None
    untrusted = AliyunTokenProvider(AKID, SECRET, endpoint=tls_sim.meta_url)
    with pytest.raises(TokenProviderError, match=r"(?i)certificate"):
        await untrusted()
    with pytest.raises(TypeError, match="CA bundle path"):
        AliyunTokenProvider(AKID, SECRET, endpoint=tls_sim.meta_url, ssl=certs.client())  # type: ignore[arg-type]


async def test_create_token_dead_proxy(caplog: pytest.LogCaptureFixture) -> None:
    """A dead proxy: a retryable TokenProviderError without the proxy's password."""
    dead = f"http://tester:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    provider = AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:9/", proxy=dead)
    with pytest.raises(TokenProviderError) as info:
        await provider()
    assert info.value.retryable
    no_password_anywhere(info.value, caplog)


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts and never answers, and holds connections until the end."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/"
        for writer in held:
            writer.close()


async def test_create_token_total_timeout(silent_server: str) -> None:
    """timeout= bounds the awaited CreateToken against a server that never answers."""
    provider = AliyunTokenProvider(
        AKID, SECRET, endpoint=silent_server, read_timeout=60, timeout=0.3
    )
    with pytest.raises(TokenProviderError, match=r"no answer from .* within 0.3 s") as info:
        await provider()
    assert info.value.retryable


async def test_create_token_read_timeout_sync(silent_server: str) -> None:
    """read_timeout= reaches the vendor's blocking client: sync() gives up on a silent server."""
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=silent_server, read_timeout=0.3)
    with pytest.raises(TokenProviderError, match=r"(?i)timed out|timeout") as info:
        await asyncio.to_thread(provider.sync)
    assert info.value.retryable


def test_create_token_timeouts_are_checked() -> None:
    """Timeouts must be positive."""
    with pytest.raises(ValueError, match="read_timeout must be positive"):
        AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:9/", read_timeout=0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:9/", timeout=-1)


# -- the resolution rules -----------------------------------------------------------------------


def test_scheme_picks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """ws:// and http:// take http_proxy, wss:// and https:// https_proxy, else all_proxy."""
    monkeypatch.setenv("HTTP_PROXY", "http://plain:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:2")
    assert resolve_network("ws://gw/ws").proxy == "http://plain:1"
    assert resolve_network("http://gw/").proxy == "http://plain:1"
    assert resolve_network("wss://gw/ws").proxy == "http://secure:2"
    assert resolve_network("https://gw/").proxy == "http://secure:2"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "every:3")  # no scheme: http:// as curl and httpx read it
    assert resolve_network("wss://gw/ws").proxy == "http://every:3"


def test_lower_case_wins_and_explicit_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """http_proxy wins over HTTP_PROXY; proxy= a URL wins over both; no_proxy matches suffixes."""
    monkeypatch.setenv("HTTP_PROXY", "http://upper:1")
    monkeypatch.setenv("http_proxy", "http://lower:2")
    assert resolve_network("ws://gw/ws").proxy == "http://lower:2"
    assert resolve_network("ws://gw/ws", "https://mine:3").proxy == "https://mine:3"
    monkeypatch.setenv("no_proxy", ".internal.example")
    assert resolve_network("ws://nls.internal.example/ws").proxy is None
    assert resolve_network("ws://nls.internal.example/ws", "http://mine:4").proxy == (
        "http://mine:4"
    )


def test_bad_proxy_settings_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SOCKS or malformed proxy is a ValueError naming where it came from, password hidden."""
    with pytest.raises(ValueError, match=r"^proxy: socks5://u:<redacted>@h:1 is not an http"):
        resolve_network("wss://gw/ws", "socks5://u:pw-hidden@h:1")
    monkeypatch.setenv("https_proxy", "socks5://h:1")
    with pytest.raises(ValueError, match=r"^https_proxy: "):
        Recognizer("wss://gw/ws", "appkey", "token")
    with pytest.raises(ValueError, match="is not a file"):
        resolve_network("wss://gw/ws", None, "/nonexistent/ca.pem")
    with pytest.raises(TypeError, match="proxy must be"):
        resolve_network("wss://gw/ws", 3128)  # type: ignore[arg-type]


async def test_rest_and_create_token_wrong_proxy_login(
    tls_sim: Simulator,
    login_proxy: TinyProxy,
    certs: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """REST's CONNECT refused for the login is the same proxy_auth error; CreateToken's answer
    from the proxy is an error; neither shows the password given."""
    caplog.set_level(logging.DEBUG)
    wrong = login_proxy.url_with("tester", PROXY_PASSWORD + "-wrong")
    rest = RestRecognizer(
        tls_sim.rest_url, tls_sim.appkey, tls_sim.token(), proxy=wrong, ssl=certs.ca_bundle
    )
    with pytest.raises(ar.TransportError) as info:
        await rest.recognize(SPEECH)
    assert info.value.kind == "proxy_auth"
    no_password_anywhere(info.value, caplog)
    provider = AliyunTokenProvider(
        AKID, SECRET, endpoint=tls_sim.meta_url, proxy=wrong, ssl=certs.ca_bundle
    )
    with pytest.raises(TokenProviderError) as failed:
        await provider()
    no_password_anywhere(failed.value, caplog)


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_proxy_options(
    tmp_path: Path,
    proxy: TinyProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--proxy carries recognize's WebSocket and its CreateToken; --no-proxy ignores a dead
    environment proxy; a bad --proxy is one line (exit 2) without the password."""
    for name in ("NLS_TOKEN", "NLS_APPKEY", "ASR_RESILIENCE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    audio = tmp_path / "hello.wav"
    audio.write_bytes(wav(SPEECH))
    with SimulatorThread(config=SimulatorConfig(transcripts=[TEXT])) as sim:
        base = ["recognize", str(audio), "--gateway", sim.gateway_url, "--appkey", sim.appkey]
        assert cli.main([*base, "--meta", sim.meta_url, "--proxy", proxy.url]) == 0
        assert capsys.readouterr().out.strip() == TEXT
        assert proxy.saw(f"POST {sim.meta_url}")
        assert proxy.saw(f"CONNECT 127.0.0.1:{sim.simulator.port} ")
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        assert cli.main([*base, "--token", sim.token(), "--no-proxy"]) == 0
        assert capsys.readouterr().out.strip() == TEXT
        bad = f"socks5://tester:{PROXY_PASSWORD}@127.0.0.1:1080"
        assert cli.main([*base, "--token", sim.token(), "--proxy", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "--proxy: 'socks5://tester:<redacted>@127.0.0.1:1080' is not a URL" in err
        assert PROXY_PASSWORD not in err

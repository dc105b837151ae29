"""RESTful one-sentence recognition: ``POST /stream/v1/asr`` on httpx, resilient by default.

docs/protocol.md "REST one-sentence recognition": query ``appkey``, ``format``, ``sample_rate`` (and
the optional switches), headers ``X-NLS-Token`` and ``Content-Type: application/octet-stream``, the
raw audio as the body; the answer is JSON ``{"task_id", "result", "status", "message"}``. A
``status`` other than 20000000 is the vendor's verdict whatever the HTTP status (the SDK examples
parse the body under any non-200), so it is raised as ``NlsError`` with the code; an error without
such a body stays httpx's ``HTTPStatusError``, which the extractor classifies by the HTTP status.
httpx's transport errors are left to the extractor as well.

The answer is read as a stream and refused past ``MAX_REST_BODY`` bytes (the WebSocket client
refuses frames past the same size): a result is a few kilobytes, and a hostile or broken
endpoint must not fill the process's memory. The policy's deadline bounds the whole exchange.

The errors raised carry no token: ``NlsError`` scrubs the vendor's text (``The token '…' has
expired!``) when it is built, and the call's final error leaves with its chain scrubbed. A
token with whitespace or control characters is refused before the request
(:class:`~asr_resilience.clients.InvalidTokenError`); redirects are never followed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx

from .._endpoints import DEFAULT_REGION, REGIONS, resolve_url
from .._errors import NlsError, RemoteProtocolError, TransportError
from .._extract import rest_result
from .._failure import SUCCESS
from .._network import Network, ProxySetting, SslSetting, resolve_network, transport_error
from ..retry._attempt import Attempt
from ..retry._call import CallState
from ..retry._engine import run_async
from ..retry._overrides import call_limits
from ..retry._settings import PolicyLike, make_settings
from ..tokens import TokenManager
from ._audio import ONE_SENTENCE_MAX_BYTES, ONE_SENTENCE_MAX_SECONDS, AudioData, load_audio
from ._credentials import TOKEN_HEADER, check_token, resolve_appkey, resolve_tokens
from ._results import Recognition

__all__ = ["DEFAULT_REST_URL", "RestRecognizer"]

DEFAULT_REST_URL = REGIONS[DEFAULT_REGION].rest
"""The REST URL when neither the caller nor the environment names one."""
MAX_REST_BODY = 1024 * 1024
"""Bytes of one REST answer; a recognition result is a few kilobytes."""


class RestRecognizer:
    """One-sentence recognition over HTTP: one POST per attempt.

    The arguments are :class:`~asr_resilience.clients.Recognizer`'s (``url`` is the REST URL,
    else ``region``'s, else ``$NLS_REST_URL``, else ``$NLS_REGION``'s, else cn-shanghai's);
    ``timeout`` is httpx's
    per-operation timeout (seconds); the policy's deadline bounds each whole exchange, so a
    server that drips its answer cannot hold a call past it. Pass ``client`` to share an
    ``httpx.AsyncClient`` (its connections) across calls; it is not closed here. Without one,
    ``async with RestRecognizer(...) as rec:`` opens one client that every call inside the block
    shares (its connections are reused) and closes it at the end (or :meth:`aclose`); outside
    such a block each call opens and closes its own.

    ``proxy`` and ``ssl`` are :class:`~asr_resilience.clients.Recognizer`'s, for ``https://``;
    they configure the clients opened here (httpx's own reading of the environment is off, the
    environment's proxy having been resolved already), so they cannot go with ``client``:
    configure a client of your own yourself.
    """

    def __init__(
        self,
        url: str | None = None,
        appkey: str = "",
        tokens: TokenManager | str | None = None,
        policy: PolicyLike = None,
        *,
        scope: str | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        region: str | None = None,
        proxy: ProxySetting = True,
        ssl: SslSetting = None,
    ) -> None:
        if client is not None and (proxy is not True or ssl is not None):
            raise ValueError(
                "proxy= and ssl= configure the httpx client RestRecognizer opens: with client=, "
                "give that client its proxy and verify settings instead"
            )
        self.url = resolve_url("rest", url, region)
        # With client=, the caller's client decides; nothing is resolved that would go unused.
        self.network = resolve_network(self.url, proxy, ssl) if client is None else Network()
        self.appkey = resolve_appkey(appkey)
        self.tokens = resolve_tokens(tokens)
        self.params: dict[str, Any] = dict(params or {})
        self.timeout = timeout
        self.client = client
        self._owned: httpx.AsyncClient | None = None  # opened by __aenter__, closed by aclose
        self._settings = make_settings(
            policy,
            tokens=self.tokens,
            scope=scope or self.appkey,
            function="RestRecognizer.recognize",
        )

    async def __aenter__(self) -> RestRecognizer:
        """Open one httpx client for the calls of the block (unless ``client`` was given)."""
        if self.client is None and self._owned is None:
            self._owned = self._new_client()
        return self

    def _new_client(self) -> httpx.AsyncClient:
        network = self.network
        return httpx.AsyncClient(
            proxy=network.proxy,
            # httpx's default verification (certifi, or $SSL_CERT_FILE / $SSL_CERT_DIR) unless
            # ssl= was given; trust_env=False keeps httpx from reading the proxy variables again.
            verify=network.ssl if network.ssl is not None else httpx.create_ssl_context(),
            trust_env=False,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client opened by ``async with`` (a caller's ``client`` stays open)."""
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned.aclose()

    async def recognize(
        self,
        audio: bytes | str | os.PathLike[str],
        *,
        format: str | None = None,
        sample_rate: int | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> Recognition:
        """Recognise a file or WAV / raw bytes (see :func:`~asr_resilience.clients.load_audio`).

        ``deadline`` and ``max_attempts`` override the policy's for this call, as
        :meth:`Recognizer.recognize <asr_resilience.clients.Recognizer.recognize>`'s do.
        """
        limits = call_limits(deadline, max_attempts)
        data = load_audio(
            audio,
            format=format or self.params.get("format"),
            sample_rate=sample_rate or self.params.get("sample_rate"),
            max_seconds=ONE_SENTENCE_MAX_SECONDS,
            max_bytes=ONE_SENTENCE_MAX_BYTES,
        )
        shared = self.client or self._owned
        if shared is not None:
            return await self._recognize(shared, data, limits)
        async with self._new_client() as client:
            return await self._recognize(client, data, limits)

    async def _recognize(
        self,
        client: httpx.AsyncClient,
        data: AudioData,
        limits: tuple[float | None, int | None],
    ) -> Recognition:
        async def body(attempt: Attempt) -> Recognition:
            text, task_id = await self._post(client, attempt.token, data)
            return Recognition(text, task_id, None, attempt.number)

        settings = self._settings
        return await run_async(CallState(settings, settings.clock.monotonic(), *limits), body)

    async def _post(
        self, client: httpx.AsyncClient, token: str, data: AudioData
    ) -> tuple[str, str]:
        """One request; returns (text, task_id) or raises NlsError / httpx's errors."""
        query = {
            **self.params,
            "appkey": self.appkey,
            "format": data.format,
            "sample_rate": data.sample_rate,
        }
        headers = {TOKEN_HEADER: check_token(token), "Content-Type": "application/octet-stream"}
        with self._mapped_errors():
            async with client.stream(
                "POST",
                self.url,
                params=query,
                headers=headers,
                content=data.data,
                timeout=self.timeout,
                # Never carry the token to wherever a redirect points, even on a shared client
                # built with follow_redirects=True: a 3xx is the answer, classified by its status.
                follow_redirects=False,
            ) as streamed:
                raw = await _read_capped(streamed)
        # A whole response again, so that raise_for_status and the extractor can read its body.
        response = httpx.Response(
            streamed.status_code,
            headers=streamed.headers,
            content=raw,
            request=streamed.request,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        failure = rest_result(body)
        if failure is not None and failure.code is not None:
            raise NlsError(
                failure.code, failure.message, failure.task_id, http_status=response.status_code
            )
        response.raise_for_status()
        if not isinstance(body, Mapping) or body.get("status") != SUCCESS:
            raise RemoteProtocolError(
                f"the REST answer is not an NLS result: {response.text[:200]!r}"
            )
        text, task_id = body.get("result", ""), body.get("task_id", "")
        if not isinstance(text, str) or not isinstance(task_id, str):
            raise RemoteProtocolError("the REST answer's result and task_id must be strings")
        return text, task_id

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """A certificate that does not verify, a proxy out of reach or refusing the login, as
        the WebSocket clients say them (``asr_resilience/_network.py``); the rest unchanged."""
        try:
            yield
        except httpx.ProxyError as exc:
            # httpx: the proxy answered the CONNECT with an error status (the text names it).
            kind = "proxy_auth" if str(exc)[:3] in ("401", "407") else "refused"
            raise TransportError(
                kind, f"the proxy {self.network.shown} refused the CONNECT: {exc}"
            ) from exc
        except httpx.ConnectError as exc:
            mapped = transport_error(exc, self.network, self.url)
            if mapped is None and self.network.proxy is not None:
                mapped = TransportError(
                    "refused", f"cannot reach the proxy {self.network.shown}: {exc}"
                )
            if mapped is None:
                raise
            raise mapped from exc


async def _read_capped(response: httpx.Response) -> bytes:
    """The body of a streamed response; RemoteProtocolError past MAX_REST_BODY bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REST_BODY:
        raise RemoteProtocolError(
            f"the REST answer announces {int(declared)} bytes; "
            f"an NLS result is at most {MAX_REST_BODY} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REST_BODY:
            raise RemoteProtocolError(
                f"the REST answer is larger than {MAX_REST_BODY} bytes: not an NLS result"
            )
        chunks.append(chunk)
    return b"".join(chunks)

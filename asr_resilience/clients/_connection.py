"""The WebSocket to the gateway, and the one place its library's errors become ours.

Everything the clients do on a socket goes through :class:`Connection`, and every call on it runs
inside :func:`mapped_errors`, so websockets' exceptions are translated once, here (STYLE.md §8),
into what the failure extractor (``asr_resilience/_extract.py``) classifies:

=====================================  ==============================================
websockets / asyncio                   raised instead
=====================================  ==============================================
``InvalidStatus`` 403 at the handshake ``NlsError(403, "Forbidden", http_status=403)``
``InvalidStatus`` other statuses       unchanged (the extractor reads the HTTP status)
``ConnectionClosed`` (any close)       ``TransportError("abnormal_close", ...)``
``asyncio.TimeoutError`` (Python 3.10) ``TimeoutError``
a certificate that does not verify     ``TransportError("tls", ...)`` (never retried)
``InvalidProxyStatus`` 401, 407        ``TransportError("proxy_auth", ...)`` (never retried)
``InvalidProxyStatus`` other statuses  ``TransportError("refused", ...)`` naming the proxy
``OSError`` opening through a proxy    ``TransportError("refused", ...)`` naming the proxy
``OSError``, other handshake errors    unchanged (the extractor maps them)
=====================================  ==============================================

A proxy is named with its password redacted (``asr_resilience/_network.py``).

Whatever is raised leaves with its chain scrubbed (``_secrets.scrub_exception``): a close
reason or a handshake answer that repeats the token does not reach a traceback.

A handshake answered with a redirect (3xx) is refused with :class:`RedirectRefusedError`: the
``X-NLS-Token`` header must never reach another address (websockets would follow the redirect
and send the header again), and the gateway has no reason to redirect. A token with whitespace or
control characters is refused with :class:`InvalidTokenError` before connecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import websockets.exceptions as wsx
from websockets.asyncio.client import ClientConnection, connect

from .._errors import AsrResilienceError, NlsError, RedirectRefusedError, TransportError
from .._network import Network, resolve_network, transport_error
from .._secrets import scrub_exception
from ..observe._stdlib import redacting_logger
from ._credentials import TOKEN_HEADER, check_token

__all__ = [
    "CLOSE_TIMEOUT",
    "MAX_EVENT_BYTES",
    "Connection",
    "connected",
    "mapped_errors",
    "open_connection",
]

MAX_EVENT_BYTES = 1024 * 1024
"""Largest gateway frame accepted: events are small JSON texts, far below this."""
CLOSE_TIMEOUT = 2.0
"""Seconds to wait for the gateway's side of the closing handshake. The call's outcome is known
by then, and a gateway that stopped answering (the reason for many retries) would otherwise hold
each attempt for websockets' default 10 s."""


@contextmanager
def mapped_errors(network: Network | None = None, url: str = "") -> Iterator[None]:
    """Translate websockets' and asyncio's exceptions raised inside the block (see the table).

    ``network`` and ``url``: the settings the block connects to ``url`` with, when it opens a
    connection (an ``OSError`` then means the proxy, if there is one, is out of reach).
    """
    try:
        with _mapping(network, url):
            yield
    except AsrResilienceError as error:
        # Raised: its chain is final now (the context included), so it can be scrubbed.
        scrub_exception(error)
        raise


@contextmanager
def _mapping(network: Network | None, url: str) -> Iterator[None]:
    try:
        yield
    except wsx.InvalidProxyStatus as exc:
        status = exc.response.status_code
        shown = network.shown if network is not None else "the proxy"
        if status in (401, 407):  # 407 by RFC 9110; some proxies (tinyproxy) answer 401
            raise TransportError(
                "proxy_auth", f"the proxy {shown} refused the login (HTTP {status})"
            ) from exc
        raise TransportError(
            "refused", f"the proxy {shown} answered the CONNECT with HTTP {status}"
        ) from exc
    except wsx.InvalidStatus as exc:
        # docs/protocol.md "Handshake and token header": a bad or expired token may be refused
        # as HTTP 403 at the handshake; as the seed's 403 row it takes the refresh-token action.
        if exc.response.status_code == 403:
            raise NlsError(403, "Forbidden", http_status=403) from exc
        raise
    except wsx.ConnectionClosed as exc:
        # docs/protocol.md "Events": the gateway closes after TaskFailed or Completed, which the
        # clients read before they would read again. A close met while sending or waiting for
        # an event therefore came before the final event: the connection dropped.
        raise TransportError("abnormal_close", _describe_close(exc)) from exc
    except asyncio.TimeoutError as exc:
        if isinstance(exc, TimeoutError):  # Python >= 3.11: the same class
            raise
        raise TimeoutError(str(exc) or "timed out") from exc
    except OSError as exc:
        mapped = transport_error(exc, network or Network(), url)
        if mapped is None:
            raise
        raise mapped from exc


def _describe_close(exc: wsx.ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "the connection was lost without a close frame"
    reason = f" {frame.reason}" if frame.reason else ""
    return f"closed with code {frame.code}{reason}"


class _NoRedirects(connect):
    """websockets' ``connect`` that refuses every redirect instead of following it."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        if isinstance(exc, wsx.InvalidStatus) and 300 <= exc.response.status_code < 400:
            location = exc.response.headers.get("Location", "")
            return RedirectRefusedError(exc.response.status_code, location)
        return exc


class Connection:
    """One open WebSocket to the gateway; its methods raise only mapped errors."""

    __slots__ = ("_ws",)

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, frame: str | bytes) -> None:
        """Send a text (directive) or binary (audio) frame."""
        with mapped_errors():
            await self._ws.send(frame)

    async def recv(
        self, timeout: float | None = None, *, waiting_for: str = "a frame"
    ) -> str | bytes:
        """The next frame; ``TimeoutError`` naming ``waiting_for`` after ``timeout`` seconds."""
        with mapped_errors():
            if timeout is None:
                return await self._ws.recv()
            try:
                # Cancelling recv() loses no data (websockets' documentation).
                return await asyncio.wait_for(self._ws.recv(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no {waiting_for} within {timeout:g} s") from None

    async def close(self) -> None:
        """Close the socket (a no-op when the gateway closed it already); never raises.

        The call's outcome is known by the time it closes: a close that fails cannot change it.
        """
        with suppress(wsx.WebSocketException, OSError):
            await self._ws.close()


async def open_connection(
    url: str,
    token: str,
    *,
    open_timeout: float | None = 10.0,
    max_size: int | None = MAX_EVENT_BYTES,
    close_timeout: float | None = CLOSE_TIMEOUT,
    network: Network | None = None,
) -> Connection:
    """Open a WebSocket to ``url`` carrying ``token`` in the ``X-NLS-Token`` header.

    ``network``: the proxy and TLS context (``asr_resilience/_network.py``); None resolves the
    defaults for ``url`` (the environment's proxy, websockets' default TLS verification).
    ``open_timeout`` bounds the proxy's CONNECT, the TLS and the WebSocket handshakes together.

    Raises :class:`InvalidTokenError` for a token no gateway would take (before connecting) and
    :class:`RedirectRefusedError` for a handshake answered with a redirect.
    """
    headers = {TOKEN_HEADER: check_token(token)} if token else {}
    network = network if network is not None else resolve_network(url)
    tls: dict[str, Any] = {}
    if network.ssl is not None and urlsplit(url).scheme.lower() == "wss":
        tls["ssl"] = network.ssl  # websockets refuses ssl= for a ws:// URL
    with mapped_errors(network, url):
        ws = await _NoRedirects(
            url,
            additional_headers=headers,
            # The proxy is resolved already (explicitly or from the environment, with no_proxy):
            # None turns websockets' own reading of the environment off.
            proxy=network.proxy,
            **tls,
            open_timeout=open_timeout,
            max_size=max_size,
            close_timeout=close_timeout,
            # websockets logs the handshake headers at DEBUG: the token must not show.
            logger=redacting_logger("asr_resilience.websockets.client"),
        )
    return Connection(ws)


@asynccontextmanager
async def connected(
    url: str,
    token: str,
    *,
    open_timeout: float | None = 10.0,
    max_size: int | None = MAX_EVENT_BYTES,
    close_timeout: float | None = CLOSE_TIMEOUT,
    network: Network | None = None,
) -> AsyncIterator[Connection]:
    """:func:`open_connection` as a context manager that closes the socket on the way out."""
    connection = await open_connection(
        url,
        token,
        open_timeout=open_timeout,
        max_size=max_size,
        close_timeout=close_timeout,
        network=network,
    )
    try:
        yield connection
    finally:
        await connection.close()

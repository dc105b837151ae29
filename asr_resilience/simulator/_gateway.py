"""The WebSocket side of the simulated gateway: the opening handshake and the connection handler.

docs/protocol.md "Services and endpoints" and "Handshake and token header": one path, ``/ws/v1``,
for every service; the token in the ``X-NLS-Token`` header or the ``token`` query parameter; a
missing or unknown token is refused with HTTP 403 at the handshake, while an expired or revoked one
is accepted here and refused by the start directive (40000001) — our choice of the vendor's two ways
(docs/protocol.md "Simulator choices").
"""

from __future__ import annotations

import asyncio
import weakref
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ._context import SimulatorContext, drop
from ._session import Admission, Session

PATH = "/ws/v1"
TOKEN_HEADER = "X-NLS-Token"
GARBAGE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: nonsense\r\n\x00\xff\r\n\r\n"
_REPEATED_BY_SDK = ("Sec-WebSocket-Key", "Sec-WebSocket-Version")


def tolerate_repeated_headers(headers: Headers) -> None:
    """Keep the first of repeated ``Sec-WebSocket-Key`` / ``-Version`` headers.

    docs/protocol.md "Official SDKs": ``nls`` passes its own fixed key and
    version as extra headers, and websocket-client adds its generated ones *before* them — so
    the request carries both, and the client checks ``Sec-WebSocket-Accept`` against the first
    key. websockets' ``ServerProtocol.process_request`` answers 400 to a repeated header
    (``MultipleValuesError``); ``process_request`` (the connection-level hook) runs before
    ``ServerProtocol.accept`` reads the headers, and ``Request.headers`` is a mutable
    ``Headers``, so deduplicating there is the supported way to be as lenient as the vendor.
    """
    for name in _REPEATED_BY_SDK:
        values = headers.get_all(name)
        if len(values) > 1:
            first = values[0]
            del headers[name]
            headers[name] = first


def _respond(connection: ServerConnection, status: int) -> Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return connection.respond(status, f"{phrase}\n")


class Gateway:
    """``process_request`` and handler for ``websockets.asyncio.server.serve``."""

    def __init__(self, ctx: SimulatorContext) -> None:
        self.ctx = ctx
        # What a handshake learnt, for the handler of the same connection.
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, Admission] = (
            weakref.WeakKeyDictionary()
        )
        # The session each connection serves and when it began, to describe connections a
        # test left open.
        self._sessions: weakref.WeakKeyDictionary[ServerConnection, tuple[Session, float]] = (
            weakref.WeakKeyDictionary()
        )

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Check the handshake; None accepts it, a Response refuses it."""
        ctx = self.ctx
        tolerate_repeated_headers(request.headers)
        url = urlsplit(request.path)
        if url.path != PATH:
            ctx.stats.handshakes_rejected += 1
            return _respond(connection, HTTPStatus.NOT_FOUND)
        number = ctx.next_session()
        ctx.stats.connections += 1
        tokens = request.headers.get_all(TOKEN_HEADER) or parse_qs(url.query).get("token", [])
        token = tokens[0] if tokens else ""
        admission = Admission(number, token)
        picked = ctx.scenario.select("handshake", number, None)
        if picked is not None:
            _, fault = picked
            ctx.stats.count_fault(fault.action)
            if fault.action == "code":
                ctx.stats.handshakes_rejected += 1
                return _respond(connection, fault.http_status)
            if fault.action in ("close", "reset", "garbage"):
                if fault.action == "garbage":
                    connection.transport.write(GARBAGE_RESPONSE)
                drop(connection.transport, reset=fault.action == "reset")
                return _respond(connection, HTTPStatus.SERVICE_UNAVAILABLE)  # never sent
            if fault.action == "stall":
                if await ctx.pause(fault.delay, connection.wait_closed()):
                    drop(connection.transport)
                    return _respond(connection, HTTPStatus.SERVICE_UNAVAILABLE)
            elif fault.action == "slow":
                admission.slow = fault.delay or 0.0
                if await ctx.pause(admission.slow, connection.wait_closed()):
                    return _respond(connection, HTTPStatus.SERVICE_UNAVAILABLE)
            elif fault.action == "trickle":
                # The handshake's response is websockets' to write: the frames after it trickle.
                admission.trickle = fault.delay or 0.0
            elif fault.action == "revoke_token" and token:
                ctx.store.revoke(token)
        if not token or not ctx.store.known_token(token):
            # Seed table, row 403: the token does not exist.
            ctx.stats.handshakes_rejected += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        self._admitted[connection] = admission
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """Serve one accepted connection."""
        admission = self._admitted.pop(connection, None)
        if admission is None:  # pragma: no cover - every accepted handshake was admitted
            return
        session = Session(self.ctx, connection, admission)
        self._sessions[connection] = (session, asyncio.get_running_loop().time())
        await session.run()

    def describe(self, connection: ServerConnection) -> str:
        """One line about a connection: its session, task, client and age."""
        peer = connection.remote_address
        client = f"{peer[0]}:{peer[1]}" if peer else "unknown client"
        found = self._sessions.get(connection)
        if found is None:
            return f"a connection from {client} (handshake not finished)"
        session, opened = found
        task = f"{session.service} task" if session.service else "no task started"
        age = asyncio.get_running_loop().time() - opened
        return f"session {session.number} ({task}, client {client}, open {age:.1f} s)"

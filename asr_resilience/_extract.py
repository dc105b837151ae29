"""Turn what a wrapped call raised (or returned) into a :class:`Failure` the policy can classify.

Most specific first: user-registered extractors, then the project's own errors, TaskFailed JSON
(as the official SDK hands it to ``on_error``), websockets handshake rejections and abnormal
closes, httpx status and transport errors, then network ``OSError``s (refused, reset,
unreachable, DNS) and ``TimeoutError``; a ``TransportError`` of a configuration kind (``tls``,
``proxy_auth``) and a local ``OSError`` such as a missing file is not a failure
of the service. An exception no
extractor recognises is not a failure of the service: it propagates untouched, never retried.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import websockets.exceptions as wsx

from ._errors import NlsError, ResilienceError, TransportError
from ._failure import SUCCESS, TRANSPORT_KINDS, Failure, TransportKind

E = TypeVar("E", bound=BaseException)
Extractor = Callable[[Any], "Failure | None"]

_user: list[tuple[type[BaseException], Extractor]] = []
# OSErrors that mean the network, not a local file: a missing audio file is not retried.
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH",
        "ECONNABORTED", "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "ENOTCONN",
        "ESHUTDOWN",
    )
    if hasattr(errno, name)
)  # fmt: skip
_lock = threading.Lock()
CONFIGURATION_KINDS = frozenset({"tls", "proxy_auth"})
"""TransportError kinds raised for the caller's configuration (a server certificate that does not
verify against the TLS settings, a proxy refusing the login): raised at once, never retried."""


def register_extractor(exc_type: type[E], extractor: Callable[[E], Failure | None]) -> None:
    """Teach the wrappers an exception type of your own; the newest registration wins."""
    with _lock:
        _user.insert(0, (exc_type, extractor))


def unregister_extractor(exc_type: type[BaseException]) -> None:
    """Forget the extractors registered for ``exc_type``."""
    with _lock:
        _user[:] = [(t, f) for t, f in _user if t is not exc_type]


def extract_failure(exc: BaseException) -> Failure | None:
    """The Failure ``exc`` stands for, or None when it is not a failure of the service."""
    for exc_type, extractor in tuple(_user):
        if isinstance(exc, exc_type):
            found = extractor(exc)
            if found is not None:
                return found
    if isinstance(exc, ResilienceError):
        return None  # an inner resilient call already decided; do not decide twice
    if isinstance(exc, NlsError):
        if exc.code == SUCCESS:
            return None
        return Failure(
            code=exc.code, message=exc.message, http_status=exc.http_status, task_id=exc.task_id
        )
    if isinstance(exc, TransportError):
        if exc.kind in CONFIGURATION_KINDS:
            return None  # a certificate or proxy login to fix: nothing a retry can change
        kind: TransportKind = exc.kind if exc.kind in TRANSPORT_KINDS else "other"
        return Failure(transport=kind, message=exc.detail)
    if isinstance(exc, wsx.WebSocketException):
        return _from_websockets(exc)
    if isinstance(exc, httpx.HTTPError):
        return _from_httpx(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Failure(transport="timeout", message=str(exc))
    if isinstance(exc, ConnectionRefusedError):
        return Failure(transport="refused", message=str(exc))
    if isinstance(exc, ConnectionError):
        return Failure(transport="reset", message=str(exc))
    if isinstance(exc, socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    ):
        return Failure(transport="other", message=str(exc))
    for arg in exc.args[:1]:
        found = task_failed(arg)
        if found is not None:
            return found
    return None


def task_failed(message: Any) -> Failure | None:
    """A Failure from a ``TaskFailed`` event (dict or JSON text); None if it is not one."""
    if isinstance(message, str | bytes):
        try:
            message = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(message, Mapping):
        return None
    header = message.get("header")
    if not isinstance(header, Mapping):
        return None
    status = header.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or status == SUCCESS:
        return None
    # docs/protocol.md "Events": the text is `status_text`, one docs page says `status_message`.
    text = header.get("status_text", header.get("status_message", ""))
    task_id = header.get("task_id")
    return Failure(
        code=status,
        message=text if isinstance(text, str) else str(text),
        task_id=task_id if isinstance(task_id, str) else None,
    )


def rest_result(body: Any) -> Failure | None:
    """A Failure from a REST result body whose ``status`` is not 20000000; None otherwise."""
    if isinstance(body, httpx.Response):
        try:
            body = body.json()
        except ValueError:
            return None
    if not isinstance(body, Mapping):
        return None
    status = body.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or status == SUCCESS:
        return None
    message = body.get("message", "")
    task_id = body.get("task_id")
    return Failure(
        code=status,
        message=message if isinstance(message, str) else str(message),
        task_id=task_id if isinstance(task_id, str) and task_id else None,
    )


def _from_websockets(exc: wsx.WebSocketException) -> Failure | None:
    if isinstance(exc, wsx.InvalidStatus):
        return Failure(
            http_status=exc.response.status_code, message=f"HTTP {exc.response.status_code}"
        )
    if isinstance(exc, wsx.ConnectionClosed):
        # docs/protocol.md "Events": the gateway closes only after TaskFailed or Completed; a
        # close the client did not expect (no close frame, or before the final event) is a drop.
        return Failure(transport="abnormal_close", message=str(exc))
    if isinstance(exc, wsx.InvalidURI):
        return None  # the caller's configuration: nothing a retry can fix
    if isinstance(exc, wsx.InvalidHandshake):
        return Failure(transport="other", message=str(exc))
    return None


def _from_httpx(exc: httpx.HTTPError) -> Failure | None:
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        vendor = None
        try:
            vendor = rest_result(response.json())
        except ValueError:
            vendor = None
        if vendor is not None:
            return Failure(
                code=vendor.code,
                message=vendor.message,
                http_status=response.status_code,
                task_id=vendor.task_id,
            )
        return Failure(http_status=response.status_code, message=f"HTTP {response.status_code}")
    if isinstance(exc, httpx.TimeoutException):
        return Failure(transport="timeout", message=str(exc))
    if isinstance(exc, httpx.ConnectError):
        return Failure(transport="refused", message=str(exc))
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return Failure(transport="reset", message=str(exc))
    if isinstance(exc, httpx.TransportError):
        return Failure(transport="other", message=str(exc))
    return None

"""extract_failure, task_failed, rest_result and the extractor registry, on real libraries."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.http11 import Request, Response

import asr_resilience as ar
from asr_resilience._extract import (
    extract_failure,
    register_extractor,
    rest_result,
    task_failed,
    unregister_extractor,
)
from asr_resilience._failure import TRANSPORT_KINDS, Failure, TransportKind
from asr_resilience.testing import no_wait

TOO_MANY = "Gateway:TOO_MANY_REQUESTS:Too many requests!"
TASK_FAILED: dict[str, Any] = {
    "header": {
        "namespace": "Default",
        "name": "TaskFailed",
        "status": 40000005,
        "status_text": TOO_MANY,
        "task_id": "abc",
    }
}
VENDOR_BODY = {"task_id": "t", "result": "", "status": 40000003, "message": "PARAMETER_INVALID"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the project's own errors -----------------------------------------------------------------


def test_nls_error_fields_carried_over() -> None:
    """An NlsError becomes a Failure with its code, message, task id and HTTP status."""
    exc = ar.NlsError(40000001, "The token is invalid!", "task-1", http_status=403)
    assert extract_failure(exc) == Failure(
        code=40000001, message="The token is invalid!", http_status=403, task_id="task-1"
    )


def test_nls_error_without_optional_fields() -> None:
    """An NlsError with only a code gives a code-only Failure."""
    failure = extract_failure(ar.NlsError(50000000))
    assert failure == Failure(code=50000000)
    assert failure is not None
    assert failure.is_code_only


def test_nls_error_success_is_not_a_failure() -> None:
    """An NlsError carrying 20000000 (success) is not a failure."""
    assert extract_failure(ar.NlsError(20000000, "SUCCESS")) is None


@pytest.mark.parametrize("kind", TRANSPORT_KINDS)
def test_transport_error_kind(kind: TransportKind) -> None:
    """A TransportError keeps its kind, and its detail becomes the message."""
    assert extract_failure(ar.TransportError(kind, "detail")) == Failure(
        transport=kind, message="detail"
    )


def test_transport_error_unknown_kind_is_other() -> None:
    """A TransportError with a kind outside the known ones is classified as 'other'."""
    failure = extract_failure(ar.TransportError("cosmic-ray"))
    assert failure is not None
    assert failure.transport == "other"


@pytest.mark.parametrize(
    "exc",
    [
        ar.ResilienceError("decided"),
        ar.FixClientError("bad request", code=40000003),
        ar.RetryExhaustedError("spent", code=50000000),
        ar.TokenRefreshError("no token"),
    ],
)
def test_resilience_error_is_not_a_failure(exc: ar.ResilienceError) -> None:
    """A ResilienceError (an inner call already decided) is never classified again."""
    assert extract_failure(exc) is None


# --- builtin exceptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "reset"),
        (BrokenPipeError(32, "Broken pipe"), "reset"),
        (TimeoutError("timed out"), "timeout"),
        (asyncio.TimeoutError(), "timeout"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "other"),
        (socket.gaierror(-2, "Name or service not known"), "other"),
    ],
)
def test_builtin_os_errors(exc: BaseException, kind: TransportKind) -> None:
    """Network OSErrors map to refused / reset / timeout, or 'other' (unreachable, DNS)."""
    failure = extract_failure(exc)
    assert failure is not None
    assert failure.transport == kind
    assert failure.code is None
    assert failure.http_status is None
    assert failure.message == str(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad value"),
        KeyError("k"),
        RuntimeError(),
        Exception("plain"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
)
def test_unrelated_exception_is_not_a_failure(exc: BaseException) -> None:
    """An exception no extractor recognises (ValueError, ...) is not a failure of the service."""
    assert extract_failure(exc) is None


# --- TaskFailed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg", [TASK_FAILED, json.dumps(TASK_FAILED), json.dumps(TASK_FAILED).encode()]
)
def test_task_failed_in_first_arg(arg: object) -> None:
    """An exception whose first argument is a TaskFailed event (dict or JSON) is that failure."""
    expected = Failure(code=40000005, message=TOO_MANY, task_id="abc")
    assert extract_failure(Exception(arg)) == expected
    assert extract_failure(RuntimeError(arg, "second arg")) == expected


def test_task_failed_only_first_arg_counts() -> None:
    """A TaskFailed event in a later argument is not looked at."""
    assert extract_failure(Exception("on_error", TASK_FAILED)) is None


def test_task_failed_status_message() -> None:
    """`status_message` is read when the header has no `status_text`."""
    header = dict(TASK_FAILED["header"])
    header["status_message"] = header.pop("status_text")
    assert task_failed({"header": header}) == Failure(
        code=40000005, message=TOO_MANY, task_id="abc"
    )


def test_task_failed_status_text_wins_over_status_message() -> None:
    """With both present, `status_text` is the message."""
    header = {**TASK_FAILED["header"], "status_message": "other text"}
    failure = task_failed({"header": header})
    assert failure is not None
    assert failure.message == TOO_MANY


def test_task_failed_without_text_or_task_id() -> None:
    """A header with only a status gives a code-only Failure without task id."""
    assert task_failed({"header": {"status": 41010101}}) == Failure(code=41010101)


@pytest.mark.parametrize(
    "garbage",
    [
        "not json at all",
        b"\xff\xfe not utf-8",
        "[1, 2, 3]",
        [TASK_FAILED],
        None,
        42,
        {},
        {"header": "not a mapping"},
        {"header": {"name": "TaskFailed", "status_text": "no status"}},
        {"header": {"status": 20000000, "status_text": "SUCCESS"}},
        {"header": {"status": True}},
        {"header": {"status": "40000005"}},
        {"header": {"status": 4.0e7}},
        json.dumps({"header": {"status": 20000000}}),
    ],
)
def test_task_failed_garbage(garbage: object) -> None:
    """Anything that is not a failed TaskFailed event gives None, never an exception."""
    assert task_failed(garbage) is None


# --- rest_result ------------------------------------------------------------------------------


def test_rest_result_on_dict() -> None:
    """A REST body whose status is not 20000000 is a Failure with its code, message, task id."""
    assert rest_result(VENDOR_BODY) == Failure(
        code=40000003, message="PARAMETER_INVALID", task_id="t"
    )


def test_rest_result_empty_task_id_is_none() -> None:
    """An empty task_id in the body becomes None."""
    assert rest_result({"task_id": "", "status": 40000003}) == Failure(code=40000003)


@pytest.mark.parametrize(
    "body",
    [
        {"task_id": "t", "result": "你好", "status": 20000000, "message": "SUCCESS"},
        {"result": "no status"},
        {"status": True},
        {"status": "40000003"},
        [VENDOR_BODY],
        "text",
        None,
    ],
)
def test_rest_result_not_a_failure(body: object) -> None:
    """Success, a missing or non-integer status, or a non-mapping body gives None."""
    assert rest_result(body) is None


def test_rest_result_on_response() -> None:
    """An httpx.Response with a failed vendor body is read as JSON."""
    response = httpx.Response(400, json=VENDOR_BODY)
    assert rest_result(response) == Failure(code=40000003, message="PARAMETER_INVALID", task_id="t")


def test_rest_result_on_successful_response() -> None:
    """An httpx.Response with status 20000000 in its body gives None."""
    response = httpx.Response(200, json={"status": 20000000, "result": "ok"})
    assert rest_result(response) is None


def test_rest_result_on_non_json_response() -> None:
    """An httpx.Response whose body is not JSON gives None."""
    assert rest_result(httpx.Response(503, text="Service Unavailable")) is None


# --- websockets -------------------------------------------------------------------------------


async def _never_called(connection: ServerConnection) -> None:
    raise AssertionError("the handshake was supposed to be rejected")


def _forbid(connection: ServerConnection, request: Request) -> Response:
    return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")


async def _abort(connection: ServerConnection) -> None:
    transport = connection.transport
    assert transport is not None
    transport.abort()  # drop the TCP connection: no close frame
    await connection.wait_closed()


async def test_websockets_handshake_rejected() -> None:
    """A real handshake answered 403 (InvalidStatus) is Failure(http_status=403)."""
    async with serve(_never_called, "127.0.0.1", 0, process_request=_forbid) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{port}/ws/v1"):
                pass  # pragma: no cover - the handshake fails
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.http_status == 403
    assert failure.code is None
    assert failure.transport is None


async def test_websockets_abnormal_close() -> None:
    """A connection dropped without a close frame (ConnectionClosedError) is abnormal_close."""
    async with serve(_abort, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/ws/v1") as ws:
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.transport == "abnormal_close"
    assert failure.code is None


async def test_websockets_connection_refused() -> None:
    """Connecting to a closed port raises ConnectionRefusedError, classified as refused."""
    with pytest.raises(ConnectionRefusedError) as info:
        async with connect(f"ws://127.0.0.1:{closed_port()}/ws/v1", open_timeout=5):
            pass  # pragma: no cover - nothing listens
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.transport == "refused"


# --- httpx against a real HTTP server ---------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, so server_close() joins them: nothing outlives the test.
    daemon_threads = False
    release: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/vendor":
            self._answer(400, "application/json", json.dumps(VENDOR_BODY).encode())
        elif self.path == "/plain":
            self._answer(503, "text/plain", b"Service Unavailable\n")
        elif self.path == "/slow":
            # Answer only when the test lets go: the client times out long before.
            self.server.release.wait(timeout=30)
            with contextlib.suppress(OSError):  # the client has gone
                self._answer(200, "text/plain", b"too late\n")
        else:
            self._answer(404, "text/plain", b"Not Found\n")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


@dataclass
class _Running:
    url: str


@pytest.fixture
def http_server() -> Iterator[_Running]:
    """A threaded HTTP server on loopback, answering per path."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="test-http-server"
    )
    thread.start()
    try:
        yield _Running(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def _status_error(url: str) -> httpx.HTTPStatusError:
    with httpx.Client() as client:
        response = client.get(url)
        with pytest.raises(httpx.HTTPStatusError) as info:
            response.raise_for_status()
    return info.value


def test_httpx_status_error_with_vendor_body(http_server: _Running) -> None:
    """An HTTP 400 whose body carries a vendor status gives that code and the HTTP status."""
    exc = _status_error(http_server.url + "/vendor")
    assert extract_failure(exc) == Failure(
        code=40000003, message="PARAMETER_INVALID", http_status=400, task_id="t"
    )


def test_httpx_status_error_plain(http_server: _Running) -> None:
    """An HTTP 503 with a plain-text body gives Failure(http_status=503), no vendor code."""
    failure = extract_failure(_status_error(http_server.url + "/plain"))
    assert failure is not None
    assert failure.http_status == 503
    assert failure.code is None
    assert failure.transport is None


def test_httpx_read_timeout(http_server: _Running) -> None:
    """A server that does not answer within the client's timeout (ReadTimeout) is timeout."""
    with httpx.Client(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout) as info:
        client.get(http_server.url + "/slow")
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.transport == "timeout"


def test_httpx_connect_error() -> None:
    """httpx.ConnectError against a closed port is refused."""
    with httpx.Client() as client, pytest.raises(httpx.ConnectError) as info:
        client.get(f"http://127.0.0.1:{closed_port()}/")
    failure = extract_failure(info.value)
    assert failure is not None
    assert failure.transport == "refused"


# --- the registry -----------------------------------------------------------------------------


class SdkError(Exception):
    """A user's own exception type carrying a vendor code."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"sdk error {code}")
        self.code = code


class SdkOSError(OSError):
    """A user's exception that is also an OSError, so built-ins classify it too."""


@pytest.fixture
def registry() -> Iterator[list[type[BaseException]]]:
    """Types the test registers; their extractors are removed afterwards."""
    registered: list[type[BaseException]] = []
    yield registered
    for exc_type in registered:
        unregister_extractor(exc_type)


def test_register_extractor(registry: list[type[BaseException]]) -> None:
    """A registered extractor classifies its exception type; unregistering forgets it."""
    registry.append(SdkError)
    assert extract_failure(SdkError(50000000)) is None
    register_extractor(SdkError, lambda e: Failure(code=e.code) if e.code else None)
    assert extract_failure(SdkError(50000000)) == Failure(code=50000000)
    unregister_extractor(SdkError)
    assert extract_failure(SdkError(50000000)) is None


def test_register_extractor_newest_wins(registry: list[type[BaseException]]) -> None:
    """Of two extractors for the same type, the one registered last decides."""
    registry.append(SdkError)
    register_extractor(SdkError, lambda e: Failure(code=40000005))
    register_extractor(SdkError, lambda e: Failure(code=50000001))
    assert extract_failure(SdkError(1)) == Failure(code=50000001)


def test_register_extractor_subclass(registry: list[type[BaseException]]) -> None:
    """An extractor registered for a base class also classifies its subclasses."""

    class SubError(SdkError):
        pass

    registry.append(SdkError)
    register_extractor(SdkError, lambda e: Failure(code=50000000))
    assert extract_failure(SubError(1)) == Failure(code=50000000)


def test_register_extractor_none_falls_through(registry: list[type[BaseException]]) -> None:
    """An extractor returning None lets older extractors, then the built-ins, decide."""
    registry.append(SdkOSError)
    register_extractor(SdkOSError, lambda e: None)
    failure = extract_failure(SdkOSError(errno.EHOSTUNREACH, "no route to host"))
    assert failure is not None
    assert failure.transport == "other"

    registry.append(SdkError)
    register_extractor(SdkError, lambda e: Failure(code=40000005))
    register_extractor(SdkError, lambda e: Failure(code=e.code) if e.code else None)
    assert extract_failure(SdkError(None)) == Failure(code=40000005)
    assert extract_failure(SdkError(50000000)) == Failure(code=50000000)


def test_register_extractor_overrides_builtins(registry: list[type[BaseException]]) -> None:
    """A user extractor runs before the built-in ones, even for built-in types."""
    registry.append(SdkOSError)
    register_extractor(SdkOSError, lambda e: Failure(transport="reset", message="mine"))
    assert extract_failure(SdkOSError(5, "io")) == Failure(transport="reset", message="mine")


def test_unregister_unknown_type_is_harmless() -> None:
    """Unregistering a type that was never registered does nothing."""
    unregister_extractor(SdkError)
    assert extract_failure(SdkError(50000000)) is None


def test_registered_extractor_end_to_end(registry: list[type[BaseException]]) -> None:
    """@resilient retries a user exception mapped to 50000000, then returns the result."""
    registry.append(SdkError)
    register_extractor(SdkError, lambda e: Failure(code=e.code) if e.code else None)
    calls: list[int] = []

    @ar.resilient("default", scope="x")
    def recognize(audio: bytes) -> str:
        calls.append(len(audio))
        if len(calls) < 3:
            raise SdkError(50000000)
        return "你好"

    with no_wait():
        assert recognize(b"pcm") == "你好"
    assert calls == [3, 3, 3]


def test_unregistered_user_exception_propagates() -> None:
    """Without an extractor the same user exception is not retried: it propagates at once."""
    calls: list[int] = []

    @ar.resilient("default", scope="x")
    def recognize() -> str:
        calls.append(1)
        raise SdkError(50000000)

    with no_wait(), pytest.raises(SdkError):
        recognize()
    assert calls == [1]

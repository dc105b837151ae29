"""RestRecognizer against a hostile HTTP endpoint: each misbehaviour ends typed and in bounded time.

The endpoint is a small asyncio server in this file (not the simulator): it answers the POST the
way a broken or hostile server would, and counts what it received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

import asr_resilience as ar
from asr_resilience.clients import RestRecognizer
from asr_resilience.clients._rest import MAX_REST_BODY
from asr_resilience.testing import no_wait

from .audio_fixtures import speech_like
from .helpers import write_policy

SPEECH = speech_like([(300, 440)], gap_ms=100)
TOKEN = "hostile-rest-token-0001"
RESULT = {"task_id": "a" * 32, "result": "ok", "status": 20000000, "message": "SUCCESS"}
Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Endpoint:
    """An HTTP/1.1 server on loopback that reads one request per connection and runs a handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, str]] = []
        self.sent = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/stream/v1/asr"

    async def __aenter__(self) -> Endpoint:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(headers)
            await self.handler(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what several cases expect
        finally:
            writer.close()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write and count bytes that reached the socket buffer."""
        writer.write(data)
        await writer.drain()
        self.sent += len(data)


def answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 response."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.fixture
def fast(tmp_path: Path) -> ar.Policy:
    """The default policy with a 1 s deadline: every hostile case ends within it."""
    return write_policy(tmp_path, "defaults: {deadline: 1s}\n")


async def recognize(
    url: str, policy: ar.Policy, client: httpx.AsyncClient | None = None
) -> ar.clients.Recognition:
    """One RestRecognizer call, bounded well above the policy's deadline (the time bound)."""
    rec = RestRecognizer(url, "appkey-hostile", TOKEN, policy, client=client)
    return await asyncio.wait_for(rec.recognize(SPEECH, format="pcm", sample_rate=16000), 10)


async def test_drip_is_cut_by_the_deadline(fast: ar.Policy) -> None:
    """A server that drips its answer a byte at a time ends as DeadlineExceededError."""

    async def drip(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        while True:
            await server.write(writer, b" ")
            await asyncio.sleep(0.05)  # the server's pace, not a synchronisation

    async with Endpoint(drip) as server:
        with pytest.raises(ar.DeadlineExceededError):
            await recognize(server.url, fast)


async def test_announced_huge_answer_is_refused_unread(fast: ar.Policy) -> None:
    """A Content-Length past the cap is refused before the body is read."""

    async def huge(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n")
        while True:
            await server.write(writer, b"\0" * 65536)

    async with Endpoint(huge) as server:
        with pytest.raises(ar.protocol.RemoteProtocolError, match="announces 300000000 bytes"):
            await recognize(server.url, fast)
    assert len(server.requests) == 1


async def test_endless_chunked_answer_stops_at_the_cap(fast: ar.Policy) -> None:
    """A chunked answer without end is read up to the cap, then refused."""

    async def endless(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"\0" * 65536
        while True:
            await server.write(writer, b"%x\r\n%s\r\n" % (len(chunk), chunk))

    async with Endpoint(endless) as server:
        with pytest.raises(ar.protocol.RemoteProtocolError, match="larger than 1048576 bytes"):
            await recognize(server.url, fast)
    assert len(server.requests) == 1


async def test_answer_at_the_cap_is_still_read(fast: ar.Policy) -> None:
    """A JSON answer padded to just under the cap is still a result."""
    body = json.dumps(RESULT).encode()
    body += b" " * (MAX_REST_BODY - len(body))

    async def padded(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer("200 OK", body))

    async with Endpoint(padded) as server:
        assert (await recognize(server.url, fast)).text == "ok"


async def test_html_page_is_a_protocol_error_with_a_short_excerpt(fast: ar.Policy) -> None:
    """An HTML 200 is RemoteProtocolError quoting at most 200 characters of it, not retried."""
    page = b"<html><body>" + b"welcome " * 5000 + b"</body></html>"

    async def html(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer("200 OK", page, "text/html"))

    async with Endpoint(html) as server:
        with pytest.raises(ar.protocol.RemoteProtocolError, match="not an NLS result") as info:
            await recognize(server.url, fast)
    assert len(str(info.value)) < 300
    assert len(server.requests) == 1


async def test_json_under_a_wrong_content_type_is_read(fast: ar.Policy) -> None:
    """The body decides, not the Content-Type: a result labelled text/plain is a result."""

    async def mislabelled(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer("200 OK", json.dumps(RESULT).encode(), "text/plain"))

    async with Endpoint(mislabelled) as server:
        assert (await recognize(server.url, fast)).text == "ok"


async def test_non_json_server_error_is_retried_then_exhausted(fast: ar.Policy) -> None:
    """A bare 503 HTML page is retried by its HTTP status until the attempts run out."""

    async def unavailable(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer("503 Service Unavailable", b"<h1>down</h1>", "text/html"))

    async with Endpoint(unavailable) as server:
        with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
            await recognize(server.url, fast)
    assert info.value.code == 503
    assert len(server.requests) == fast.defaults.max_attempts


async def test_json_result_with_wrong_types_is_a_protocol_error(fast: ar.Policy) -> None:
    """A success status whose result is not a string is RemoteProtocolError."""
    body = json.dumps({**RESULT, "result": ["not", "text"]}).encode()

    async def wrong(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer("200 OK", body))

    async with Endpoint(wrong) as server:
        with pytest.raises(ar.protocol.RemoteProtocolError, match="must be strings"):
            await recognize(server.url, fast)


@pytest.mark.parametrize("follow", [False, True])
async def test_redirect_is_not_followed_and_the_token_stays_home(
    fast: ar.Policy, follow: bool
) -> None:
    """A 302 to another port fails typed; the other port never sees a request or the token."""

    async def elsewhere(writer: asyncio.StreamWriter) -> None:
        await thief.write(writer, answer("200 OK", json.dumps(RESULT).encode()))

    async with Endpoint(elsewhere) as thief:

        async def redirect(writer: asyncio.StreamWriter) -> None:
            head = f"HTTP/1.1 302 Found\r\nLocation: {thief.url}\r\nContent-Length: 0\r\n\r\n"
            await server.write(writer, head.encode())

        async with Endpoint(redirect) as server, httpx.AsyncClient(follow_redirects=follow) as c:
            with pytest.raises(ar.ResilienceError) as info:
                await recognize(server.url, fast, client=c)
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    assert info.value.code == 302
    assert thief.requests == []
    assert server.requests[0]["x-nls-token"] == TOKEN


async def test_connection_closed_mid_answer_is_retried(fast: ar.Policy) -> None:
    """An answer cut short (fewer bytes than announced) is a transport failure, retried."""

    async def cut(writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"task')

    async with Endpoint(cut) as server:
        with no_wait(), pytest.raises(ar.RetryExhaustedError):
            await recognize(server.url, fast)
    assert len(server.requests) == fast.defaults.max_attempts

"""A TCP proxy on loopback that cuts each connection after some bytes of upload: a flaky link.

Every connection is forwarded to the target; once the client has uploaded N bytes through it
(N drawn for each connection from a seeded RNG, between ``low`` and ``high``), the proxy forwards
exactly those N bytes and aborts both sides, as a link that dies mid-stream. Downloads pass
untouched. The draws depend only on the seed and the order connections arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

CHUNK = 64 * 1024


class CuttingProxy:
    """``async with CuttingProxy(target_url, low, high, seed) as proxy``: ``proxy.url`` is the
    target's URL through the proxy; ``cuts`` counts the connections it cut."""

    def __init__(self, target_url: str, low: int, high: int, *, seed: int = 0) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._target = (parts.hostname, parts.port)
        self._parts = parts
        self._random = random.Random(seed)
        self._low, self._high = low, high
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""
        self.cuts = 0
        self.limits: list[int] = []
        """The upload limit drawn for each connection, in arrival order."""

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = urlunsplit(self._parts._replace(netloc=f"127.0.0.1:{port}"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit = self._random.randint(self._low, self._high)
        self.limits.append(limit)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        upload = asyncio.ensure_future(self._upload(reader, up_writer, limit))
        download = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            await asyncio.wait({upload, download}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upload, download):
                task.cancel()
            await asyncio.gather(upload, download, return_exceptions=True)
            # A cut or either side leaving: both connections end at once, without a goodbye.
            writer.transport.abort()
            up_writer.transport.abort()

    async def _upload(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int
    ) -> None:
        sent = 0
        while data := await reader.read(CHUNK):
            if sent + len(data) >= limit:
                writer.write(data[: limit - sent])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                self.cuts += 1
                return
            sent += len(data)
            writer.write(data)
            await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()


class CuttingProxyThread:
    """:class:`CuttingProxy` in a background thread with its own loop (for blocking callers,
    e.g. the CLI, which runs an event loop of its own); a context manager."""

    def __init__(self, target_url: str, low: int, high: int, *, seed: int = 0) -> None:
        self.proxy = CuttingProxy(target_url, low, high, seed=seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutting-proxy", daemon=True)
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the proxy did not start in time")
        return self.proxy

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        async def serve() -> None:
            self._stop = asyncio.Event()
            async with self.proxy:
                self._ready.set()
                await self._stop.wait()

        try:
            self._loop.run_until_complete(serve())
        finally:
            self._loop.close()

"""Real-time transcription (SpeechTranscriber): an open-ended stream of audio in, sentences out.

::

    async with Transcriber(appkey=..., tokens=...) as t:
        await t.send(chunk)          # the send path: audio and control directives
        ...
        await t.finish()             # StopTranscription, wait for TranscriptionCompleted
        async for event in t:        # the event path: begin / partial / end events
            ...

Opening is resilient: connect and StartTranscription are retried per policy until the task
starts (throttling, refreshed tokens, drops). Once audio flows a failure is not retried — the
audio already sent belongs to a task that is gone — it is raised from the iterator, from
:meth:`Transcriber.finish` and from the next :meth:`Transcriber.send`: ``NlsError`` for
TaskFailed, ``TransportError`` for a dropped connection. The two paths are separate methods;
every audio byte leaves through :meth:`Transcriber._send_frame`, the one place a replay buffer
(resume after a drop) hooks in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from types import TracebackType
from typing import Any

from ..errors import LocalProtocolError, TransportError
from ..protocol import (
    TRANSCRIBER,
    ClientProtocol,
    Completed,
    Failed,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    State,
)
from ..protocol.client import MAX_AUDIO_FRAME
from ..retry import retrying
from ..retry.settings import PolicyLike, resolve_policy
from ..tokens import TokenManager
from .audio import load_audio, paced, split_frames
from .connection import Connection, open_connection
from .credentials import resolve_appkey, resolve_tokens
from .recognizer import DEFAULT_GATEWAY
from .results import SentenceEvent
from .task import failure_error, started

__all__ = ["Transcriber"]


class _End:
    """Marks the end of the event queue."""


_END = _End()


class Transcriber:
    """Real-time transcription over one WebSocket task; an async context manager.

    The arguments are :class:`~asr_resilience.clients.Recognizer`'s, plus the audio's
    ``sample_rate`` and ``format`` for the start payload. ``params`` go into the start payload
    too (e.g. ``enable_intermediate_result`` for partial events, ``max_sentence_silence``).
    After opening, ``task_id``, ``session_id`` and ``attempts`` (attempts the opening took)
    are set; ``bytes_sent`` counts the audio sent.
    """

    def __init__(
        self,
        url: str = DEFAULT_GATEWAY,
        appkey: str = "",
        tokens: TokenManager | str | None = None,
        policy: PolicyLike = None,
        *,
        scope: str | None = None,
        params: Mapping[str, Any] | None = None,
        sample_rate: int = 16000,
        format: str = "pcm",
        open_timeout: float = 10.0,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.appkey = resolve_appkey(appkey)
        self.tokens = resolve_tokens(tokens)
        self.policy = resolve_policy(policy)
        self.scope = scope or self.appkey
        self.params: dict[str, Any] = {**(params or {}), "format": format}
        self.params["sample_rate"] = sample_rate
        self.open_timeout = open_timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._retrying = retrying(
            self.policy, tokens=self.tokens, scope=self.scope, name="Transcriber.open"
        )
        self.task_id = ""
        self.session_id = ""
        self.attempts = 0
        self.bytes_sent = 0
        self._connection: Connection | None = None
        self._protocol: ClientProtocol | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[SentenceEvent | _End] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._error: BaseException | None = None
        self._reported = False  # the failure was raised to the caller at least once
        self._stopping = False
        self._begin_times: dict[int, int] = {}

    # -- opening and closing -------------------------------------------------------------------

    async def __aenter__(self) -> Transcriber:
        """Connect and start the task, retried per policy until TranscriptionStarted."""
        if self._connection is not None:
            raise LocalProtocolError("this Transcriber is open already")
        self._reset()
        async for attempt in self._retrying:
            with attempt:
                await self._open(attempt.token)
                self.attempts = attempt.number
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """On a normal exit finish the task (raising a failure not raised yet); always close."""
        try:
            if exc_type is None and self._connection is not None and not self._reported:
                await self.finish()
        finally:
            await self._close()

    def _reset(self) -> None:
        self.task_id = self.session_id = ""
        self.attempts = self.bytes_sent = 0
        self._events = asyncio.Queue()
        self._ended = asyncio.Event()
        self._error = None
        self._reported = self._stopping = False
        self._begin_times = {}

    async def _open(self, token: str) -> None:
        protocol = ClientProtocol(TRANSCRIBER, self.appkey, self.params)
        connection = await open_connection(self.url, token, open_timeout=self.open_timeout)
        try:
            await connection.send(protocol.start())
            event = await started(connection, protocol, self.start_timeout)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._protocol = connection, protocol
        self.task_id, self.session_id = protocol.task_id, event.session_id
        self._reader = asyncio.create_task(self._read_events(connection, protocol))

    async def _close(self) -> None:
        reader, connection = self._reader, self._connection
        self._reader = self._connection = self._protocol = None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if connection is not None:
            await connection.close()
        if not self._ended.is_set():
            # Closed before TranscriptionCompleted (the block raised): iterators must not hang.
            self._end(LocalProtocolError("the Transcriber closed before TranscriptionCompleted"))

    # -- the send path ---------------------------------------------------------------------------

    async def send(self, chunk: bytes) -> None:
        """Send audio; a chunk over 16 KiB goes as several frames (PROTOCOL.md "Directives")."""
        for frame in split_frames(chunk, MAX_AUDIO_FRAME):
            await self._send_frame(frame)

    async def _send_frame(self, frame: bytes) -> None:
        """Send one audio frame: every audio byte of the task leaves through here."""
        connection, protocol = self._require_open()
        self._raise_failure()
        await self._guarded(connection.send(protocol.audio(frame)))
        self.bytes_sent += len(frame)

    async def control(self, payload: Mapping[str, Any]) -> None:
        """Send ControlTranscriber: change parameters mid-task (e.g. ``max_sentence_silence``)."""
        connection, protocol = self._require_open()
        self._raise_failure()
        await self._guarded(connection.send(protocol.control(payload)))

    async def finish(self) -> None:
        """StopTranscription, then wait for TranscriptionCompleted (``stop_timeout`` seconds).

        Safe to call more than once. Raises the task's failure if it failed.
        """
        connection, protocol = self._require_open()
        if not self._stopping:
            self._raise_failure()
            self._stopping = True
            if protocol.state is State.STARTED:
                await self._guarded(connection.send(protocol.stop()))
        try:
            await asyncio.wait_for(self._ended.wait(), self.stop_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no TranscriptionCompleted within {self.stop_timeout:g} s of StopTranscription"
            ) from None
        self._raise_failure()

    async def _guarded(self, sending: Awaitable[None]) -> None:
        try:
            await sending
        except TransportError:
            # The socket broke under the send. The gateway closes after TaskFailed (PROTOCOL.md
            # "Events"): if the event path reads one (it is quick once the socket is closed),
            # it says more than the close.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ended.wait(), self.stop_timeout)
            self._raise_failure()
            raise

    def _require_open(self) -> tuple[Connection, ClientProtocol]:
        if self._connection is None or self._protocol is None:
            raise LocalProtocolError(
                "the Transcriber is not open: use `async with Transcriber(...) as t:`"
            )
        return self._connection, self._protocol

    def _raise_failure(self) -> None:
        if self._error is not None:
            self._reported = True
            raise self._error

    # -- the event path --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[SentenceEvent]:
        """Sentence events as they arrive; ends after TranscriptionCompleted, raises a failure."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SentenceEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, _End):
                self._events.put_nowait(item)  # every other iterator ends too
                self._raise_failure()
                return
            yield item

    async def _read_events(self, connection: Connection, protocol: ClientProtocol) -> None:
        try:
            while True:
                event = protocol.receive(await connection.recv())
                if isinstance(event, Completed):
                    self._end(None)
                    return
                if isinstance(event, Failed):
                    self._end(failure_error(event))
                    return
                sentence = self._sentence_event(event)
                if sentence is not None:
                    self._events.put_nowait(sentence)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a drop or a gateway that broke the protocol
            self._end(exc)

    def _sentence_event(self, event: object) -> SentenceEvent | None:
        if isinstance(event, SentenceBegan):
            self._begin_times[event.index] = event.time
            return SentenceEvent("begin", event.index, "", event.time, event.time)
        if isinstance(event, ResultChanged):
            begin = self._begin_times.get(event.index, event.time)
            return SentenceEvent(
                "partial",
                event.index,
                event.text,
                begin,
                event.time,
                event.confidence,
                event.words,
            )
        if isinstance(event, SentenceEnded):
            return SentenceEvent(
                "end",
                event.index,
                event.text,
                event.begin_time,
                event.end_time,
                event.confidence,
                event.words,
                event.timed_out,
            )
        return None

    def _end(self, error: BaseException | None) -> None:
        self._error = error
        self._ended.set()
        self._events.put_nowait(_END)

    # -- whole files -----------------------------------------------------------------------------

    async def transcribe_file(
        self,
        audio: bytes | str | os.PathLike[str],
        *,
        realtime: bool = True,
        format: str | None = None,
        sample_rate: int | None = None,
    ) -> list[SentenceEvent]:
        """Transcribe a whole file (or WAV / raw bytes); returns its sentences' end events.

        Runs a task of its own with this Transcriber's settings and the audio's format and
        sample rate. ``realtime`` paces PCM at real time, as the service expects (PROTOCOL.md
        "Limits": no bursts far faster than real time); pass False only for short audio or a
        simulator.
        """
        data = load_audio(audio, format=format, sample_rate=sample_rate)
        task = Transcriber(
            self.url,
            self.appkey,
            self.tokens,
            self.policy,
            scope=self.scope,
            params=self.params,
            sample_rate=data.sample_rate,
            format=data.format,
            open_timeout=self.open_timeout,
            start_timeout=self.start_timeout,
            stop_timeout=self.stop_timeout,
        )
        async with task:
            async for frame in paced(data.frames(), data.bytes_per_second if realtime else None):
                await task.send(frame)
            await task.finish()
        return [event async for event in task if event.kind == "end"]

"""One-sentence recognition (SpeechRecognizer) over the WebSocket, resilient by default.

Each attempt is a new connection and a new task: connect, StartRecognition, wait for
RecognitionStarted, send the audio while reading events, StopRecognition, wait for
RecognitionCompleted, close. What happens after a failed attempt is the policy's business (the
execution core, ``asr_resilience.retry``): a 40000001 or a 403 refreshes the token, 40000005,
server codes and dropped connections retry, the rest raise a typed error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from .._endpoints import DEFAULT_REGION, REGIONS, resolve_url
from .._errors import TransportError
from .._network import ProxySetting, SslSetting, resolve_network
from ..protocol import RECOGNIZER, ClientProtocol, Completed, Failed, State
from ..retry._attempt import Attempt
from ..retry._call import CallState
from ..retry._engine import run_async
from ..retry._overrides import call_limits
from ..retry._settings import PolicyLike, make_settings
from ..tokens import TokenManager
from ._audio import (
    ONE_SENTENCE_MAX_BYTES,
    ONE_SENTENCE_MAX_SECONDS,
    AudioData,
    ReplayableStream,
    load_audio,
    paced,
)
from ._connection import Connection, connected
from ._credentials import resolve_appkey, resolve_tokens
from ._results import Recognition
from ._task import failure_error, started

__all__ = ["DEFAULT_GATEWAY", "Recognizer"]

DEFAULT_GATEWAY = REGIONS[DEFAULT_REGION].gateway
"""The gateway when neither the caller nor the environment names one.

docs/protocol.md "Regions and endpoints"."""

RecognizerAudio = bytes | str | os.PathLike[str] | AsyncIterable[bytes]


class Recognizer:
    """One-sentence recognition: audio of up to 60 s in, its text out.

    ``tokens``: a :class:`TokenManager`, a token string, or None for ``$NLS_TOKEN``; ``appkey``
    defaults to ``$NLS_APPKEY``. ``policy`` decides what a failure leads to (a Policy, a file, a
    shipped name, or None for ``$ASR_RESILIENCE_POLICY`` / ``default``); ``scope`` names the
    retry budget, breaker and limiter the calls share (default: the appkey, i.e. the account's
    quota). ``params`` go into the start payload (e.g. ``enable_punctuation_prediction``).
    ``realtime`` paces PCM audio at real time instead of sending it at once. Timeouts are in
    seconds: ``open_timeout`` for the handshake, ``start_timeout`` for RecognitionStarted,
    ``stop_timeout`` for RecognitionCompleted after the audio; each raises ``TimeoutError``,
    which the policy retries as a transport timeout. The policy's deadline bounds each whole
    attempt (slot, token, connect, start, audio, result) as well as the waits between them.

    ``url`` is the gateway's WebSocket URL; ``region`` (``cn-beijing``, ``ap-southeast-1``,
    ``cn-shanghai-internal``, ...) picks the region's gateway instead. Without either,
    ``$NLS_GATEWAY_URL``, else ``$NLS_REGION``'s gateway, else cn-shanghai's (README "Regions and
    endpoints"); an unknown region is a ``ValueError`` listing the known ones.

    ``proxy``: True (default) takes the environment's ``https_proxy`` / ``http_proxy`` /
    ``all_proxy`` and ``no_proxy``; a URL such as ``http://user:pass@proxy:3128`` is used
    whatever the environment says; None or False connects directly. ``ssl``: an
    :class:`ssl.SSLContext` or a CA bundle path for ``wss://`` (default: the system's CAs).
    README "Proxies and TLS".
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
        realtime: bool = False,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        open_timeout: float = 10.0,
        region: str | None = None,
        proxy: ProxySetting = True,
        ssl: SslSetting = None,
    ) -> None:
        self.url = resolve_url("gateway", url, region)
        self.network = resolve_network(self.url, proxy, ssl)
        self.appkey = resolve_appkey(appkey)
        self.tokens = resolve_tokens(tokens)
        self.params: dict[str, Any] = dict(params or {})
        self.realtime = realtime
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.open_timeout = open_timeout
        self._settings = make_settings(
            policy, tokens=self.tokens, scope=scope or self.appkey, function="Recognizer.recognize"
        )

    async def recognize(
        self,
        audio: RecognizerAudio,
        *,
        format: str | None = None,
        sample_rate: int | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> Recognition:
        """Recognise ``audio``: WAV or raw bytes, a file path, or an async iterator of chunks.

        ``deadline`` (seconds) bounds this whole call, waits included, instead of the policy's;
        ``max_attempts`` caps every rule's attempts for this call (README "Per-call
        overrides"). Both must be positive (``ValueError`` otherwise).

        A WAV file's header gives the format and sample rate; otherwise ``format`` /
        ``sample_rate``, else the ones in ``params``, else pcm at 16000 Hz. An async iterator is
        read once: what it yields is kept (at most 2 MB, the one-sentence limit) so that a retry
        can send it again. Raises the policy's typed errors (``FixClientError``,
        ``FailFastError``, ``RetryExhaustedError``, ...) with the last failure as ``__cause__``,
        and ``ValueError`` for audio the gateway would not take.
        """
        limit, attempts = call_limits(deadline, max_attempts)
        fmt = format or self.params.get("format")
        rate = sample_rate or self.params.get("sample_rate")
        source: AudioData | ReplayableStream
        if isinstance(audio, AsyncIterable):
            source = ReplayableStream(audio)
            fmt, rate = fmt or "pcm", rate or 16000
        else:
            source = load_audio(
                audio,
                format=fmt,
                sample_rate=rate,
                max_seconds=ONE_SENTENCE_MAX_SECONDS,
                max_bytes=ONE_SENTENCE_MAX_BYTES,
            )
            fmt, rate = source.format, source.sample_rate
        params = {**self.params, "format": fmt, "sample_rate": rate}
        pace = 2 * rate if self.realtime and fmt == "pcm" else None

        async def body(attempt: Attempt) -> Recognition:
            completed = await self._attempt(attempt, params, source.frames, pace)
            return Recognition(
                completed.text, completed.task_id, completed.duration, attempt.number
            )

        settings = self._settings
        try:
            state = CallState(settings, settings.clock.monotonic(), limit, attempts)
            return await run_async(state, body)
        finally:
            if isinstance(source, ReplayableStream):
                source.close()

    async def _attempt(
        self,
        attempt: Attempt,
        params: Mapping[str, Any],
        frames: Callable[[], Iterator[bytes] | AsyncIterator[bytes]],
        pace: int | None,
    ) -> Completed:
        """One task on a new connection; raises NlsError, TransportError or TimeoutError."""
        protocol = ClientProtocol(RECOGNIZER, self.appkey, params)
        async with connected(
            self.url, attempt.token, open_timeout=self.open_timeout, network=self.network
        ) as connection:
            await connection.send(protocol.start())
            await started(connection, protocol, self.start_timeout)
            attempt.started()  # the gateway counted the slot (docs/protocol.md "Limits")
            return await self._exchange(connection, protocol, frames(), pace)

    async def _exchange(
        self,
        connection: Connection,
        protocol: ClientProtocol,
        frames: Iterator[bytes] | AsyncIterator[bytes],
        pace: int | None,
    ) -> Completed:
        """Send the audio while reading events; the gateway's final event decides."""
        sender = asyncio.create_task(_send_audio(connection, protocol, frames, pace))
        receiver = asyncio.create_task(_final_event(connection, protocol))
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                error = sender.exception()
                # A failed send means the socket broke; the receiver reads why (a TaskFailed
                # before the close explains more than the close). Anything else is local.
                if error is not None and not isinstance(error, TransportError):
                    raise error
                done, _ = await asyncio.wait({receiver}, timeout=self.stop_timeout)
                if not done:
                    raise TimeoutError(
                        f"no RecognitionCompleted within {self.stop_timeout:g} s of the audio's end"
                    )
            return receiver.result()
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)


async def _send_audio(
    connection: Connection,
    protocol: ClientProtocol,
    frames: Iterator[bytes] | AsyncIterator[bytes],
    pace: int | None,
) -> None:
    async for frame in paced(frames, pace):
        # The gateway may end the task on its own (voice detection, TaskFailed): stop sending.
        if protocol.state is not State.STARTED:
            return
        await connection.send(protocol.audio(frame))
    if protocol.state is State.STARTED:
        await connection.send(protocol.stop())


async def _final_event(connection: Connection, protocol: ClientProtocol) -> Completed:
    while True:
        event = protocol.receive(await connection.recv())
        if isinstance(event, Completed):
            return event
        if isinstance(event, Failed):
            raise failure_error(event)
        # RecognitionResultChanged: an intermediate text the final result supersedes.

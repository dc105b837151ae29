"""One WebSocket connection of the simulated gateway: one task, driven through its states.

The sans-I/O :class:`GatewayProtocol` checks every frame and builds every event; this module adds
what only a running gateway knows — timers, the accounts and quota, the audio and its sentences,
and the scenario's faults. Any :class:`GatewayReject` ends the task the way the vendor's gateway
ends it (docs/protocol.md "Events"): a ``TaskFailed`` frame (namespace ``Default``), then the
socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from ..protocol import RECOGNIZER, Audio, Directive, GatewayProtocol, GatewayReject
from ..protocol._messages import CONTROL
from ._accounts import Account
from ._admission import TOO_MANY_REQUESTS, check_task
from ._context import SimulatorContext, drop, half_close
from ._engine import Closed, Mark, Onset
from ._recognition import Recognition, join_texts, partial_payload, sentence_end_payload
from ._scenario import Phase

_timeout = getattr(asyncio, "timeout", None)

IDLE_TIMEOUT = (40000004, "Gateway:IDLE_TIMEOUT:Websocket session is idle for too long time")
CLIENT_DATA_TIMEOUT = (
    41040201,
    "Realtime:GET_CLIENT_DATA_TIMEOUT:Client data does not send continuously!",
)
TOO_FAST = (40000000, "Gateway:CLIENT_ERROR:Audio is sent faster than real time!")
"""Pacing [?]: no limit is published; our code (the generic client error) and text."""
BAD_SILENCE = (40000003, "Gateway:PARAMETER_INVALID:max_sentence_silence must be 200..6000!")
CLOSE_GRACE = 2.0
"""Seconds a `close` fault waits for the client to close its side before dropping the socket."""
GARBAGE_TEXT = "<html><body>502 Bad Gateway</body></html>"
GARBAGE_BINARY = b"\x00\xffNLS\x00garbage\xfe"


@dataclass(slots=True)
class Admission:
    """What the handshake learnt about a connection."""

    number: int
    token: str
    slow: float = 0.0
    trickle: float = 0.0


class _Over(Exception):
    """The session ended (a fault dropped the socket, or the simulator stops)."""


class Session:
    """One connection's task, from the start directive to the close."""

    def __init__(
        self, ctx: SimulatorContext, connection: ServerConnection, admission: Admission
    ) -> None:
        self.ctx = ctx
        self.connection = connection
        self.number = admission.number
        self.token = admission.token
        self.slow = admission.slow
        self.trickle = admission.trickle
        self.protocol = GatewayProtocol(max_vocabulary=ctx.config.max_vocabulary)
        self.service: str | None = None
        self.account: Account | None = None
        self.finished = False
        self.fired: set[int] = set()
        self.sentences = 0
        self.loop = asyncio.get_running_loop()
        self._processed_at = 0.0  # loop time when the audio read so far is processed

    async def run(self) -> None:
        """Serve the connection until the task ends; always give the quota slot back."""
        try:
            await self._serve()
        except ConnectionClosed:
            if not self.finished:
                self.ctx.stats.client_disconnects += 1
        except _Over:
            pass
        finally:
            self._release()

    def _release(self) -> None:
        # docs/protocol.md "Limits": the slot is held from the start directive until the socket
        # closes (or, after TaskFailed, until the gateway starts closing it).
        if self.account is not None:
            account, self.account = self.account, None
            self.ctx.store.release_slot(account)
            self.ctx.stats.slot_released(account.name)

    # -- the task -------------------------------------------------------------------------

    async def _serve(self) -> None:
        config = self.ctx.config
        frame = await self._recv(config.idle_timeout)
        if frame is None:
            return await self._fail(*IDLE_TIMEOUT)
        try:
            # Anything but a valid start directive is refused here (40000002, 4001000x, ...).
            start = self.protocol.receive(frame)
            assert isinstance(start, Directive)
            self.service = start.namespace
            account = check_task(self.ctx.store, self.token, start.appkey)
        except GatewayReject as reject:
            return await self._fail(reject.code, reject.status_text)
        if not self.ctx.store.acquire_slot(account):
            self.ctx.stats.throttled += 1
            return await self._fail(*TOO_MANY_REQUESTS)
        self.account = account
        self.ctx.stats.slot_taken(account.name)
        if await self._fault("start"):
            return None
        self.ctx.stats.sessions_started += 1
        await self._send(self.protocol.started())
        if self.service == RECOGNIZER:
            return await self._recognize()
        return await self._transcribe()

    def _recognition(self, **overrides: Any) -> Recognition:
        params = self.protocol.params
        options: dict[str, Any] = {
            "audio_format": params.get("format", "pcm"),
            "sample_rate": params.get("sample_rate", 16000),
            "max_sentence_silence": self.ctx.config.max_sentence_silence,
            "transcripts": self.ctx.config.transcripts,
        }
        options.update(overrides)
        return Recognition(**options)

    @property
    def _partials(self) -> bool:
        wanted = self.protocol.params.get("enable_intermediate_result", False)
        return bool(wanted) and self.ctx.config.intermediate_results

    async def _recognize(self) -> None:
        """One-sentence recognition (SpeechRecognizer) after RecognitionStarted."""
        config = self.ctx.config
        audio = self._recognition(max_ms=config.max_sentence_ms)
        partials = self._partials
        while True:
            # Seed, one-sentence table: no data for the idle time → 40000004.
            frame = await self._recv(config.idle_timeout)
            if frame is None:
                return await self._fail(*IDLE_TIMEOUT)
            try:
                item = self.protocol.receive(frame)
                if not isinstance(item, Audio):
                    self.ctx.stats.stops += 1
                    break  # StopRecognition: the only other directive STARTED accepts
                closed = audio.feed(item.data)
            except GatewayReject as reject:
                return await self._fail(reject.code, reject.status_text)
            self.ctx.stats.audio_bytes += len(item.data)
            if partials and closed:
                text = join_texts([s.text for s in audio.sentences])
                await self._send(self.protocol.result_changed({"result": text}))
            if await self._fault("audio", audio.audio_ms):
                return None
        if await self._fault("stop"):
            return None
        try:
            text, duration = audio.one_sentence_result()
        except GatewayReject as reject:
            return await self._fail(reject.code, reject.status_text)
        if await self._hold(config.service_time):
            return None
        self._finish()
        await self._send(self.protocol.completed({"result": text, "duration": duration}))
        return await self._linger()

    async def _transcribe(self) -> None:
        """Real-time transcription (SpeechTranscriber) after TranscriptionStarted.

        Events follow the audio as it is processed (docs/protocol.md "Events"): SentenceBegin
        at a sentence's onset, intermediate results at a regular cadence while it goes on (when
        asked for), SentenceEnd once its trailing silence is heard. With a ``realtime_factor``
        the audio is processed no faster than that, and no frame is read meanwhile.
        """
        config = self.ctx.config
        silence = self.protocol.params.get("max_sentence_silence", config.max_sentence_silence)
        audio = self._recognition(
            max_sentence_silence=silence, progress_every_ms=config.intermediate_every_ms
        )
        partials = self._partials
        last_frame = last_audio = self.loop.time()
        first_audio: float | None = None
        while True:
            # docs/protocol.md "Limits": audio that stops flowing → 41040201; nothing at all for
            # the idle time → 40000004, whichever comes first.
            idle_left = last_frame + config.idle_timeout - self.loop.time()
            data_left = last_audio + config.client_data_timeout - self.loop.time()
            frame = await self._recv(max(0.0, min(idle_left, data_left)))
            now = self.loop.time()
            if frame is None:
                data_late = now - last_audio >= config.client_data_timeout
                return await self._fail(*(CLIENT_DATA_TIMEOUT if data_late else IDLE_TIMEOUT))
            last_frame = now
            try:
                item = self.protocol.receive(frame)
                if isinstance(item, Directive):
                    if item.name != CONTROL:
                        self.ctx.stats.stops += 1
                        break  # StopTranscription
                    self._control(audio, item.payload)
                    continue
                last_audio = now
                first_audio = now if first_audio is None else first_audio
                heard = audio.audio_ms
                audio.feed(item.data)
                self._check_pace(audio, now - first_audio)
            except GatewayReject as reject:
                return await self._fail(reject.code, reject.status_text)
            self.ctx.stats.audio_bytes += len(item.data)
            await self._process(audio, heard, partials)
            # The frame counts as heard once processed: read again only then.
            last_frame = last_audio = self.loop.time()
            if await self._fault("audio", audio.audio_ms):
                return None
        if await self._fault("stop"):
            return None
        audio.flush()
        for mark in audio.detector.take_marks():
            await self._event(mark, partials)
        if await self._hold(config.service_time):
            return None
        # docs/protocol.md "Events": TranscriptionCompleted once the rest of the audio is processed.
        self._finish()
        await self._send(self.protocol.completed())
        return await self._linger()

    async def _process(self, audio: Recognition, heard: int, partials: bool) -> None:
        """Process the audio after ``heard`` ms: send its events as processing reaches them.

        ``realtime_factor`` bounds the speed: processing starts when the frame is read (or when
        the previous one is done) and takes its duration divided by the factor.
        """
        factor = self.ctx.config.realtime_factor
        marks = audio.detector.take_marks()
        if not factor:
            for mark in marks:
                await self._event(mark, partials)
            return
        start = max(self.loop.time(), self._processed_at)
        for mark in marks:
            await self._until(start + (mark.at_ms - heard) / 1000 / factor)
            await self._event(mark, partials)
        self._processed_at = start + (audio.audio_ms - heard) / 1000 / factor
        await self._until(self._processed_at)

    async def _until(self, when: float) -> None:
        """Processing takes time: until ``when`` (loop time); the simulator stopping ends it."""
        delay = when - self.loop.time()
        # A client that leaves ends the wait too; the next read or send then sees it leave.
        stopped = delay > 0 and await self.ctx.pause(delay, self.connection.wait_closed())
        if stopped and self.ctx.stopping.is_set():
            raise _Over

    async def _event(self, mark: Mark, partials: bool) -> None:
        """The event for one mark of the detector (docs/protocol.md "Events")."""
        if isinstance(mark, Onset):
            self.sentences += 1
            await self._send(self.protocol.sentence_begin(self.sentences, mark.begin_time))
        elif isinstance(mark, Closed):
            payload = sentence_end_payload(self.sentences, mark.sentence)
            await self._send(self.protocol.sentence_end(payload))
        elif partials:
            payload = partial_payload(self.sentences, mark.sentence)
            await self._send(self.protocol.result_changed(payload))

    def _control(self, audio: Recognition, payload: Mapping[str, Any]) -> None:
        """ControlTranscriber: parameters that may change mid-task."""
        if "max_sentence_silence" in payload:
            value = payload["max_sentence_silence"]
            if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 6000:
                raise GatewayReject(*BAD_SILENCE)
            audio.detector.max_sentence_silence = value

    def _check_pace(self, audio: Recognition, elapsed: float) -> None:
        pacing = self.ctx.config.pacing
        if pacing is None:
            return
        allowed = elapsed * 1000 * pacing + self.ctx.config.pacing_grace_ms
        if audio.audio_ms > allowed:
            raise GatewayReject(*TOO_FAST)

    def _finish(self) -> None:
        # Counted before the event goes out: a client holding the event sees the count.
        self.finished = True
        self.ctx.stats.sessions_completed += 1

    async def _linger(self) -> None:
        """After Completed: the client closes; a frame now is refused (40000002)."""
        frame = await self._recv(self.ctx.config.idle_timeout)
        if frame is None:
            return await self._close()
        try:
            self.protocol.receive(frame)
        except GatewayReject as reject:
            return await self._fail(reject.code, reject.status_text)

    async def _hold(self, seconds: float) -> bool:
        """Spend ``seconds`` "processing" while stopping, still reading: a second stop now is
        40010005, anything else 40000002. True when that failed the task."""
        deadline = self.loop.time() + seconds
        while (left := deadline - self.loop.time()) > 0:
            frame = await self._recv(left)
            if frame is None:
                return False
            try:
                self.protocol.receive(frame)
            except GatewayReject as reject:
                await self._fail(reject.code, reject.status_text)
                return True
        return False

    # -- I/O ------------------------------------------------------------------------------

    async def _recv(self, timeout: float) -> str | bytes | None:
        """The next frame, or None after ``timeout`` seconds without one."""
        # recv() is cancellation-safe: a timeout loses no frame.
        try:
            if _timeout is None:  # Python 3.10
                return await asyncio.wait_for(self.connection.recv(), timeout)
            async with _timeout(timeout):  # no extra task per frame, unlike wait_for
                return await self.connection.recv()
        except asyncio.TimeoutError:
            return None

    async def _send(self, frame: str) -> None:
        if self.slow and await self.ctx.pause(self.slow):
            raise _Over
        if self.trickle:
            await self._trickle(frame)
        else:
            await self.connection.send(frame)

    async def _trickle(self, frame: str) -> None:
        """Write ``frame`` one byte at a time, ``trickle`` seconds apart (a slowloris).

        Every byte keeps a per-read timeout alive; only a bound on the whole wait ends it. The
        bytes go straight to the transport as one well-formed unmasked text frame (RFC 6455
        §5.2), so a client that waits long enough reads the event intact.
        """
        data = Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)
        transport = self.connection.transport
        for at in range(len(data)):
            if at and await self.ctx.pause(self.trickle, self.connection.wait_closed()):
                drop(transport)
                raise _Over
            transport.write(data[at : at + 1])

    async def _fail(self, code: int, text: str) -> None:
        """TaskFailed, then close (docs/protocol.md "Events")."""
        self.finished = True
        self.ctx.stats.count_failure(code)
        await self._send(self.protocol.failed(code, text))
        # The gateway closes now; a client that never closes its end of the TCP connection
        # (the official SDK after a TaskFailed) must not keep the slot for the close timeout.
        self._release()
        await self._close()

    async def _close(self) -> None:
        """Close, reading (and dropping) what the client still sends meanwhile: frames left
        unread would fill the receive queue, pause reading, and hide the client's close frame
        until the close timeout."""
        drain = asyncio.ensure_future(self._drain())
        try:
            await self.connection.close()
        finally:
            drain.cancel()

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.connection.recv()

    # -- faults ---------------------------------------------------------------------------

    async def _fault(self, phase: Phase, audio_ms: int | None = None) -> bool:
        """Fire the scenario's fault for this point of the task; True when the task is over."""
        picked = self.ctx.scenario.select(
            phase, self.number, self.service, audio_ms=audio_ms, skip=self.fired
        )
        if picked is None:
            return False
        index, fault = picked
        self.fired.add(index)
        self.ctx.stats.count_fault(fault.action)
        if fault.action == "code":
            await self._fail(fault.code or 0, fault.status_text(self.token))
            return True
        if fault.action in ("close", "reset"):
            self.finished = True
            transport = self.connection.transport
            # A close is a FIN after the events already sent (the client reads them all, then
            # sees the connection end without a close frame); the socket goes once the client
            # has closed its side, or after CLOSE_GRACE. A reset is a RST at once.
            if fault.action == "reset" or not half_close(transport):
                drop(transport, reset=fault.action == "reset")
            else:
                self._release()  # the gateway has started closing: the task is over
                if not await self.ctx.pause(CLOSE_GRACE, self.connection.wait_closed()):
                    drop(transport)
            await self.connection.wait_closed()
            return True
        if fault.action == "stall":
            if await self.ctx.pause(fault.delay, self.connection.wait_closed()):
                drop(self.connection.transport)
                raise _Over
        elif fault.action == "slow":
            self.slow = fault.delay or 0.0
        elif fault.action == "trickle":
            self.trickle = fault.delay or 0.0
        elif fault.action == "garbage":
            # A broken frame, then the task carries on: what the client makes of it is the test.
            await self.connection.send(GARBAGE_BINARY if fault.frame == "binary" else GARBAGE_TEXT)
        elif fault.action == "revoke_token":
            self.ctx.store.revoke(self.token)
        return False

"""Real-time transcription (SpeechTranscriber): an open-ended stream of audio in, sentences out,
resumed across drops and server errors without losing or repeating a sentence.

::

    async with Transcriber(appkey=..., tokens=...) as t:
        await t.send(chunk)          # the send path: audio and control directives
        ...
        await t.finish()             # StopTranscription, wait for TranscriptionCompleted
        async for event in t:        # the event path: sentences, and reconnect notices
            ...

How it works. Opening is a call under the policy (connect and StartTranscription retried until
the task starts). Every audio byte then enters :meth:`Transcriber._send_frame`, which keeps it in
a :class:`~asr_resilience.clients._replay.ReplayBuffer` (the audio since the last delivered
sentence) before it goes to the current *leg* (one NLS task). One supervisor task reads the leg's
events. When the leg fails — TaskFailed, a drop, a timeout — the failure goes to the stream's
:class:`~asr_resilience.clients._episode.FaultEpisode`, i.e. to the policy: ``retry`` and
``refresh-token`` start a new leg with the same parameters, give it the buffered audio again
(the replay, paced at ``replay_speed`` times real time), then the live audio; any other verdict
ends the stream with the policy's typed error, raised from the iterator, :meth:`~Transcriber.
send` and :meth:`~Transcriber.finish`. A :class:`~asr_resilience.clients._timeline.Timeline`
offsets each leg's times by where its audio starts, continues the indexes and drops a sentence
an earlier leg delivered, so the iterator reads like one uninterrupted task, plus a
:class:`Reconnected` event per resume (and an :class:`AudioGap` if the bounded buffer had to
drop audio the new leg needed).

Flow control (:mod:`~asr_resilience.clients._flow`): a leg is sent at most the policy's
``streaming.max_unconfirmed`` seconds of audio past the last time its task reported (each
SentenceBegin, intermediate result and SentenceEnd says how much audio it has processed), so a
cut makes the next leg replay a few seconds, not whatever the sockets held.

While a leg is being replaced, :meth:`Transcriber.send` does not wait for it: the audio joins
the buffer (a live source must not stall), up to the buffer's bound.

Resuming needs PCM (the buffer cuts audio by time). For other formats, or with
``resume=False``, a failure once audio flows is raised as it came: ``NlsError`` for TaskFailed,
``TransportError`` for a drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any

from .._endpoints import resolve_url
from .._errors import LocalProtocolError, TransportError
from .._network import ProxySetting, SslSetting, resolve_network
from .._secrets import scrub_exception
from ..protocol import Completed, Failed, ResultChanged, SentenceBegan, SentenceEnded, State
from ..protocol._client import MAX_AUDIO_FRAME
from ..retry._attempt import Attempt
from ..retry._call import CallState
from ..retry._engine import run_async
from ..retry._settings import PolicyLike, make_settings, resolve_policy
from ..tokens import TokenManager
from ._audio import FRAME_BYTES, paced, split_frames
from ._credentials import resolve_appkey, resolve_tokens
from ._flow import FlowWindow
from ._inbox import Inbox
from ._leg import Leg, start_leg
from ._replay import DEFAULT_MAX_SECONDS, ReplayBuffer
from ._results import SentenceEvent, StreamEvent, StreamStats, StreamSummary
from ._resume import Resumption
from ._task import failure_error
from ._timeline import Timeline

__all__ = ["DEFAULT_REPLAY_SPEED", "QUIET_SECONDS", "Transcriber"]

DEFAULT_REPLAY_SPEED = 3.0
"""Replay pace after a reconnect, in multiples of real time. docs/protocol.md "Limits": the
gateway does not take bursts far faster than real time and publishes no rate [?]; 3x clears a few
seconds of buffer quickly without being a burst."""
QUIET_SECONDS = 2.0
"""How long an unpaced sender waits for a sentence to end before the buffer's bound may drop
audio in flight: time for a gateway to catch up with what the sockets hold, and well inside its
client-data timeout (docs/protocol.md "Limits": 41040201 when audio stops flowing)."""
PACED_CHUNK = FRAME_BYTES
"""Bytes per frame of a paced replay: 100 ms at 16 kHz, the size the gateway's pacing expects
(docs/protocol.md "Audio frames": 3200 bytes each 100 ms). Unpaced, frames go up to the 16 KiB
limit."""


class _End:
    """Marks the end of the event queue."""


_END = _End()

MAX_QUEUED_EVENTS = 10_000
"""Events a stream holds for a caller who has not read them; then it stops reading the gateway.
Beginnings and ends of about 5000 sentences: hours of speech, a few megabytes."""
MAX_QUEUED_TEXT = 8 * 1024 * 1024
"""Characters of text (sentences and words) held for the caller, whatever the number of events."""
COALESCE_AT = 100
"""Events held past which a partial result replaces the previous partial of its sentence."""


def _supersedes(old: StreamEvent | _End, new: StreamEvent | _End) -> bool:
    """Whether ``new`` makes ``old`` worthless: a newer partial text of the same sentence."""
    return (
        isinstance(old, SentenceEvent)
        and isinstance(new, SentenceEvent)
        and old.kind == new.kind == "partial"
        and old.index == new.index
    )


def _text_size(event: StreamEvent | _End) -> int:
    """What an event holds in memory, in characters of text (at least 1)."""
    if isinstance(event, SentenceEvent):
        return 1 + len(event.text) + sum(len(word.text) for word in event.words)
    return 1


class Transcriber:
    """Real-time transcription as one resumable stream; an async context manager.

    The arguments are :class:`~asr_resilience.clients.Recognizer`'s (``url`` / ``region``
    choose the gateway the same way; ``proxy`` and ``ssl`` included: every leg connects with
    them), plus the audio's
    ``sample_rate`` and ``format`` for the start payload. ``params`` go into the start payload
    too (e.g. ``enable_intermediate_result`` for partial events, ``max_sentence_silence``).

    ``resume`` (default: on for PCM) resumes the stream after a retryable failure;
    ``max_buffer_seconds`` bounds the replay buffer; ``replay_speed`` paces the replay in
    multiples of real time (None: as fast as the connection takes it).

    Events wait for the caller's ``async for`` in a bounded inbox: ``max_queued_events`` (and
    8 MiB of text); past 100 unread, a partial result replaces the previous partial of its
    sentence (counted in ``stats.coalesced``); when full, the stream stops reading the gateway
    until the caller reads. Read while you send for long streams: a stream whose caller never
    reads stalls (the gateway is held back; the replay buffer fills), it does not grow.

    The policy's attempts and deadline bound one fault episode, not the stream: the failures
    since the stream last delivered a sentence. A sentence delivered after a reconnect closes
    the episode, so a stream survives any number of separated faults and still gives up, with
    the policy's typed error, on a gateway that keeps failing. ``deadline`` (seconds) and
    ``max_attempts`` override the policy's for the opening and for each fault episode alike
    (constructor keywords, as ``async with`` takes no arguments; README "Per-call overrides").

    After opening, ``task_id`` and ``session_id`` name the current task (they change on a
    reconnect), ``attempts`` counts the attempts the opening took, ``bytes_sent`` the caller's
    audio, and :attr:`stats` how the stream fared.
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
        sample_rate: int = 16000,
        format: str = "pcm",
        open_timeout: float = 10.0,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        resume: bool | None = None,
        max_buffer_seconds: float = DEFAULT_MAX_SECONDS,
        replay_speed: float | None = DEFAULT_REPLAY_SPEED,
        max_queued_events: int = MAX_QUEUED_EVENTS,
        deadline: float | None = None,
        max_attempts: int | None = None,
        region: str | None = None,
        proxy: ProxySetting = True,
        ssl: SslSetting = None,
    ) -> None:
        self.url = resolve_url("gateway", url, region)
        self.network = resolve_network(self.url, proxy, ssl)
        self.appkey = resolve_appkey(appkey)
        self.tokens = resolve_tokens(tokens)
        self.policy = resolve_policy(policy)
        self.scope = scope or self.appkey
        self.params: dict[str, Any] = {**(params or {}), "format": format}
        self.params["sample_rate"] = sample_rate
        self.open_timeout = open_timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        pcm = format.lower() == "pcm"
        if resume and not pcm:
            raise ValueError(
                f"resume needs PCM audio (format {format!r} cannot be cut by time): send PCM, "
                "or pass resume=False"
            )
        if replay_speed is not None and replay_speed <= 0:
            raise ValueError("replay_speed must be positive (or None for no pacing)")
        if max_queued_events < 1:
            raise ValueError("max_queued_events must be at least 1")
        self.max_queued_events = max_queued_events
        self.resume = pcm if resume is None else resume
        self.max_unconfirmed = self.policy.streaming.max_unconfirmed
        """Seconds of audio a leg is sent past its task's last report (policy ``streaming``)."""
        self.max_buffer_seconds = max_buffer_seconds
        self.replay_speed = replay_speed
        # docs/protocol.md "Audio frames": 16-bit mono PCM, 2 bytes a sample.
        self._bytes_per_second = 2 * sample_rate if pcm else None
        self._open_settings = make_settings(
            self.policy,
            tokens=self.tokens,
            scope=self.scope,
            function="Transcriber.open",
            deadline=deadline,
            max_attempts=max_attempts,
        )
        self._settings = make_settings(
            self.policy,
            tokens=self.tokens,
            scope=self.scope,
            function="Transcriber.resume",
            deadline=deadline,
            max_attempts=max_attempts,
        )
        self.task_id = ""
        self.session_id = ""
        self.attempts = 0
        self.bytes_sent = 0
        self._leg: Leg | None = None
        self._runner: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.task_id = self.session_id = ""
        self.attempts = self.bytes_sent = 0
        self._buffer = ReplayBuffer(self._bytes_per_second or 32000, self.max_buffer_seconds)
        # Flow control needs audio that is cut by time (PCM); other formats are sent unwindowed.
        self._flow = (
            FlowWindow(self.max_unconfirmed, self._bytes_per_second, self._buffer.position(1))
            if self._bytes_per_second
            else None
        )
        self._timeline = Timeline()
        self._resumption = Resumption(self._settings)
        self._heard = 0  # the furthest stream position any leg was sent
        self._controls: dict[str, Any] = {}
        self._generation = 0
        self._send_lock = asyncio.Lock()
        self._events: Inbox[StreamEvent | _End] = Inbox(
            self.max_queued_events,
            min(COALESCE_AT, self.max_queued_events),
            _supersedes,
            _text_size,
            MAX_QUEUED_TEXT,
        )
        self._ended = asyncio.Event()
        self._live = asyncio.Event()  # a leg is up and its replay is done
        self._room = asyncio.Event()  # something changed that may make room in the buffer
        self._committed = asyncio.Event()  # a sentence ended (or the stream did)
        self._confirmed = asyncio.Event()  # the leg reported hearing more (or it ended)
        self._error: BaseException | None = None
        self._reported = False  # the failure was raised to the caller at least once
        self._stopping = False
        self.summary: StreamSummary | None = None
        """What the stream delivered, once it is closed (see :meth:`aclose`)."""

    @property
    def stats(self) -> StreamStats:
        """Sentences, reconnects, replayed audio, gaps and the buffer's peak so far."""
        c = self._resumption.counters
        return StreamStats(
            sentences=self._timeline.delivered,
            reconnects=c.reconnects,
            replayed_ms=c.replayed_ms,
            gaps=c.gaps,
            gap_ms=c.gap_ms,
            duplicates=self._timeline.duplicates,
            peak_buffer_ms=self._buffer.peak_ms,
            coalesced=self._events.coalesced,
            peak_queued=self._events.peak,
        )

    # -- opening and closing -------------------------------------------------------------------

    async def __aenter__(self) -> Transcriber:
        """Connect and start the task, retried per policy until TranscriptionStarted."""
        if self._runner is not None:
            raise LocalProtocolError("this Transcriber is open already")
        self._reset()
        settings = self._open_settings
        state = CallState(settings, settings.clock.monotonic())
        leg = await run_async(state, self._leg_attempt)
        assert leg is not None  # opening never stops early
        self.attempts = state.attempt
        self._attach(leg)
        self._live.set()
        self._runner = asyncio.create_task(self._run(leg))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """On a normal exit finish the task (raising a failure not raised yet); always close.

        An exit by an exception stops the task as :meth:`aclose` does; a cancelled block (or
        another ``BaseException``) closes the connection at once.
        """
        try:
            if self._runner is not None and not self._reported:
                if exc_type is None:
                    await self.finish()
                elif issubclass(exc_type, Exception):
                    await self._stop_quietly()
        finally:
            await self._close()

    async def aclose(self) -> StreamSummary:
        """Stop the task, close the stream and say what it delivered (also :attr:`summary`).

        Mid-stream the audio already accepted goes out, then StopTranscription;
        TranscriptionCompleted is awaited for at most ``stop_timeout`` in all (a reconnect
        included), then the connection closes. Events that arrived stay readable; ``async for``
        ends after them (raising ``LocalProtocolError`` if the task did not complete). A
        failure of the stream is not raised here: ``completed`` is False. Safe to call more
        than once, and from another task than the one sending.
        """
        if self._runner is not None:
            try:
                await self._stop_quietly()
            finally:
                await self._close()
        return self.summary if self.summary is not None else self._summarize(completed=False)

    async def _stop_quietly(self) -> None:
        """:meth:`finish` within ``stop_timeout``; what went wrong shows in the summary."""
        if self._error is not None:
            return
        with contextlib.suppress(Exception):  # the stream's failure, or no completion in time
            await asyncio.wait_for(self.finish(), self.stop_timeout)

    def _summarize(self, *, completed: bool) -> StreamSummary:
        rate = self._bytes_per_second
        sent = confirmed = None
        if rate:
            sent = self.bytes_sent / rate
            # Completed: the last task heard everything but what the buffer's bound dropped.
            confirmed = (
                sent - self._resumption.counters.gap_ms / 1000
                if completed
                else (self._timeline.last_end or 0) / 1000
            )
        return StreamSummary(
            completed=completed,
            sentences=self._timeline.delivered,
            audio_sent_seconds=sent,
            audio_confirmed_seconds=confirmed,
            bytes_sent=self.bytes_sent,
            task_id=self.task_id,
        )

    async def _leg_attempt(self, attempt: Attempt) -> Leg | None:
        """One attempt of the stream: a new leg, holding the attempt's slot until it ends."""
        if self._stopping and self._buffer.size == 0:
            return None  # stopping, and every sentence is out: no audio left to hear
        leg = await start_leg(
            self.url,
            self.appkey,
            self.params,
            attempt.token,
            self._buffer.start,
            open_timeout=self.open_timeout,
            start_timeout=self.start_timeout,
            network=self.network,
        )
        leg.attempt = attempt.hold()
        return leg

    def _attach(self, leg: Leg) -> None:
        if self._flow is not None:
            self._flow.start(leg, asyncio.get_running_loop().time())
        self._leg = leg
        self._generation += 1
        self.task_id, self.session_id = leg.task_id, leg.session_id
        self._timeline.start_task(self._buffer.ms(leg.offset))

    async def _close(self) -> None:
        completed = self._ended.is_set() and self._error is None  # TranscriptionCompleted came
        runner, replayer, leg = self._runner, self._replayer, self._leg
        self._runner = self._replayer = self._leg = None
        for task in (runner, replayer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if leg is not None:
            await leg.connection.close()
            if leg.attempt is not None:
                leg.attempt.abandon()
        # Closed before TranscriptionCompleted (the block raised): iterators must not hang.
        self._end(LocalProtocolError("the Transcriber closed before TranscriptionCompleted"))
        if runner is not None:
            self.summary = self._summarize(completed=completed)

    # -- the send path ---------------------------------------------------------------------------

    async def send(self, chunk: bytes) -> None:
        """Send audio; a chunk over 16 KiB goes as several frames (docs/protocol.md "Audio frames").

        Made for a live source, it does not wait for a reconnect: the audio is kept and goes to
        the new task after the replay. It waits while the replay buffer is full of audio no
        task has been sent yet (past the bound it drops the oldest audio a task has been sent,
        an :class:`AudioGap` if a resume would have needed it), and while the task has not
        reported hearing the audio sent ``streaming.max_unconfirmed`` ago — which a source at
        real time never meets.
        """
        await self._send(chunk, patient=False)

    async def send_all(
        self, frames: AsyncIterable[bytes] | Iterable[bytes], *, realtime: bool = True
    ) -> None:
        """Send a recording frame by frame (PCM: 100 ms frames suit the gateway).

        ``realtime`` paces PCM at real time, like a live source (docs/protocol.md "Limits": no
        bursts far faster than real time). ``realtime=False`` sends as fast as the gateway
        takes it; unlike a live source it waits out a reconnect instead of piling the rest of
        the recording into the buffer, and waits for sentences to end instead of dropping audio
        still in flight when the buffer is full (up to :data:`QUIET_SECONDS` without one).
        """
        pace = self._bytes_per_second if realtime else None
        async for frame in paced(frames, pace):
            if not realtime:
                # A socket with room takes a frame without suspending: yield, or the event
                # path (whose sentence ends free the buffer) would wait for the whole file.
                await asyncio.sleep(0)
                await self._wait_live()
            await self._send(frame, patient=not realtime)

    async def _send(self, chunk: bytes, *, patient: bool) -> None:
        self._require_open()
        if self._stopping:
            raise LocalProtocolError("audio after finish(): the stream is stopping")
        for frame in split_frames(chunk, MAX_AUDIO_FRAME):
            await self._send_frame(frame, patient)

    async def _send_frame(self, frame: bytes, patient: bool) -> None:
        """Keep one audio frame and send it on: every audio byte of the stream enters here."""
        self._raise_failure()
        if patient:
            await self._wait_for_commits(len(frame))
        while not self._buffer.has_room(len(frame), self._evictable()):
            self._room.clear()
            await self._room.wait()
            self._raise_failure()
        self._buffer.append(frame, self._evictable())
        self.bytes_sent += len(frame)
        leg = self._leg
        if leg is None or self._replaying():
            return  # a reconnect is under way: the replay sends this frame too
        async with self._send_lock:
            error = await self._flush(leg, None)
        if not self.resume:
            self._buffer.forget(leg.sent)  # nothing will be replayed: keep nothing
        if error is not None:
            await self._broken(error)

    async def _wait_for_commits(self, size: int) -> None:
        """Wait until ``size`` bytes fit without dropping uncommitted audio.

        An unpaced sender runs ahead of the recognizer by whatever the sockets hold (on
        loopback, tens of seconds of audio): dropping that audio would lose sentences the
        gateway has not heard yet. So it waits for sentence ends instead; after
        :data:`QUIET_SECONDS` without one (a long sentence or silence the gateway has heard),
        the bound may drop the oldest audio as for a live source.
        """
        while not self._buffer.has_room(size, self._buffer.start):
            self._committed.clear()
            try:
                await asyncio.wait_for(self._committed.wait(), QUIET_SECONDS)
            except asyncio.TimeoutError:
                if self._live.is_set():
                    return
            self._raise_failure()

    async def control(self, payload: Mapping[str, Any]) -> None:
        """Send ControlTranscriber: change parameters mid-task (e.g. ``max_sentence_silence``).

        The changes are sent again to every task a reconnect starts, before its replay.
        """
        self._require_open()
        self._raise_failure()
        if self._stopping:
            raise LocalProtocolError("ControlTranscriber after finish(): the stream is stopping")
        self._controls.update(payload)
        leg = self._leg
        if leg is None:
            return  # the next task gets it before its replay
        async with self._send_lock:
            error = await self._flush(leg, None)  # the audio before it goes first
            if error is None and leg is self._leg and leg.protocol.state is State.STARTED:
                try:
                    await leg.connection.send(leg.protocol.control(payload))
                except TransportError as exc:
                    error = exc
        if error is not None:
            await self._broken(error)

    async def finish(self) -> None:
        """StopTranscription, then wait for TranscriptionCompleted (``stop_timeout`` seconds).

        Safe to call more than once. Raises the stream's failure if it failed. A reconnect
        while stopping replays the tail, stops the new task and waits for its completion.
        """
        self._require_open()
        if not self._stopping:
            self._raise_failure()
            self._stopping = True
            leg = self._leg
            if leg is not None and not self._replaying():
                async with self._send_lock:
                    error = await self._flush(leg, None)  # sends the stop once caught up
                if error is not None:
                    await self._broken(error)
        await self._completed()
        self._raise_failure()

    async def _completed(self) -> None:
        """Wait for the end; ``stop_timeout`` counts on each task, not across a reconnect."""
        while True:
            generation = self._generation
            try:
                await asyncio.wait_for(self._ended.wait(), self.stop_timeout)
                return
            except asyncio.TimeoutError:
                if (
                    self._leg is not None
                    and generation == self._generation
                    and not self._replaying()
                ):
                    raise TimeoutError(
                        f"no TranscriptionCompleted within {self.stop_timeout:g} s of "
                        "StopTranscription"
                    ) from None

    async def _flush(self, leg: Leg, pace: float | None) -> TransportError | None:
        """Send ``leg`` the buffered audio it lacks, then StopTranscription if finishing.

        Called with the send lock held. ``pace`` limits the rate to that many times real time
        (the replay). Returns the error if the connection broke under it: the event path sees
        the same break and decides what follows.
        """
        loop = asyncio.get_running_loop()
        began, base = loop.time(), leg.sent
        rate = self._buffer.bytes_per_second * pace if pace else None
        size = PACED_CHUNK if rate else MAX_AUDIO_FRAME
        flow = self._flow
        while leg is self._leg and leg.sent < self._buffer.end:
            if leg.protocol.state is not State.STARTED:
                return None  # the task ended on its own (TaskFailed): the event path has it
            room = flow.room(leg) if flow is not None else size
            if room <= 0:
                await self._await_confirmation(leg)
                continue
            if rate is not None:
                delay = began + (leg.sent - base) / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
            chunk = self._buffer.read(leg.sent, min(size, room))
            try:
                await leg.connection.send(leg.protocol.audio(chunk))
            except TransportError as exc:
                return exc
            leg.sent += len(chunk)
            self._heard = max(self._heard, leg.sent)
            self._room.set()
        if leg is not self._leg or leg.protocol.state is not State.STARTED:
            return None
        if self._stopping and not leg.stop_sent:
            leg.stop_sent = True
            try:
                await leg.connection.send(leg.protocol.stop())
            except TransportError as exc:
                return exc
        self._live.set()
        return None

    async def _await_confirmation(self, leg: Leg) -> None:
        """Wait until ``leg``'s task reports hearing more, the leg ends, or the window's deadline
        passes (then what it was sent counts as heard; see :mod:`._flow`)."""
        flow = self._flow
        assert flow is not None
        loop = asyncio.get_running_loop()
        left = flow.deadline(leg) - loop.time()
        if left > 0:
            self._confirmed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._confirmed.wait(), left)
                return
        if leg is self._leg:
            flow.assume_heard(leg, loop.time())

    def _confirm(self, leg: Leg, event: object) -> None:
        """A task event's time (ms of its audio processed) confirms the audio up to it."""
        if self._flow is None:
            return
        if isinstance(event, SentenceBegan | ResultChanged):
            ms = event.time
        elif isinstance(event, SentenceEnded):
            ms = event.end_time
        else:
            return
        position = leg.offset + self._buffer.position(ms)
        if self._flow.report(leg, position, asyncio.get_running_loop().time()):
            self._confirmed.set()

    async def _broken(self, error: TransportError) -> None:
        """The socket broke under a send. Resuming, the event path takes it from here."""
        if self.resume:
            return
        # The gateway closes after TaskFailed (docs/protocol.md "Events"): if the event path
        # reads one (it is quick once the socket is closed), it says more than the close.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ended.wait(), self.stop_timeout)
        self._raise_failure()
        raise error

    def _evictable(self) -> int:
        """The buffer may drop audio the current leg has had; with no leg, nothing."""
        leg = self._leg
        return leg.sent if leg is not None else self._buffer.start

    def _replaying(self) -> bool:
        return self._replayer is not None and not self._replayer.done()

    async def _wait_live(self) -> None:
        while not self._live.is_set():
            await self._live.wait()
        self._raise_failure()

    def _require_open(self) -> None:
        if self._runner is None:
            raise LocalProtocolError(
                "the Transcriber is not open: use `async with Transcriber(...) as t:`"
            )

    def _raise_failure(self) -> None:
        if self._error is not None:
            self._reported = True
            raise self._error

    # -- the event path --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        """Stream events as they arrive; ends after TranscriptionCompleted, raises a failure."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, _End):
                self._events.push(item)  # every other iterator ends too
                self._raise_failure()
                return
            yield item

    async def _run(self, leg: Leg) -> None:
        """The supervisor: read the leg's events; after a failure, resume or end the stream."""
        while True:
            try:
                await self._read(leg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # TaskFailed, a drop, a gateway that broke the protocol
                failure: Exception = exc
            else:
                await self._detach(leg, None)
                self._end(None)
                return
            await self._detach(leg, failure)
            if not self.resume:
                self._end(failure)
                return
            try:
                resumed = await self._resumption.next_leg(failure, self._leg_attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the policy's typed error, or one it does not classify
                self._end(exc)
                return
            if resumed is None:
                self._end(None)
                return
            self._resumed(resumed, leg)
            leg = resumed

    async def _read(self, leg: Leg) -> None:
        """Deliver the leg's sentence events until TranscriptionCompleted; raise its failure."""
        while True:
            event = leg.protocol.receive(await leg.connection.recv())
            if isinstance(event, Completed):
                return
            if isinstance(event, Failed):
                raise failure_error(event)
            self._confirm(leg, event)
            sentence = self._timeline.event(event)
            if sentence is None:
                continue
            if sentence.kind == "end":
                # The sentence is the caller's: its audio (up to SentenceEnd's `time`,
                # docs/protocol.md "Events") is never needed again, and the stream made progress,
                # which closes a fault episode.
                self._buffer.commit(min(sentence.end_time, self._buffer.ms(leg.sent)))
                self._resumption.progress()
                if leg.attempt is not None:
                    leg.attempt.progressed()
                self._room.set()
                self._committed.set()
            # Waits while the caller has MAX_QUEUED_EVENTS unread: reading stops, TCP pushes back.
            await self._events.put(sentence)

    async def _detach(self, leg: Leg, failure: Exception | None) -> None:
        """Close the leg and settle its attempt; a failure opens (or continues) an episode."""
        if self._leg is leg:
            self._leg = None
        self._live.clear()
        self._room.set()
        self._confirmed.set()  # a sender waiting for this leg's reports stops waiting
        replayer, self._replayer = self._replayer, None
        if replayer is not None:
            replayer.cancel()
            await asyncio.gather(replayer, return_exceptions=True)
        await leg.connection.close()
        self._resumption.settle(leg, failure, resume=self.resume)

    def _resumed(self, leg: Leg, failed: Leg) -> None:
        """Attach the resumed leg, tell the caller, and start its replay."""
        notices = self._resumption.notices(leg, failed, self._buffer, self._heard)
        self._attach(leg)
        for notice in notices:
            self._events.push(notice)
        self._replayer = asyncio.create_task(self._replay(leg))

    async def _replay(self, leg: Leg) -> None:
        """Give a new leg the parameter changes, the buffered audio, and the stop if finishing."""
        async with self._send_lock:
            if self._controls and leg.protocol.state is State.STARTED:
                try:
                    await leg.connection.send(leg.protocol.control(self._controls))
                except TransportError:
                    return  # the event path sees the break
            await self._flush(leg, self.replay_speed)

    def _end(self, error: BaseException | None) -> None:
        if self._ended.is_set():
            return
        if error is not None:
            scrub_exception(error)  # raised from several places, maybe logged: no secret in it
        self._error = error
        self._ended.set()
        self._live.set()  # wake senders waiting for a leg or for room: they raise or stop
        self._room.set()
        self._committed.set()
        self._confirmed.set()
        self._events.push(_END)

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

        Runs a stream of its own with this Transcriber's settings and the audio's format and
        sample rate; afterwards ``task_id``, ``attempts`` and :attr:`stats` describe that run.
        See :func:`~asr_resilience.clients.transcribe_file`.
        """
        from ._transcribe_file import transcribe_like  # it builds Transcribers: imported late

        return await transcribe_like(
            self, audio, realtime=realtime, format=format, sample_rate=sample_rate
        )

    def _like(self, format: str, sample_rate: int, realtime: bool) -> Transcriber:
        """A new stream with this one's settings, for audio of ``format`` at ``sample_rate``."""
        return Transcriber(
            self.url,
            self.appkey,
            self.tokens,
            self.policy,
            scope=self.scope,
            params=self.params,
            sample_rate=sample_rate,
            format=format,
            open_timeout=self.open_timeout,
            start_timeout=self.start_timeout,
            stop_timeout=self.stop_timeout,
            proxy=self.network.proxy,
            ssl=self.network.ssl,
            resume=self.resume if format == "pcm" else False,
            max_buffer_seconds=self.max_buffer_seconds,
            replay_speed=self.replay_speed if realtime else None,
            max_queued_events=self.max_queued_events,
        )

    def _adopt(self, other: Transcriber) -> None:
        """Take over another stream's outcome (``transcribe_file``'s inner stream)."""
        self.task_id, self.session_id = other.task_id, other.session_id
        self.attempts, self.bytes_sent = other.attempts, other.bytes_sent
        self._buffer, self._timeline = other._buffer, other._timeline
        self._resumption = other._resumption

"""The client side of one NLS task, sans I/O.

Call :meth:`ClientProtocol.start` / :meth:`audio` / :meth:`stop` to get the frames to send, and
feed every received frame to :meth:`receive` to get a typed event. Misuse by the caller raises
:class:`LocalProtocolError`; a gateway that breaks the protocol raises
:class:`RemoteProtocolError`. Both move the session to ``State.ERROR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import LocalProtocolError, RemoteProtocolError
from .._version import VERSION
from . import _messages as m
from . import _state as st
from ._events import (
    Completed,
    Failed,
    ProtocolEvent,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    Started,
    confidence_field,
    count_field,
    str_field,
    words_field,
)

SDK_CONTEXT = {"sdk": {"name": "asr_resilience", "version": VERSION, "language": "python"}}
MAX_AUDIO_FRAME = 16 * 1024  # docs/protocol.md "Audio frames": frames under 16 KiB


class ClientProtocol:
    """One task (one-sentence recognition or real-time transcription) on the client side."""

    def __init__(
        self,
        namespace: str,
        appkey: str,
        params: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
    ) -> None:
        if namespace not in m.NAMESPACES:
            raise LocalProtocolError(f"unknown namespace {namespace!r}")
        self.namespace = namespace
        self.appkey = appkey
        self.params: dict[str, Any] = dict(params or {})
        self.task_id = task_id or m.new_id()
        self.state = st.State.IDLE

    def _move(self, key: str, remote: bool) -> None:
        nxt = st.step(st.CLIENT, self.state, key)
        if nxt is None:
            was = self.state
            self.state = st.State.ERROR
            error = RemoteProtocolError if remote else LocalProtocolError
            raise error(f"{key} is not allowed in state {was.value}")
        self.state = nxt

    def _directive(self, name: str, payload: Mapping[str, Any] | None = None) -> str:
        return m.Directive(
            namespace=self.namespace,
            name=name,
            task_id=self.task_id,
            message_id=m.new_id(),
            appkey=self.appkey,
            payload=payload or {},
            context=SDK_CONTEXT,
        ).to_json()

    def start(self) -> str:
        """The start directive to send."""
        self._move(st.SEND_START, remote=False)
        return self._directive(m.START[self.namespace], self.params)

    def audio(self, chunk: bytes) -> bytes:
        """Check that audio may be sent now; returns the chunk (a binary frame)."""
        if len(chunk) > MAX_AUDIO_FRAME:
            raise LocalProtocolError(f"audio frames must be under {MAX_AUDIO_FRAME} bytes")
        self._move(st.SEND_AUDIO, remote=False)
        return chunk

    def control(self, payload: Mapping[str, Any]) -> str:
        """A ControlTranscriber directive (real-time transcription only)."""
        if self.namespace != m.TRANSCRIBER:
            raise LocalProtocolError("ControlTranscriber exists only for SpeechTranscriber")
        self._move(st.SEND_CONTROL, remote=False)
        return self._directive(m.CONTROL, payload)

    def stop(self) -> str:
        """The stop directive to send."""
        self._move(st.SEND_STOP, remote=False)
        return self._directive(m.STOP[self.namespace])

    def receive(self, frame: str | bytes) -> ProtocolEvent:
        """Parse one received frame into a typed event and advance the state."""
        try:
            event = m.parse_event(frame)
            return self._interpret(event)
        except RemoteProtocolError:
            self.state = st.State.ERROR
            raise

    def _interpret(self, event: m.Event) -> ProtocolEvent:
        # Any event naming another task is not ours, whatever its name (TaskFailed included):
        # a gateway that mixes tasks up cannot be trusted with this one's outcome.
        if event.task_id and event.task_id != self.task_id:
            raise RemoteProtocolError(f"{event.name} for another task {event.task_id!r}")
        if event.name == m.TASK_FAILED:
            # docs/protocol.md "Events": TaskFailed may carry namespace "Default".
            if event.namespace not in (self.namespace, m.DEFAULT_NAMESPACE):
                raise RemoteProtocolError(f"TaskFailed with namespace {event.namespace!r}")
            if event.status == m.SUCCESS:
                # No status (parsed as success) or the success code: a failure that says it is
                # none. Raising it as NlsError(20000000) would hand the policy a success code.
                raise RemoteProtocolError("TaskFailed without a failing status")
            self._move(st.RECV_FAILED, remote=True)
            return Failed(self.task_id, event.status, event.status_text)
        if event.namespace != self.namespace:
            raise RemoteProtocolError(
                f"event namespace {event.namespace!r} in a {self.namespace} task"
            )
        if event.status != m.SUCCESS:
            raise RemoteProtocolError(f"{event.name} with status {event.status}")
        p = event.payload
        name = event.name
        if name == m.STARTED[self.namespace]:
            self._move(st.RECV_STARTED, remote=True)
            session = p.get("session_id", "")
            return Started(self.task_id, session if isinstance(session, str) else "")
        if name == m.COMPLETED[self.namespace]:
            self._move(st.RECV_COMPLETED, remote=True)
            if self.namespace == m.RECOGNIZER:
                duration = p.get("duration")
                return Completed(
                    self.task_id,
                    str_field(p, "result", ""),
                    count_field(p, "duration") if duration is not None else None,
                )
            return Completed(self.task_id)
        if name == m.RESULT_CHANGED[self.namespace]:
            self._move(st.RECV_PROGRESS, remote=True)
            if self.namespace == m.RECOGNIZER:
                return ResultChanged(str_field(p, "result", ""))
            return ResultChanged(
                text=str_field(p, "result", ""),
                index=count_field(p, "index", 0),
                time=count_field(p, "time", 0),
                confidence=confidence_field(p),
                words=words_field(p),
            )
        if self.namespace == m.TRANSCRIBER and name == m.SENTENCE_BEGIN:
            self._move(st.RECV_PROGRESS, remote=True)
            return SentenceBegan(count_field(p, "index"), count_field(p, "time", 0))
        if self.namespace == m.TRANSCRIBER and name == m.SENTENCE_END:
            self._move(st.RECV_PROGRESS, remote=True)
            status = p.get("status", m.SUCCESS)
            begin, end = count_field(p, "begin_time"), count_field(p, "time")
            if end < begin:
                raise RemoteProtocolError(
                    f"SentenceEnd ends at {end} ms, before it begins ({begin})"
                )
            return SentenceEnded(
                index=count_field(p, "index"),
                begin_time=begin,
                end_time=end,
                text=str_field(p, "result", ""),
                confidence=confidence_field(p),
                words=words_field(p),
                timed_out=status == m.SENTENCE_TIMEOUT,
            )
        raise RemoteProtocolError(f"unknown event {name!r} for {self.namespace}")

"""One attempt of the official SDK, as its callbacks report it, and what that outcome means.

The SDK calls back from its websocket thread with raw JSON; :class:`AttemptTracker` records
started / completed / TaskFailed / closed there, and :meth:`AttemptTracker.outcome` turns the
record into the attempt's result or the error the policy classifies:

============================================  ==============================================
what the callbacks (and the SDK's log) said   raised
============================================  ==============================================
Completed                                     (the result)
TaskFailed                                    ``NlsError(code, text, task_id)``
closed before Started, handshake 403 logged   ``NlsError(403, "Forbidden", http_status=403)``
closed before Started, other status logged    websockets ``InvalidStatus`` (HTTP status)
closed before Started, connection error       ``TransportError`` (refused, reset, timeout, ...)
closed after the handshake, before Started    ``TransportError("abnormal_close")``
closed before Started, nothing known          ``NlsError(403)`` once per call, then
                                              ``TransportError("abnormal_close")``
closed after Started, no final event          ``TransportError("abnormal_close")``
nothing within the timeout                    ``TimeoutError``
============================================  ==============================================
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Any, Literal

from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from .._errors import NlsError, RemoteProtocolError, TransportError
from .._extract import task_failed
from .._failure import Failure, TransportKind
from ..clients._results import SentenceEvent
from ..observe import redact_text
from ..protocol import SUCCESS, parse_event
from ..protocol._events import confidence_field, int_field, str_field, words_field
from . import _nls
from ._trace import ConnectionNote, SdkLogTap

__all__ = ["AttemptTracker", "CallNotes", "Finished"]

SENTENCE_TIMEOUT = 51040104
"""docs/protocol.md "Events": SentenceEnd ``payload.status`` of a sentence the gateway cut off."""


@dataclass(slots=True)
class CallNotes:
    """What one call (all its attempts) has learnt: closes nothing explained so far."""

    unexplained_closes: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """A completed task: the final event's task id, text and duration (ms, recognizer)."""

    task_id: str
    text: str
    duration: int | None


class AttemptTracker:
    """The callbacks of one SDK object; written in the SDK's threads, read by the caller."""

    def __init__(self, tap: SdkLogTap, service: Literal["recognizer", "transcriber"]) -> None:
        self._tap = tap
        self._service = service
        self._lock = threading.Lock()
        self.started = threading.Event()
        self.ended = threading.Event()
        """Completed or TaskFailed arrived: the task's last word."""
        self.closed = threading.Event()
        self.opened = False
        """The handshake succeeded (known when the SDK's on_open could be hooked)."""
        self.finished: Finished | None = None
        self.failure: Failure | None = None
        self.protocol_error: RemoteProtocolError | None = None
        self.note: ConnectionNote | None = None
        self.sentences: list[SentenceEvent] = []
        self._begin_times: dict[int, int] = {}
        self._thread: threading.Thread | None = None
        self._websocket: Any = None
        self._handle: socket.socket | None = None
        self._sdk: Any = None

    # -- wiring --------------------------------------------------------------------------------

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for the SDK class's constructor."""
        common: dict[str, Any] = {
            "on_start": self.on_start,
            "on_completed": self.on_completed,
            "on_error": self.on_error,
            "on_close": self.on_close,
            "on_result_changed": self.on_result_changed,
            "callback_args": [],
        }
        if self._service == "transcriber":
            common["on_sentence_begin"] = self.on_sentence_begin
            common["on_sentence_end"] = self.on_sentence_end
        return common

    def watch(self, sdk: Any) -> None:
        """Hook the SDK object's private on_open, to learn the handshake succeeded and to hold
        its socket for :meth:`release` (see ``_nls.close_socket``)."""
        self._sdk = sdk
        name = _nls.open_hook_name(sdk)
        if name is None:
            return
        original = getattr(sdk, name)

        def on_open(*args: Any) -> None:
            # Runs in the websocket thread after the handshake, before it starts reading.
            websocket = _nls.websocket_of(sdk)
            with self._lock:
                self.opened = True
                self._thread = threading.current_thread()
                self._websocket = websocket
                self._handle = _nls.duplicate(websocket)
            original(*args)

        setattr(sdk, name, on_open)

    # -- callbacks (the SDK's websocket thread) -------------------------------------------------

    def on_start(self, message: str, *args: Any) -> None:
        self.started.set()

    def on_result_changed(self, message: str, *args: Any) -> None:
        if self._service == "transcriber":
            self._sentence(message, "partial")

    def on_sentence_begin(self, message: str, *args: Any) -> None:
        self._sentence(message, "begin")

    def on_sentence_end(self, message: str, *args: Any) -> None:
        self._sentence(message, "end")

    def on_completed(self, message: str, *args: Any) -> None:
        try:
            event = parse_event(message)
            text = str_field(event.payload, "result", "")
            duration = event.payload.get("duration")
            finished = Finished(
                event.task_id,
                text,
                int_field(event.payload, "duration") if duration is not None else None,
            )
        except RemoteProtocolError as exc:
            self._broken(exc)
            return
        with self._lock:
            self.finished = finished
        self.ended.set()

    def on_error(self, message: str, *args: Any) -> None:
        # The SDK calls on_error for TaskFailed only, with the frame's JSON text.
        failure = task_failed(message)
        if failure is None:
            self._broken(RemoteProtocolError("TaskFailed without a failing status"))
            return
        with self._lock:
            self.failure = failure
        self.ended.set()

    def on_close(self, *args: Any) -> None:
        # websocket-client may call on_close twice (teardown after the close frame, then again
        # when run_forever ends): the first one tells.
        if self.closed.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.current_thread()
            # The SDK logged why run_forever failed in this same thread just before (trace.py).
            self.note = self._tap.take()
        self.closed.set()

    def _sentence(self, message: str, kind: Literal["begin", "partial", "end"]) -> None:
        try:
            payload = parse_event(message).payload
            index = int_field(payload, "index")
            if kind == "begin":
                at = int_field(payload, "time", 0)
                event = SentenceEvent("begin", index, "", at, at)
            elif kind == "partial":
                at = int_field(payload, "time", 0)
                event = SentenceEvent(
                    "partial",
                    index,
                    str_field(payload, "result", ""),
                    self._begin_times.get(index, at),
                    at,
                    confidence_field(payload),
                    words_field(payload),
                )
            else:
                event = SentenceEvent(
                    "end",
                    index,
                    str_field(payload, "result", ""),
                    int_field(payload, "begin_time"),
                    int_field(payload, "time"),
                    confidence_field(payload),
                    words_field(payload),
                    payload.get("status", SUCCESS) == SENTENCE_TIMEOUT,
                )
        except RemoteProtocolError as exc:
            self._broken(exc)
            return
        with self._lock:
            if kind == "begin":
                self._begin_times[index] = event.begin_time
            self.sentences.append(event)

    def _broken(self, error: RemoteProtocolError) -> None:
        with self._lock:
            if self.protocol_error is None:
                self.protocol_error = error
        self.ended.set()

    # -- the caller's side -----------------------------------------------------------------------

    @property
    def over(self) -> bool:
        """The task can take no more audio: it ended or the connection closed."""
        return self.ended.is_set() or self.closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        return self.closed.wait(timeout)

    def outcome(self, call: CallNotes, *, waited: float) -> Finished:
        """The attempt's result, or the error that stands for what happened."""
        with self._lock:
            finished, failure = self.finished, self.failure
            protocol_error, note, opened = self.protocol_error, self.note, self.opened
        if protocol_error is not None:
            raise protocol_error
        if failure is not None:
            raise NlsError(failure.code or 0, redact_text(failure.message), failure.task_id)
        if finished is not None:
            return finished
        if not self.closed.is_set():
            what = "the task's final event" if self.started.is_set() else "the task to start"
            raise TimeoutError(f"waited {waited:g} s for {what}")
        if self.started.is_set():
            # docs/protocol.md "Events": the gateway closes only after Completed or TaskFailed.
            detail = note.error if note is not None else ""
            raise TransportError("abnormal_close", detail or "the connection closed mid-task")
        if note is not None and note.handshake_status is not None:
            raise _handshake_error(note.handshake_status, note.error)
        if note is not None:
            raise TransportError(_transport_kind(note.error), note.error)
        if opened:
            raise TransportError(
                "abnormal_close", "the gateway closed the connection before the task started"
            )
        # Nothing tells why: the SDK's log did not reach the tap. A refused token is the likely
        # cause of a close before the handshake finished: refresh once, then call it transport.
        call.unexplained_closes += 1
        if call.unexplained_closes == 1:
            raise NlsError(
                403,
                "the connection closed before the task started and the SDK did not say why "
                "(no handshake status logged): assuming the token was refused",
            )
        raise TransportError("abnormal_close", "the connection closed before the task started")

    def release(self, grace: float) -> None:
        """End the attempt's connection and thread, and close the socket the SDK leaves open."""
        with self._lock:
            handle, websocket = self._handle, self._websocket
        if not self.closed.is_set():
            # A timeout or a local error: the connection is still up (or stuck in the handshake).
            if handle is not None:
                _nls.wake(handle)
            else:
                stuck = _nls.websocket_of(self._sdk)
                if stuck is not None:
                    _nls.close_socket(stuck)
                elif self._sdk is not None:
                    with contextlib.suppress(Exception):  # start() failed before connecting
                        self._sdk.shutdown()
        thread = self._thread or _nls.connection_thread(self._sdk)
        if thread is not None and thread is not threading.current_thread():
            # No thread: start() refused its arguments before connecting; nothing to wait for.
            thread.join(grace)
        if websocket is not None:
            _nls.close_socket(websocket)
        if handle is not None:
            handle.close()


def _handshake_error(status: int, text: str) -> Exception:
    if status == 403:
        # The seed table's row 403: the token does not exist (refresh-token).
        return NlsError(403, "Forbidden", http_status=403)
    reason = text.split(f"{status}", 1)[-1].strip() or "Error"
    # The failure extractor reads a websockets handshake rejection as an HTTP status.
    return InvalidStatus(Response(status, reason, Headers(), b""))


def _transport_kind(text: str) -> TransportKind:
    lowered = text.lower()
    if "refused" in lowered or "errno 111" in lowered:
        return "refused"
    if "reset" in lowered or "errno 104" in lowered:
        return "reset"
    if "timed out" in lowered or "timeout" in lowered:
        return "timeout"
    return "abnormal_close"

"""NLS messages as data: directive and event frames, built and parsed without any I/O.

docs/protocol.md "Message header", "Directives" and "Events": every frame is a JSON text object with
a ``header`` (namespace, name, ids, and on events the status) and an optional ``payload``. Parsing
is strict about shape and types and raises :class:`RemoteProtocolError` for anything else, so
callers see either a well-formed message or that one exception.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import RemoteProtocolError

SUCCESS = 20000000
SUCCESS_TEXT = "Gateway:SUCCESS:Success."

RECOGNIZER = "SpeechRecognizer"
TRANSCRIBER = "SpeechTranscriber"
DEFAULT_NAMESPACE = "Default"  # TaskFailed may come with it (docs/protocol.md "Events")
NAMESPACES = (RECOGNIZER, TRANSCRIBER)

START = {RECOGNIZER: "StartRecognition", TRANSCRIBER: "StartTranscription"}
STOP = {RECOGNIZER: "StopRecognition", TRANSCRIBER: "StopTranscription"}
CONTROL = "ControlTranscriber"
DIRECTIVES = {
    RECOGNIZER: ("StartRecognition", "StopRecognition"),
    TRANSCRIBER: ("StartTranscription", "StopTranscription", CONTROL),
}

STARTED = {RECOGNIZER: "RecognitionStarted", TRANSCRIBER: "TranscriptionStarted"}
COMPLETED = {RECOGNIZER: "RecognitionCompleted", TRANSCRIBER: "TranscriptionCompleted"}
RESULT_CHANGED = {RECOGNIZER: "RecognitionResultChanged", TRANSCRIBER: "TranscriptionResultChanged"}
SENTENCE_BEGIN = "SentenceBegin"
SENTENCE_END = "SentenceEnd"
TASK_FAILED = "TaskFailed"
EVENTS = {
    RECOGNIZER: ("RecognitionStarted", "RecognitionResultChanged", "RecognitionCompleted"),
    TRANSCRIBER: (
        "TranscriptionStarted",
        "SentenceBegin",
        "TranscriptionResultChanged",
        "SentenceEnd",
        "TranscriptionCompleted",
    ),
}
SENTENCE_TIMEOUT = 51040104
"""``SentenceEnd.payload.status`` for a sentence that timed out: not a failure of the task."""


def new_id() -> str:
    """A fresh 32-hex-digit id, as the SDKs make for task_id and message_id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Directive:
    """A client → gateway frame."""

    namespace: str
    name: str
    task_id: str
    message_id: str
    appkey: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        frame: dict[str, Any] = {
            "header": {
                "message_id": self.message_id,
                "task_id": self.task_id,
                "namespace": self.namespace,
                "name": self.name,
                "appkey": self.appkey,
            }
        }
        if self.payload or self.name.startswith("Start") or self.name == CONTROL:
            frame["payload"] = dict(self.payload)
        if self.context:
            frame["context"] = dict(self.context)
        return json.dumps(frame, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Event:
    """A gateway → client frame."""

    namespace: str
    name: str
    task_id: str
    message_id: str
    status: int = SUCCESS
    status_text: str = SUCCESS_TEXT
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        frame: dict[str, Any] = {
            "header": {
                "namespace": self.namespace,
                "name": self.name,
                "status": self.status,
                "status_text": self.status_text,
                "message_id": self.message_id,
                "task_id": self.task_id,
            },
            "payload": dict(self.payload),
        }
        return json.dumps(frame, ensure_ascii=False)


def _load(
    text: str | bytes,
) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    if isinstance(text, bytes):
        raise RemoteProtocolError("a binary frame arrived where a JSON text frame is due")
    if not isinstance(text, str):
        raise RemoteProtocolError(f"expected a text frame, got {type(text).__name__}")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise RemoteProtocolError("frame is not a JSON object")
    header = frame.get("header")
    if not isinstance(header, dict):
        raise RemoteProtocolError("frame has no header object")
    payload = frame.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise RemoteProtocolError("payload is not a JSON object")
    return frame, header, payload


def _text(header: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = header.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise RemoteProtocolError(f"header.{key} must be a string, got {type(value).__name__}")
    return value


def parse_directive(text: str | bytes) -> Directive:
    """A directive from a text frame; RemoteProtocolError for anything malformed."""
    frame, header, payload = _load(text)
    context = frame.get("context", {})
    return Directive(
        namespace=_text(header, "namespace"),
        name=_text(header, "name"),
        task_id=_text(header, "task_id"),
        message_id=_text(header, "message_id", required=False),
        appkey=_text(header, "appkey", required=False),
        payload=payload,
        context=context if isinstance(context, dict) else {},
    )


def parse_event(text: str | bytes) -> Event:
    """An event from a text frame; RemoteProtocolError for anything malformed."""
    _, header, payload = _load(text)
    status = header.get("status", SUCCESS)
    if isinstance(status, bool) or not isinstance(status, int):
        raise RemoteProtocolError(f"header.status must be an integer, got {status!r}")
    # docs/protocol.md "Events": `status_text`, though one docs page says `status_message`.
    status_text = header.get("status_text", header.get("status_message", ""))
    if not isinstance(status_text, str):
        raise RemoteProtocolError("header.status_text must be a string")
    return Event(
        namespace=_text(header, "namespace"),
        name=_text(header, "name"),
        task_id=_text(header, "task_id", required=False),
        message_id=_text(header, "message_id", required=False),
        status=status,
        status_text=status_text,
        payload=payload,
    )

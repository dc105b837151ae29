"""The NLS protocol, sans I/O: messages, typed events, and session state machines."""

from .._errors import LocalProtocolError, RemoteProtocolError
from ._client import ClientProtocol
from ._events import (
    Completed,
    Failed,
    ProtocolEvent,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    Started,
    Word,
)
from ._gateway import Audio, GatewayProtocol, GatewayReject, validate_start
from ._messages import (
    RECOGNIZER,
    SUCCESS,
    TRANSCRIBER,
    Directive,
    Event,
    new_id,
    parse_directive,
    parse_event,
)
from ._state import State

__all__ = [
    "RECOGNIZER",
    "SUCCESS",
    "TRANSCRIBER",
    "Audio",
    "ClientProtocol",
    "Completed",
    "Directive",
    "Event",
    "Failed",
    "GatewayProtocol",
    "GatewayReject",
    "LocalProtocolError",
    "ProtocolEvent",
    "RemoteProtocolError",
    "ResultChanged",
    "SentenceBegan",
    "SentenceEnded",
    "Started",
    "State",
    "Word",
    "new_id",
    "parse_directive",
    "parse_event",
    "validate_start",
]

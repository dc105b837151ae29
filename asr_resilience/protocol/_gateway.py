"""The gateway side of one NLS task, sans I/O (the simulator drives it).

Feed each received frame to :meth:`GatewayProtocol.receive`; it returns the directive or the
audio, or raises :class:`GatewayReject` with the vendor code the real gateway answers with
(docs/protocol.md "Status codes"). The event builders return the frames to send and advance the
state; building an event the state does not allow raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import LocalProtocolError, RemoteProtocolError
from . import _messages as m
from . import _state as st

FORMATS = ("pcm", "wav", "opus", "opu", "speex", "amr", "mp3", "aac")
SAMPLE_RATES = (8000, 16000)
BOOL_PARAMS = (
    "enable_intermediate_result",
    "enable_punctuation_prediction",
    "enable_inverse_text_normalization",
    "enable_voice_detection",
    "enable_words",
    "disfluency",
    "enable_semantic_sentence_detection",
)


class GatewayReject(RemoteProtocolError):
    """The client broke a rule; the gateway answers TaskFailed with this code and text."""

    def __init__(self, code: int, status_text: str) -> None:
        super().__init__(f"{code} {status_text}")
        self.code = code
        self.status_text = status_text


@dataclass(frozen=True, slots=True)
class Audio:
    """A binary audio frame."""

    data: bytes


def validate_start(namespace: str, payload: Mapping[str, Any], max_vocabulary: int) -> None:
    """Raise GatewayReject for start parameters the gateway refuses."""
    fmt = payload.get("format", "pcm")
    if not isinstance(fmt, str):
        raise GatewayReject(40000003, "Gateway:PARAMETER_INVALID:Invalid parameter 'format'!")
    if fmt.lower() not in FORMATS:
        raise GatewayReject(41010100, f"UNSUPPORTED_FORMAT:Format '{fmt}' is not supported!")
    rate = payload.get("sample_rate", 16000)
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise GatewayReject(40000003, "Gateway:PARAMETER_INVALID:Invalid parameter 'sample_rate'!")
    if rate not in SAMPLE_RATES:
        raise GatewayReject(41010101, "UNSUPPORTED_SAMPLE_RATE")
    for key in BOOL_PARAMS:
        if key in payload and not isinstance(payload[key], bool):
            raise GatewayReject(40000003, f"Gateway:PARAMETER_INVALID:Invalid parameter '{key}'!")
    if namespace == m.TRANSCRIBER and "max_sentence_silence" in payload:
        silence = payload["max_sentence_silence"]
        if isinstance(silence, bool) or not isinstance(silence, int) or not 200 <= silence <= 6000:
            raise GatewayReject(
                40000003, "Gateway:PARAMETER_INVALID:max_sentence_silence must be 200..6000!"
            )
    vocabulary = payload.get("vocabulary")
    if vocabulary is not None:
        if not isinstance(vocabulary, dict):
            raise GatewayReject(
                40010003, "Gateway:DIRECTIVE_INVALID:[vocabulary must be an object]"
            )
        if len(vocabulary) > max_vocabulary:
            raise GatewayReject(
                40010003,
                f"Gateway:DIRECTIVE_INVALID:Too many items for 'vocabulary'!({len(vocabulary)})",
            )


class GatewayProtocol:
    """One task on the gateway side."""

    def __init__(self, *, max_vocabulary: int = 128) -> None:
        self.state = st.State.IDLE
        self.namespace = ""
        self.task_id = ""
        self.appkey = ""
        self.params: Mapping[str, Any] = {}
        self.max_vocabulary = max_vocabulary

    def _reject_state(self, what: str) -> GatewayReject:
        return GatewayReject(
            40000002, f"Gateway:MESSAGE_INVALID:Can't process message in state '{self.state.name}'!"
        )

    def _remote(self, key: str, what: str) -> None:
        nxt = st.step(st.GATEWAY, self.state, key)
        if nxt is None:
            if key == st.G_RECV_STOP and self.state is st.State.STOPPING:
                raise GatewayReject(
                    40010005, "Gateway:TASK_STATE_ERROR:Got stop directive while task is stopping!"
                )
            raise self._reject_state(what)
        self.state = nxt

    def receive(self, frame: str | bytes) -> m.Directive | Audio:
        """Interpret one client frame."""
        if isinstance(frame, bytes | bytearray | memoryview):
            self._remote(st.G_RECV_AUDIO, "audio")
            return Audio(bytes(frame))
        try:
            directive = m.parse_directive(frame)
        except RemoteProtocolError as exc:
            raise GatewayReject(40010003, f"Gateway:DIRECTIVE_INVALID:[{exc}]") from None
        ns = directive.namespace
        if ns not in m.NAMESPACES:
            raise GatewayReject(40010001, "Gateway:NAMESPACE_NOT_FOUND:RESTful url path illegal")
        if directive.name not in m.DIRECTIVES[ns]:
            text = f"Directive '{ns}.{directive.name}' is not supported!"
            raise GatewayReject(40010002, f"Gateway:DIRECTIVE_NOT_SUPPORTED:{text}")
        if directive.name == m.START[ns]:
            self._remote(st.G_RECV_START, directive.name)
            validate_start(ns, directive.payload, self.max_vocabulary)
            self.namespace, self.task_id = ns, directive.task_id
            self.appkey, self.params = directive.appkey, directive.payload
            return directive
        if ns != self.namespace or directive.task_id != self.task_id:
            raise self._reject_state(f"{ns}.{directive.name} for task '{directive.task_id}'")
        key = st.G_RECV_STOP if directive.name == m.STOP[ns] else st.G_RECV_CONTROL
        self._remote(key, directive.name)
        return directive

    def _event(
        self, key: str, names: Mapping[str, str] | str, payload: Mapping[str, Any] | None = None
    ) -> str:
        nxt = st.step(st.GATEWAY, self.state, key)
        if nxt is None:
            raise LocalProtocolError(f"cannot send {key[7:]} in state {self.state.value}")
        name = names if isinstance(names, str) else names[self.namespace]
        self.state = nxt
        return m.Event(
            namespace=self.namespace,
            name=name,
            task_id=self.task_id,
            message_id=m.new_id(),
            payload=payload or {},
        ).to_json()

    def started(self, session_id: str = "") -> str:
        payload = (
            {"session_id": session_id or m.new_id()} if self.namespace == m.TRANSCRIBER else {}
        )
        return self._event(st.G_SEND_STARTED, m.STARTED, payload)

    def result_changed(self, payload: Mapping[str, Any]) -> str:
        return self._event(st.G_SEND_PROGRESS, m.RESULT_CHANGED, payload)

    def sentence_begin(self, index: int, time: int) -> str:
        return self._event(st.G_SEND_PROGRESS, m.SENTENCE_BEGIN, {"index": index, "time": time})

    def sentence_end(self, payload: Mapping[str, Any]) -> str:
        return self._event(st.G_SEND_PROGRESS, m.SENTENCE_END, payload)

    def completed(self, payload: Mapping[str, Any] | None = None) -> str:
        return self._event(st.G_SEND_COMPLETED, m.COMPLETED, payload)

    def failed(self, code: int, status_text: str, *, default_namespace: bool = True) -> str:
        """TaskFailed (with namespace ``Default`` as users' logs show it); allowed in any state."""
        self.state = st.State.FAILED
        return m.Event(
            namespace=m.DEFAULT_NAMESPACE if default_namespace else (self.namespace or "Default"),
            name=m.TASK_FAILED,
            task_id=self.task_id,
            message_id=m.new_id(),
            status=code,
            status_text=status_text,
        ).to_json()

"""The sans-I/O protocol core: directives, events, state tables, and robustness to garbage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr_resilience._errors import LocalProtocolError, RemoteProtocolError
from asr_resilience.protocol import (
    RECOGNIZER,
    TRANSCRIBER,
    ClientProtocol,
    Completed,
    Failed,
    GatewayProtocol,
    GatewayReject,
    ResultChanged,
    SentenceBegan,
    SentenceEnded,
    Started,
    State,
    parse_directive,
    parse_event,
)
from asr_resilience.protocol._events import ProtocolEvent


class Pair:
    """A client and a gateway joined without sockets (as h11's test helpers do)."""

    def __init__(self, namespace: str, params: dict[str, Any] | None = None) -> None:
        self.client = ClientProtocol(namespace, "appkey-1", params or {})
        self.gateway = GatewayProtocol()

    def to_gateway(self, frame: str | bytes) -> Any:
        return self.gateway.receive(frame)

    def to_client(self, frame: str) -> ProtocolEvent:
        return self.client.receive(frame)


def test_recognizer_round_trip() -> None:
    """Start, audio, intermediate result, stop, completed: both sides agree on every step."""
    pair = Pair(RECOGNIZER, {"format": "pcm", "sample_rate": 16000})
    directive = pair.to_gateway(pair.client.start())
    assert directive.name == "StartRecognition"
    assert directive.payload["sample_rate"] == 16000
    started = pair.to_client(pair.gateway.started())
    assert isinstance(started, Started)
    pair.to_gateway(pair.client.audio(b"\x00" * 3200))
    partial = pair.to_client(pair.gateway.result_changed({"result": "你好"}))
    assert partial == ResultChanged("你好")
    pair.to_gateway(pair.client.stop())
    assert pair.gateway.state is State.STOPPING
    done = pair.to_client(pair.gateway.completed({"result": "你好世界", "duration": 1200}))
    assert done == Completed(pair.client.task_id, "你好世界", 1200)
    assert (pair.client.state, pair.gateway.state) == (State.COMPLETED, State.COMPLETED)


def test_transcriber_round_trip_with_control() -> None:
    """Sentences begin and end with times, ControlTranscriber is accepted mid-task."""
    pair = Pair(TRANSCRIBER)
    pair.to_gateway(pair.client.start())
    started = pair.to_client(pair.gateway.started("session-1"))
    assert started == Started(pair.client.task_id, "session-1")
    pair.to_gateway(pair.client.control({"max_sentence_silence": 500}))
    assert pair.to_client(pair.gateway.sentence_begin(1, 300)) == SentenceBegan(1, 300)
    end = pair.to_client(
        pair.gateway.sentence_end(
            {
                "index": 1,
                "time": 1500,
                "begin_time": 300,
                "result": "你好",
                "confidence": 0.9,
                "words": [{"text": "你好", "startTime": 300, "endTime": 1500}],
            }
        )
    )
    assert isinstance(end, SentenceEnded)
    assert (end.index, end.begin_time, end.end_time, end.text) == (1, 300, 1500, "你好")
    assert end.words[0].end_time == 1500
    pair.to_gateway(pair.client.stop())
    assert isinstance(pair.to_client(pair.gateway.completed()), Completed)


def test_sentence_timeout_is_not_a_failure() -> None:
    """SentenceEnd with payload.status 51040104 marks a timed-out sentence; the task goes on."""
    pair = Pair(TRANSCRIBER)
    pair.to_gateway(pair.client.start())
    pair.to_client(pair.gateway.started())
    end = pair.to_client(
        pair.gateway.sentence_end(
            {"index": 1, "time": 9000, "begin_time": 0, "result": "", "status": 51040104}
        )
    )
    assert isinstance(end, SentenceEnded)
    assert end.timed_out
    assert pair.client.state is State.STARTED


def test_task_failed_with_default_namespace() -> None:
    """TaskFailed may come with namespace Default and status_message instead of status_text."""
    client = ClientProtocol(RECOGNIZER, "k")
    client.start()
    frame = json.dumps(
        {
            "header": {
                "namespace": "Default",
                "name": "TaskFailed",
                "status": 40000005,
                "status_message": "Gateway:TOO_MANY_REQUESTS:Too many requests!",
                "task_id": client.task_id,
            }
        }
    )
    failed = client.receive(frame)
    assert failed == Failed(
        client.task_id, 40000005, "Gateway:TOO_MANY_REQUESTS:Too many requests!"
    )
    assert client.state is State.FAILED


def test_local_misuse_is_a_local_error() -> None:
    """Audio before start, stop twice, control on the recognizer: LocalProtocolError."""
    client = ClientProtocol(TRANSCRIBER, "k")
    with pytest.raises(LocalProtocolError):
        client.audio(b"\x00")
    assert client.state is State.ERROR
    rec = ClientProtocol(RECOGNIZER, "k")
    with pytest.raises(LocalProtocolError):
        rec.control({})
    with pytest.raises(LocalProtocolError):
        ClientProtocol("Nonsense", "k")


def test_gateway_rejects_with_vendor_codes() -> None:
    """The gateway answers protocol mistakes with the vendor's codes."""
    cases: list[tuple[str | bytes, int]] = [
        (b"\x00\x01", 40000002),  # audio before any directive
        ("not json", 40010003),
        (json.dumps({"header": {"namespace": "Nope", "name": "X", "task_id": "t"}}), 40010001),
        (
            json.dumps(
                {"header": {"namespace": RECOGNIZER, "name": "EnhanceRecognition", "task_id": "t"}}
            ),
            40010002,
        ),
    ]
    for frame, code in cases:
        with pytest.raises(GatewayReject) as info:
            GatewayProtocol().receive(frame)
        assert info.value.code == code


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"sample_rate": 44100}, 41010101),
        ({"format": "flac"}, 41010100),
        ({"sample_rate": "16000"}, 40000003),
        ({"enable_intermediate_result": "yes"}, 40000003),
        ({"vocabulary": {str(i): 1 for i in range(200)}}, 40010003),
    ],
)
def test_gateway_validates_start_parameters(payload: dict[str, Any], code: int) -> None:
    """Start parameters the gateway refuses come back as the right vendor code."""
    client = ClientProtocol(RECOGNIZER, "k", payload)
    with pytest.raises(GatewayReject) as info:
        GatewayProtocol().receive(client.start())
    assert info.value.code == code


def test_stop_while_stopping_and_state_errors() -> None:
    """A second stop is 40010005; a directive for another task is 40000002."""
    pair = Pair(TRANSCRIBER)
    pair.to_gateway(pair.client.start())
    pair.to_client(pair.gateway.started())
    first_stop = pair.client.stop()
    pair.to_gateway(first_stop)
    with pytest.raises(GatewayReject) as info:
        pair.to_gateway(first_stop)
    assert info.value.code == 40010005
    other = ClientProtocol(TRANSCRIBER, "k")
    other.state = State.STARTED
    with pytest.raises(GatewayReject) as info:
        pair.to_gateway(other.stop())
    assert info.value.code == 40000002


def test_gateway_cannot_send_out_of_order() -> None:
    """Building an event the gateway's state does not allow is a local error."""
    gateway = GatewayProtocol()
    with pytest.raises(LocalProtocolError):
        gateway.completed()


def test_client_rejects_events_for_another_task() -> None:
    """An event naming another task or service is a remote protocol error."""
    pair = Pair(RECOGNIZER)
    pair.to_gateway(pair.client.start())
    frame = json.loads(pair.gateway.started())
    frame["header"]["task_id"] = "someone-else"
    with pytest.raises(RemoteProtocolError):
        pair.client.receive(json.dumps(frame))
    assert pair.client.state is State.ERROR


def _frame(client: ClientProtocol, name: str, payload: dict[str, Any], **header: Any) -> str:
    head = {"namespace": client.namespace, "name": name, "task_id": client.task_id}
    head.update(header)
    return json.dumps({"header": head, "payload": payload})


@pytest.mark.parametrize("header", [{}, {"status": 20000000}])
def test_task_failed_without_a_failing_status_is_a_protocol_error(header: dict[str, Any]) -> None:
    """TaskFailed with no status, or with the success code, is a remote protocol error, never
    a Failed event (an NlsError) carrying 20000000."""
    client = ClientProtocol(RECOGNIZER, "k")
    client.start()
    with pytest.raises(RemoteProtocolError, match="without a failing status"):
        client.receive(_frame(client, "TaskFailed", {}, status_text="oops", **header))
    assert client.state is State.ERROR


@pytest.mark.parametrize("namespace", [RECOGNIZER, "Default"])
def test_task_failed_for_another_task_is_a_protocol_error(namespace: str) -> None:
    """A TaskFailed naming another task is rejected like any other event of another task."""
    client = ClientProtocol(RECOGNIZER, "k")
    client.start()
    frame = _frame(client, "TaskFailed", {}, namespace=namespace, status=40000005, task_id="f" * 32)
    with pytest.raises(RemoteProtocolError, match="another task"):
        client.receive(frame)
    assert client.state is State.ERROR


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("SentenceBegin", {"index": 1, "time": -5}),
        ("SentenceBegin", {"index": -1, "time": 5}),
        ("TranscriptionResultChanged", {"index": 1, "time": -1, "result": "x"}),
        ("SentenceEnd", {"index": 1, "time": 100, "begin_time": -10, "result": "x"}),
        ("SentenceEnd", {"index": 1, "time": 100, "begin_time": 500, "result": "x"}),
        (
            "SentenceEnd",
            {
                "index": 1,
                "time": 900,
                "begin_time": 100,
                "result": "x",
                "words": [{"text": "x", "startTime": 300, "endTime": 200}],
            },
        ),
        (
            "SentenceEnd",
            {
                "index": 1,
                "time": 900,
                "begin_time": 100,
                "result": "x",
                "words": [{"text": "x", "startTime": -3, "endTime": 200}],
            },
        ),
    ],
)
def test_negative_or_inverted_times_are_protocol_errors(name: str, payload: dict[str, Any]) -> None:
    """Negative times and indexes, and a sentence or word that ends before it begins, are
    remote protocol errors, not delivered as they are."""
    client = ClientProtocol(TRANSCRIBER, "k")
    client.start()
    client.receive(_frame(client, "TranscriptionStarted", {"session_id": "s"}))
    with pytest.raises(RemoteProtocolError):
        client.receive(_frame(client, name, payload))
    assert client.state is State.ERROR


def test_negative_duration_is_a_protocol_error() -> None:
    """RecognitionCompleted with a negative duration is a remote protocol error."""
    client = ClientProtocol(RECOGNIZER, "k")
    client.start()
    client.receive(_frame(client, "RecognitionStarted", {}))
    with pytest.raises(RemoteProtocolError, match="negative"):
        client.receive(_frame(client, "RecognitionCompleted", {"result": "x", "duration": -1}))


def test_parsers_reject_malformed_frames() -> None:
    """Bad JSON, a missing header, wrong types and binary frames raise RemoteProtocolError."""
    bad: list[str | bytes] = [
        "",
        "[]",
        "{}",
        '{"header": 1}',
        '{"header": {"namespace": 1, "name": "x", "task_id": "t"}}',
        '{"header": {"namespace": "SpeechRecognizer", "name": "x", "task_id": "t"}, "payload": []}',
        '{"header": {"namespace": "SpeechRecognizer", "name": "x", "status": "ok"}}',
        b"\x00",
    ]
    for frame in bad:
        with pytest.raises(RemoteProtocolError):
            parse_event(frame)
        with pytest.raises(RemoteProtocolError):
            parse_directive(frame)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)
HEADER_KEYS = st.sampled_from(
    ["namespace", "name", "status", "status_text", "task_id", "message_id", "appkey"]
)
NAMES = st.sampled_from(
    [
        "RecognitionStarted",
        "RecognitionResultChanged",
        "RecognitionCompleted",
        "TranscriptionStarted",
        "SentenceBegin",
        "TranscriptionResultChanged",
        "SentenceEnd",
        "TranscriptionCompleted",
        "TaskFailed",
        "StartRecognition",
        "StopTranscription",
        "ControlTranscriber",
    ]
)
PLAUSIBLE = st.fixed_dictionaries(
    {
        "header": st.dictionaries(HEADER_KEYS, JSON | NAMES, max_size=7),
        "payload": st.dictionaries(
            st.sampled_from(["index", "time", "begin_time", "result", "words", "status"]), JSON
        )
        | JSON,
    }
).map(json.dumps)
FRAMES = st.lists(st.binary(max_size=20) | st.text(max_size=40) | PLAUSIBLE, max_size=8)


@settings(max_examples=300, deadline=None)
@given(frames=FRAMES, namespace=st.sampled_from([RECOGNIZER, TRANSCRIBER]))
def test_client_accepts_only_events_or_remote_errors(
    frames: list[str | bytes], namespace: str
) -> None:
    """Whatever the gateway sends, the client yields an event or raises RemoteProtocolError."""
    client = ClientProtocol(namespace, "k")
    client.start()
    for frame in frames:
        try:
            event = client.receive(frame)
        except RemoteProtocolError:
            break
        assert isinstance(
            event, Started | SentenceBegan | ResultChanged | SentenceEnded | Completed | Failed
        )


@settings(max_examples=300, deadline=None)
@given(frames=FRAMES)
def test_gateway_accepts_only_directives_or_rejections(frames: list[str | bytes]) -> None:
    """Whatever a client sends, the gateway yields a directive/audio or a GatewayReject."""
    gateway = GatewayProtocol()
    rejected: GatewayReject | None = None
    for frame in frames:
        try:
            gateway.receive(frame)
        except GatewayReject as reject:
            rejected = reject
            break
    if rejected is not None:
        assert 40000000 <= rejected.code < 50000000

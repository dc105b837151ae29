"""The official Python SDK (``nls``) against the simulator: its handshake quirk and its flows.

``nls`` runs websocket-client in threads and reports through callbacks, so every wait here is on
a ``threading.Event`` set by a callback.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.datastructures import Headers

from asr_resilience.simulator import Account, Fault, SimulatorThread
from asr_resilience.simulator._gateway import tolerate_repeated_headers

from .audio_fixtures import frames, speech_like

nls = pytest.importorskip("nls")

SPEECH = speech_like([(1200, 440), (800, 660)])
WAIT = 5.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[SimulatorThread]:
    accounts = [Account(), Account(name="one", appkeys=("one-key",), quota=1)]
    with SimulatorThread(accounts=accounts) as simulator:
        yield simulator


class Calls:
    """What the SDK's callbacks saw; ``done`` is set by completed, error or close."""

    def __init__(self) -> None:
        self.messages: dict[str, list[Any]] = {}
        self.done = threading.Event()
        self.closed = threading.Event()

    def record(self, name: str) -> Any:
        def callback(*args: Any) -> None:
            self.messages.setdefault(name, []).append(json.loads(args[0]) if args else None)
            if name in ("on_completed", "on_error"):
                self.done.set()
            if name == "on_close":
                self.closed.set()
                self.done.set()

        return callback

    def first(self, name: str) -> Any:
        return self.messages[name][0]


def recognizer(gateway: SimulatorThread, calls: Calls, token: str | None = None) -> Any:
    return nls.NlsSpeechRecognizer(
        url=gateway.gateway_url,
        token=token or gateway.token(),
        appkey=gateway.appkey,
        on_start=calls.record("on_start"),
        on_result_changed=calls.record("on_result_changed"),
        on_completed=calls.record("on_completed"),
        on_error=calls.record("on_error"),
        on_close=calls.record("on_close"),
    )


def test_repeated_handshake_headers_keep_the_first() -> None:
    """The SDK's duplicated Sec-WebSocket-Key/Version are reduced to the first of each."""
    headers = Headers(
        [
            ("Sec-WebSocket-Key", "generated=="),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ("Sec-WebSocket-Version", "13"),
            ("X-NLS-Token", "t"),
        ]
    )
    tolerate_repeated_headers(headers)
    assert headers["Sec-WebSocket-Key"] == "generated=="
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["X-NLS-Token"] == "t"


def test_official_recognizer_end_to_end(gateway: SimulatorThread) -> None:
    """nls.NlsSpeechRecognizer connects (duplicated headers and all), streams, and completes."""
    calls = Calls()
    sdk = recognizer(gateway, calls)
    sdk.start(aformat="pcm", sample_rate=16000, enable_intermediate_result=True)
    for chunk in frames(SPEECH):
        sdk.send_audio(chunk)
    sdk.stop()
    assert calls.done.wait(WAIT)
    assert "on_error" not in calls.messages
    assert calls.first("on_start")["header"]["name"] == "RecognitionStarted"
    completed = calls.first("on_completed")
    assert completed["header"]["status"] == 20000000
    assert completed["payload"]["duration"] == 4000
    assert (
        completed["payload"]["result"]
        == calls.messages["on_result_changed"][-1]["payload"]["result"]
    )
    assert calls.closed.wait(WAIT)


def test_official_transcriber_end_to_end(gateway: SimulatorThread) -> None:
    """nls.NlsSpeechTranscriber gets sentence begin/end callbacks, then completed."""
    calls = Calls()
    sdk = nls.NlsSpeechTranscriber(
        url=gateway.gateway_url,
        token=gateway.token(),
        appkey=gateway.appkey,
        on_start=calls.record("on_start"),
        on_sentence_begin=calls.record("on_sentence_begin"),
        on_sentence_end=calls.record("on_sentence_end"),
        on_completed=calls.record("on_completed"),
        on_error=calls.record("on_error"),
        on_close=calls.record("on_close"),
    )
    sdk.start(aformat="pcm", sample_rate=16000)
    for chunk in frames(SPEECH):
        sdk.send_audio(chunk)
    sdk.stop()
    assert calls.done.wait(WAIT)
    ends = [m["payload"] for m in calls.messages["on_sentence_end"]]
    assert [(e["index"], e["begin_time"], e["time"]) for e in ends] == [
        (1, 0, 1200),
        (2, 2200, 3000),
    ]
    assert len(calls.messages["on_sentence_begin"]) == 2
    assert calls.first("on_completed")["header"]["name"] == "TranscriptionCompleted"


# The SDK's websocket-client never closes its socket when the gateway closes first (it skips
# shutdown() once `connected` is False); the socket is only freed by the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_sdk_sees_task_failed_and_can_retry(gateway: SimulatorThread) -> None:
    """An injected TaskFailed reaches on_error; the slot is free for an immediate retry."""
    token = gateway.token("one")
    gateway.set_scenario([Fault("code", "start", code=50000000, times=1)])
    calls = Calls()
    sdk = nls.NlsSpeechRecognizer(
        url=gateway.gateway_url,
        token=token,
        appkey="one-key",
        on_error=calls.record("on_error"),
        on_close=calls.record("on_close"),
    )
    sdk.start()
    assert calls.closed.wait(WAIT)
    error = calls.first("on_error")
    assert (error["header"]["status"], error["header"]["status_text"]) == (
        50000000,
        "GRPC_ERROR:Grpc error!",
    )
    retry = Calls()
    again = nls.NlsSpeechRecognizer(
        url=gateway.gateway_url,
        token=token,
        appkey="one-key",
        on_start=retry.record("on_start"),
        on_error=retry.record("on_error"),
        on_completed=retry.record("on_completed"),
    )
    again.start()
    for chunk in frames(SPEECH):
        again.send_audio(chunk)
    again.stop()
    assert retry.done.wait(WAIT)
    assert "on_error" not in retry.messages, retry.messages
    del sdk, again
    _join_sdk_threads()


def _join_sdk_threads() -> None:
    """Let the SDK's reader threads end and its leaked sockets go, inside the calling test."""
    for thread in threading.enumerate():
        if "__run" in thread.name:
            thread.join(WAIT)
    gc.collect()


def test_official_sdk_handshake_403_is_only_a_close(gateway: SimulatorThread) -> None:
    """An unknown token: 403 at the handshake, which the SDK reports as on_close alone."""
    calls = Calls()
    recognizer(gateway, calls, token="unknown-token").start(timeout=2)
    assert calls.closed.wait(WAIT)
    assert "on_start" not in calls.messages
    assert "on_error" not in calls.messages

"""The official SDK (``nls``) under a policy: SdkRecognizer / SdkTranscriber against the simulator.

Every call runs the real SDK (threads, websocket-client) over loopback against
``SimulatorThread``; waits are on events the SDK's callbacks or the simulator set, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import structlog.testing
from websockets.sync.client import ClientConnection, connect

import asr_resilience as ar
from asr_resilience.observe import add_hook
from asr_resilience.observe._events import Event
from asr_resilience.protocol import RECOGNIZER, ClientProtocol, Started
from asr_resilience.sdk import (
    SdkLogTap,
    SdkParameterError,
    SdkRecognizer,
    SdkTranscriber,
    _nls,
    install_log_tap,
)
from asr_resilience.simulator import Account, Fault, SimulatorThread
from asr_resilience.testing import no_wait

from .audio_fixtures import speech_like

try:
    _nls.load()  # imports nls with its compile-time SyntaxWarning filtered
except ImportError:
    pytest.skip("the official SDK (nls) is not installed", allow_module_level=True)

SPEECH = speech_like([(1200, 440), (800, 660)])
WAIT = 5.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[SimulatorThread]:
    accounts = [
        Account(),
        Account(name="one", appkeys=("one-key",), quota=1),
        Account(name="expired", appkeys=("expired-key",), kind="trial", trial_expired=True),
    ]
    with SimulatorThread(accounts=accounts) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _no_faults(gateway: SimulatorThread) -> Iterator[None]:
    """Each test sets its own faults; none outlive it."""
    gateway.set_scenario([])
    yield
    gateway.set_scenario([])


class Provider:
    """A token provider for the simulator: hands out what ``make`` says, counts its calls."""

    def __init__(self, make: Callable[[int], str]) -> None:
        self.make = make
        self.calls = 0
        self.issued: list[str] = []

    def __call__(self) -> ar.Token:
        self.calls += 1
        value = self.make(self.calls)
        self.issued.append(value)
        return ar.Token(value)


def unknown_token() -> str:
    """A token the simulator never issued: refused with 403 at the handshake."""
    return "unknown-" + secrets.token_hex(12)


def expected_text(gateway: SimulatorThread, audio: bytes) -> str:
    """What the project's own Recognizer gets for ``audio`` from the same simulator."""
    recognizer = ar.Recognizer(gateway.gateway_url, gateway.appkey, gateway.token())
    return asyncio.run(recognizer.recognize(audio)).text


def rejected(gateway: SimulatorThread) -> int:
    return int(gateway.stats.snapshot()["handshakes_rejected"])


# -- success ---------------------------------------------------------------------------------------


def test_recognizer_matches_the_projects_recognizer(gateway: SimulatorThread) -> None:
    """SdkRecognizer returns the text, task id and duration the gateway gave, in one attempt."""
    result = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token()).recognize(SPEECH)
    assert result.text == expected_text(gateway, SPEECH)
    assert result.text
    assert (result.duration, result.attempts) == (4000, 1)
    assert len(result.task_id) == 32


def test_transcriber_matches_the_projects_transcriber(gateway: SimulatorThread) -> None:
    """SdkTranscriber's sentence end events equal asr_resilience.Transcriber's for the audio."""
    sdk = SdkTranscriber(gateway.gateway_url, gateway.appkey, gateway.token())
    events = sdk.transcribe(SPEECH, realtime=False)
    own = ar.Transcriber(gateway.gateway_url, gateway.appkey, gateway.token())
    expected = asyncio.run(own.transcribe_file(SPEECH, realtime=False))
    assert events == expected
    assert [(e.index, e.begin_time, e.end_time) for e in events] == [(1, 0, 1200), (2, 2200, 3000)]


def test_concurrent_calls_share_one_adapter(gateway: SimulatorThread) -> None:
    """Eight threads calling one SdkRecognizer all succeed, each with its own task."""
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token())
    text = expected_text(gateway, SPEECH)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: sdk.recognize(SPEECH), range(8)))
    assert [r.text for r in results] == [text] * 8
    assert len({r.task_id for r in results}) == 8


# -- what the policy makes of each failure -------------------------------------------------------


def test_bad_wav_header_is_fix_client_after_one_attempt(gateway: SimulatorThread) -> None:
    """TaskFailed 40000009 (garbage sent as WAV) raises FixClientError without a retry."""
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token())
    with no_wait(), pytest.raises(ar.FixClientError) as caught:
        sdk.recognize(b"this is not a RIFF header at all" * 200, aformat="wav")
    assert caught.value.code == 40000009
    assert len(caught.value.attempts) == 1
    assert isinstance(caught.value.__cause__, ar.NlsError)


def test_trial_expired_fails_fast(gateway: SimulatorThread) -> None:
    """TaskFailed 40000010 (the trial is over) raises FailFastError at once."""
    sdk = SdkRecognizer(gateway.gateway_url, "expired-key", gateway.token("expired"))
    with no_wait(), pytest.raises(ar.FailFastError) as caught:
        sdk.recognize(SPEECH)
    assert caught.value.code == 40000010
    assert len(caught.value.attempts) == 1


def test_revoked_token_is_refreshed(gateway: SimulatorThread) -> None:
    """40000001 after the start directive: the token is refreshed once and the call succeeds."""

    def make(call: int) -> str:
        token = gateway.token()
        if call == 1:
            gateway.store.revoke(token)
        return token

    provider = Provider(make)
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider))
    with no_wait():
        result = sdk.recognize(SPEECH)
    assert provider.calls == 2
    assert result.attempts == 2


def test_handshake_403_refreshes_the_token(gateway: SimulatorThread) -> None:
    """An unknown token (HTTP 403 at the handshake, seen only in the SDK's log) is refreshed."""
    provider = Provider(lambda call: unknown_token() if call == 1 else gateway.token())
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider))
    before = rejected(gateway)
    with no_wait(), structlog.testing.capture_logs() as events:
        result = sdk.recognize(SPEECH)
    assert (provider.calls, result.attempts, rejected(gateway) - before) == (2, 2, 1)
    names = [(e["event"], e.get("code")) for e in events]
    assert ("asr_resilience.token_invalidated", 403) in names
    assert not [e for e in events if e["event"] == "asr_resilience.retry_scheduled"]


def test_refused_fresh_token_is_a_credentials_error(gateway: SimulatorThread) -> None:
    """403 for the fresh token too: TokenRefreshError after two handshakes, no transport retries."""
    provider = Provider(lambda call: unknown_token())
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider))
    before = rejected(gateway)
    with no_wait(), pytest.raises(ar.TokenRefreshError) as caught:
        sdk.recognize(SPEECH)
    assert (provider.calls, rejected(gateway) - before) == (2, 2)
    assert [a.code for a in caught.value.attempts] == [403, 403]


def test_handshake_503_is_retried_with_the_same_token(gateway: SimulatorThread) -> None:
    """HTTP 503 at the handshake (from the SDK's log) is retried, not taken for a bad token."""
    gateway.set_scenario([Fault("code", "handshake", code=503, times=1)])
    provider = Provider(lambda call: gateway.token())
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider))
    with no_wait():
        result = sdk.recognize(SPEECH)
    assert (provider.calls, result.attempts) == (1, 2)


# The SDK's vendored websocket-client (1.2.1) does not close a socket whose connect() was
# refused; collected here, inside the test, its ResourceWarning is the SDK's and expected.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_refused_connection_is_retried_not_refreshed() -> None:
    """A refused connection (seen only in the SDK's log) is retried as transport, no refresh."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    provider = Provider(lambda call: "some-token-value")
    url = f"ws://127.0.0.1:{port}/ws/v1"
    sdk = SdkRecognizer(url, "appkey", ar.TokenManager(provider))
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as caught:
        sdk.recognize(SPEECH)
    gc.collect()
    assert provider.calls == 1
    assert {a.transport for a in caught.value.attempts} == {"refused"}


def test_without_the_sdk_log_a_close_refreshes_once(gateway: SimulatorThread) -> None:
    """With the SDK's log silenced, a close before start refreshes once, then is transport."""
    provider = Provider(lambda call: unknown_token())
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider))
    logging.disable(logging.DEBUG)
    try:
        with no_wait(), pytest.raises(ar.RetryExhaustedError) as caught:
            sdk.recognize(SPEECH)
    finally:
        logging.disable(logging.NOTSET)
    assert provider.calls == 2
    attempts = caught.value.attempts
    assert attempts[0].code == 403
    assert {a.transport for a in attempts[1:]} == {"abnormal_close"}


def test_drop_during_audio_is_retried(gateway: SimulatorThread) -> None:
    """The gateway dropping the connection mid-audio (only an on_close) leads to a new attempt."""
    gateway.set_scenario([Fault("close", "audio", times=1)])
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token())
    with no_wait(), structlog.testing.capture_logs() as events:
        result = sdk.recognize(SPEECH)
    assert result.attempts == 2
    assert result.text == expected_text(gateway, SPEECH)
    retries = [e for e in events if e["event"] == "asr_resilience.retry_scheduled"]
    assert [e["transport"] for e in retries] == ["abnormal_close"]


def test_transcriber_drop_resumes_from_the_last_sentence(gateway: SimulatorThread) -> None:
    """A drop mid-stream (inside the second sentence): the next task starts at the end of the
    first sentence, and every sentence comes once, on the file's times."""
    gateway.set_scenario([Fault("close", "audio", after_ms=2600, times=1)])
    sdk = SdkTranscriber(gateway.gateway_url, gateway.appkey, gateway.token())
    heard_before = gateway.stats.audio_bytes
    with no_wait():
        events = sdk.transcribe(SPEECH, realtime=False)
    heard = gateway.stats.audio_bytes - heard_before
    assert [(e.index, e.begin_time, e.end_time) for e in events] == [(1, 0, 1200), (2, 2200, 3000)]
    assert events[1].words[0].start_time == 2200
    # The first task heard up to the cut (2.6 s and a frame); the second from 1.2 s on, not
    # the whole audio again.
    resumed_from = 1200 * 32
    assert heard <= 2600 * 32 + 3200 + len(SPEECH) - resumed_from


class SlotHolder:
    """A raw connection that started a task on account "one" (quota 1), holding its slot."""

    def __init__(self, gateway: SimulatorThread) -> None:
        token = gateway.token("one")
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                gateway.gateway_url, additional_headers={"X-NLS-Token": token}, open_timeout=WAIT
            )
        )
        protocol = ClientProtocol(RECOGNIZER, "one-key", {"format": "pcm", "sample_rate": 16000})
        self.ws.send(protocol.start())
        assert isinstance(protocol.receive(self.ws.recv(WAIT)), Started)

    def close(self) -> None:
        self._stack.close()


def test_throttled_start_is_retried_once_the_slot_frees(
    gateway: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40000005 while another connection holds the only slot; released, the retry succeeds."""
    released = threading.Event()
    release_slot = gateway.store.release_slot

    def watching(account: Account) -> None:
        release_slot(account)
        if account.name == "one":
            released.set()

    monkeypatch.setattr(gateway.store, "release_slot", watching)
    holder = SlotHolder(gateway)

    def free_the_slot(event: Event) -> None:
        if event.name == "asr_resilience.retry_scheduled" and not released.is_set():
            holder.close()
            assert released.wait(WAIT)

    remove = add_hook(free_the_slot)
    try:
        sdk = SdkRecognizer(gateway.gateway_url, "one-key", gateway.token("one"))
        with no_wait():
            result = sdk.recognize(SPEECH)
    finally:
        remove()
        holder.close()
    assert result.attempts == 2
    assert released.is_set()


def test_throttled_start_exhausts_the_throttle_rule(gateway: SimulatorThread) -> None:
    """40000005 on every attempt (the slot stays held): RetryExhaustedError after 6 attempts."""
    holder = SlotHolder(gateway)
    try:
        sdk = SdkRecognizer(gateway.gateway_url, "one-key", gateway.token("one"))
        with no_wait(), pytest.raises(ar.RetryExhaustedError) as caught:
            sdk.recognize(SPEECH)
    finally:
        holder.close()
    assert [a.code for a in caught.value.attempts] == [40000005] * 6


def test_per_call_max_attempts_caps_the_throttle_rule(gateway: SimulatorThread) -> None:
    """recognize(max_attempts=2) and transcribe(max_attempts=2) give up after two attempts."""
    holder = SlotHolder(gateway)
    try:
        sdk = SdkRecognizer(gateway.gateway_url, "one-key", gateway.token("one"))
        transcriber = SdkTranscriber(gateway.gateway_url, "one-key", gateway.token("one"))
        with no_wait(), pytest.raises(ar.RetryExhaustedError) as caught:
            sdk.recognize(SPEECH, max_attempts=2)
        with no_wait(), pytest.raises(ar.RetryExhaustedError) as also:
            transcriber.transcribe(SPEECH, realtime=False, max_attempts=2)
    finally:
        holder.close()
    assert [a.code for a in caught.value.attempts] == [40000005] * 2
    assert [a.code for a in also.value.attempts] == [40000005] * 2


def test_per_call_deadline_is_checked_and_bounds_the_sdk(gateway: SimulatorThread) -> None:
    """A bad deadline is a ValueError naming it; deadline=0.3 ends a stalled start early."""
    sdk = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token(), scope="sdk-dl")
    with pytest.raises(ValueError, match="deadline"):
        sdk.recognize(SPEECH, deadline=-1)
    gateway.set_scenario([Fault("stall", "start")])
    with pytest.raises(ar.DeadlineExceededError):
        sdk.recognize(SPEECH, deadline=0.3)


# -- local mistakes ------------------------------------------------------------------------------


def test_sdk_parameter_error_is_not_retried(gateway: SimulatorThread) -> None:
    """A format the SDK refuses raises SdkParameterError (a ValueError) before connecting."""
    before = gateway.stats.snapshot()["connections"]
    recognizer = SdkRecognizer(gateway.gateway_url, gateway.appkey, gateway.token())
    transcriber = SdkTranscriber(gateway.gateway_url, gateway.appkey, gateway.token())
    with pytest.raises(SdkParameterError) as refused:
        recognizer.recognize(SPEECH, aformat="flac")
    with pytest.raises(SdkParameterError) as also_refused:
        transcriber.transcribe(SPEECH, aformat="flac")
    for caught in (refused, also_refused):
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, ar.FixClientError)
    assert gateway.stats.snapshot()["connections"] == before


def test_unknown_start_kwargs_are_refused_up_front(gateway: SimulatorThread) -> None:
    """start_kwargs the SDK's start() does not take (or the adapter sets) fail construction."""
    with pytest.raises(ValueError, match="enable_magic"):
        SdkRecognizer(gateway.gateway_url, gateway.appkey, "t", start_kwargs={"enable_magic": 1})
    with pytest.raises(ValueError, match="timeout"):
        SdkRecognizer(gateway.gateway_url, gateway.appkey, "t", start_kwargs={"timeout": 3})


# -- tokens stay out of logs, sockets are closed ------------------------------------------------


def test_no_token_in_events_or_log_records(
    gateway: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither structlog events nor any client-side log record (the SDK's too) has a token."""
    caplog.set_level(logging.DEBUG)
    revoked = Provider(lambda call: gateway.token())
    first = unknown_token()
    provider = Provider(lambda call: first if call == 1 else gateway.token())
    with no_wait(), structlog.testing.capture_logs() as events:
        SdkRecognizer(gateway.gateway_url, gateway.appkey, ar.TokenManager(provider)).recognize(
            SPEECH
        )
        manager = ar.TokenManager(revoked)
        gateway.store.revoke(manager.get_sync())
        SdkRecognizer(gateway.gateway_url, gateway.appkey, manager).recognize(SPEECH)
        logging.getLogger("websocket").debug("X-NLS-Token: %s", first)  # the SDK's header dump
    tokens = provider.issued + revoked.issued
    assert len(tokens) == 4
    # The simulator's websockets server logs request headers at DEBUG: the gateway's side.
    client_side = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    texts = [repr(e) for e in events] + [r.getMessage() for r in client_side]
    assert events
    for token in tokens:
        assert not [text for text in texts if token in text], token
    own = [r for r in caplog.records if r.name.startswith("asr_resilience")]
    for token in tokens:
        assert not [r for r in own if token in r.getMessage()]


def test_quiet_tap_drops_sdk_debug_but_notes_the_handshake() -> None:
    """The tap notes a handshake status for the logging thread only and lets no DEBUG out."""
    tap = SdkLogTap(capture_from="test-sdk-tap", quiet=True)
    tap.attach(["test-sdk-tap"])
    logger = logging.getLogger("test-sdk-tap")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        worker = threading.Thread(
            target=logger.debug, args=("core_on_error:Handshake status 403 Forbidden",)
        )
        worker.start()
        worker.join()
        logger.warning("kept")
        assert tap.take() is None  # this thread logged nothing of the kind
        note = tap.take(worker)
        assert note is not None
        assert (note.handshake_status, note.error) == (403, "Handshake status 403 Forbidden")
        assert tap.take(worker) is None
        assert [r.getMessage() for r in seen] == ["kept"]
    finally:
        logger.removeHandler(handler)
        tap.detach()


def test_loud_tap_scrubs_tokens() -> None:
    """With quiet off, SDK records pass at the application's level, tokens scrubbed."""
    tap = SdkLogTap(capture_from="test-sdk-loud", quiet=False)
    logger = logging.getLogger("test-sdk-loud")
    logger.setLevel(logging.DEBUG)
    tap.attach(["test-sdk-loud"])
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.debug("X-NLS-Token: %s", "abcdef123456")
        assert seen == ["X-NLS-Token: <redacted>"]
    finally:
        logger.removeHandler(handler)
        tap.detach()


def test_process_tap_is_shared_and_sees_sdk_debug() -> None:
    """install_log_tap returns one tap, with the nls logger enabled for its DEBUG record."""
    tap = install_log_tap()
    assert install_log_tap() is tap
    assert logging.getLogger("nls").isEnabledFor(logging.DEBUG)
    logging.getLogger("nls").setLevel(logging.ERROR)  # the application changes its mind
    install_log_tap()
    assert logging.getLogger("nls").isEnabledFor(logging.DEBUG)
    logging.getLogger("nls").setLevel(logging.NOTSET)  # as the other tests found it
    install_log_tap()


def test_failed_attempts_leave_no_socket_or_thread(gateway: SimulatorThread) -> None:
    """After TaskFailed (the gateway closes first) the SDK's socket is closed, its thread done."""
    before = {t for t in threading.enumerate() if "__run" in t.name}
    sdk = SdkRecognizer(gateway.gateway_url, "expired-key", gateway.token("expired"))
    with no_wait(), pytest.raises(ar.FailFastError):
        sdk.recognize(SPEECH)
    assert not [t for t in threading.enumerate() if "__run" in t.name and t not in before]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]

"""Every row of the vendor's table end to end: the simulator answers it over a real socket, and
the project's clients under the default policy act as the table advises (30/30).

Each row names how the condition is produced (a client, or a misbehaving raw client inside a
``resilient`` function where only protocol misuse produces it), and what must follow: the typed
error with the row's code and action, or success after a refresh or a retry. Every row also
checks that the failure the client saw really is that seed row (``catalog().lookup``), that the
simulator answered with it as often as the client failed, and which decisions the policy logged.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

import asr_resilience as ar
from asr_resilience._catalog import CatalogEntry
from asr_resilience.clients import (
    Recognition,
    Recognizer,
    RestRecognizer,
    StreamEvent,
    Transcriber,
)
from asr_resilience.observe import Event, add_hook
from asr_resilience.protocol import RECOGNIZER, Directive, Started, new_id
from asr_resilience.simulator import Account, Fault, Simulator, SimulatorConfig
from asr_resilience.testing import no_wait
from asr_resilience.tokens import TokenManager

from .audio_fixtures import clicks, frames, silence, speech_like
from .simulator_client import RawTask, failure, open_ws, task

SPEECH = speech_like([(800, 440)], gap_ms=300)  # one sentence, 1.1 s
TEXT = "北京欢迎你"
POLICY = "default"
DECISIONS = (
    "asr_resilience.retry_scheduled",
    "asr_resilience.token_invalidated",
    "asr_resilience.gave_up",
)
THROTTLED_ACCOUNT = "small"


def accounts() -> list[Account]:
    """The simulated accounts every row may use (the first one is the default)."""
    return [
        Account(name="default", appkeys=("default-appkey",), access_key_id="LTAI-default"),
        Account(name="other", appkeys=("other-appkey",), access_key_id="LTAI-other"),
        Account(
            name=THROTTLED_ACCOUNT,
            appkeys=("small-appkey",),
            access_key_id="LTAI-small",
            quota=1,
        ),
        Account(
            name="expired",
            appkeys=("expired-appkey",),
            access_key_id="LTAI-expired",
            kind="trial",
            trial_expired=True,
        ),
        Account(
            name="unrouted",
            appkeys=("routed-appkey",),
            unrouted_appkeys=("unrouted-appkey",),
            access_key_id="LTAI-unrouted",
        ),
    ]


# -- the harness: a simulator, a counting token provider, and what the client saw ----------------


class SimProvider:
    """Issues tokens of one simulated account from ``sim.token()`` and counts its calls; the
    first token may be one the simulator never issued."""

    def __init__(self, sim: Simulator, account: str, first: str | None = None) -> None:
        self.sim = sim
        self.account = account
        self.first = first
        self.calls = 0
        self.issued: list[str] = []

    def __call__(self) -> str:
        self.calls += 1
        token = self.first if self.first is not None and self.calls == 1 else None
        token = token if token is not None else self.sim.token(self.account)
        self.issued.append(token)
        return token


@dataclass
class Harness:
    """What a row's driver works with."""

    sim: Simulator
    provider: SimProvider
    tokens: TokenManager
    appkey: str

    def recognizer(
        self, *, appkey: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Recognizer:
        """The WebSocket one-sentence client aimed at the simulator, under the default policy."""
        return Recognizer(
            self.sim.gateway_url,
            appkey or self.appkey,
            self.tokens,
            POLICY,
            params=params,
            start_timeout=5.0,
            stop_timeout=5.0,
            open_timeout=5.0,
        )

    def rest(
        self, *, url: str | None = None, params: Mapping[str, Any] | None = None
    ) -> RestRecognizer:
        """The REST one-sentence client aimed at the simulator, under the default policy."""
        return RestRecognizer(
            url or self.sim.rest_url, self.appkey, self.tokens, POLICY, params=params, timeout=5.0
        )


@dataclass
class Observed:
    """Every NlsError the resilient wrappers classified, and every event they logged."""

    errors: list[ar.NlsError] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def decisions(self) -> list[tuple[object, object]]:
        """(code, action) of each decision the policy logged, in order."""
        return [
            (event.fields.get("code"), event.fields.get("action"))
            for event in self.events
            if event.name in DECISIONS
        ]


@pytest.fixture
def observed() -> Iterator[Observed]:
    """Record NlsErrors (an extractor that only looks and declines) and events (a hook)."""
    seen = Observed()

    def spy(exc: ar.NlsError) -> ar.Failure | None:
        if not any(known is exc for known in seen.errors):
            seen.errors.append(exc)
        return None  # the built-in extraction decides

    ar.register_extractor(ar.NlsError, spy)
    remove = add_hook(seen.events.append)
    try:
        yield seen
    finally:
        remove()
        ar.unregister_extractor(ar.NlsError)


Driver = Callable[[Harness], Awaitable[object]]
Check = Callable[[Harness], None]


def no_check(h: Harness) -> None:
    """No row-specific assertion."""


@dataclass(frozen=True)
class Row:
    """One seed row: how to produce it, and what the client and default policy must do."""

    code: int
    message: str | None
    """The seed's status message (None: the general 40000000 row, which has none)."""
    id: str
    drive: Driver
    outcome: type[ar.ResilienceError] | None
    """The typed error the call raises; None: the call succeeds after a refresh or retry."""
    action: str
    """The default policy's action for the code."""
    attempts: int = 1
    """Attempts the call makes, the successful one included."""
    provider_calls: int = 1
    account: str = "default"
    appkey: str | None = None
    first_token: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    counted: bool = True
    """Whether ``sim.stats`` counts the answer (see ``answered``)."""
    check: Check = no_check

    @property
    def failures(self) -> int:
        """Attempts that failed with the row's code."""
        return self.attempts if self.outcome is not None else self.attempts - 1


def seed_entry(code: int, message: str | None) -> CatalogEntry:
    """The catalog's seed row for (code, seed message)."""
    found = [e for e in ar.catalog().seed_entries() if (e.code, e.message) == (code, message)]
    assert len(found) == 1, (code, message, found)
    return found[0]


def answered(sim: Simulator, code: int) -> int:
    """How often the simulator answered with ``code``: TaskFailed / REST error bodies, or (403)
    refused handshakes."""
    if code == 403:
        return sim.stats.handshakes_rejected
    return sim.stats.failed.get(code, 0)


# -- drivers ---------------------------------------------------------------------------------------


async def stream(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a live source (an async iterator): the Recognizer sends it as it is, without
    the checks it makes on whole files (WAV header, emptiness)."""
    for chunk in frames(data):
        yield chunk


def recognize(
    audio: bytes = SPEECH,
    *,
    streamed: bool = False,
    format: str | None = None,
    sample_rate: int | None = None,
    params: Mapping[str, Any] | None = None,
    appkey: str | None = None,
) -> Driver:
    """Recognizer.recognize(audio)."""

    async def drive(h: Harness) -> Recognition:
        recognizer = h.recognizer(appkey=appkey, params=params)
        source = stream(audio) if streamed else audio
        return await recognizer.recognize(source, format=format, sample_rate=sample_rate)

    return drive


def rest(*, path: str | None = None, params: Mapping[str, Any] | None = None) -> Driver:
    """RestRecognizer.recognize(SPEECH), to the endpoint or to another ``path`` on its host."""

    async def drive(h: Harness) -> Recognition:
        url = None
        if path is not None:
            url = h.sim.rest_url.replace("/stream/v1/asr", path)
        return await h.rest(url=url, params=params).recognize(SPEECH)

    return drive


async def spoiled_then_recognize(h: Harness, spoil: Callable[[Harness, str], None]) -> Recognition:
    """Take a token, spoil it in the simulator's store, then recognise."""
    spoil(h, await h.tokens.get())
    return await h.recognizer().recognize(SPEECH)


def expire_all(h: Harness, token: str) -> None:
    """Every token issued so far expires (as if a day had passed)."""
    h.sim.store.expire_all()


def revoke(h: Harness, token: str) -> None:
    """The held token is revoked."""
    assert h.sim.store.revoke(token) == 1


async def expired_token(h: Harness) -> Recognition:
    """The held token expires before the call."""
    return await spoiled_then_recognize(h, expire_all)


async def revoked_token(h: Harness) -> Recognition:
    """The held token is revoked before the call."""
    return await spoiled_then_recognize(h, revoke)


async def throttled(h: Harness) -> Recognition:
    """A raw connection holds the account's only slot; once the gateway has throttled the call
    and the policy has scheduled its retry, the account's quota grows (the seed's fix: buy a
    concurrency pack). Done in a hook the retry decision runs synchronously, so the retry meets
    free capacity however fast it comes (no_wait skips the backoff): no race, no polling."""
    account = h.sim.store.get(THROTTLED_ACCOUNT)
    holder_token = h.sim.token(THROTTLED_ACCOUNT)
    async with task(h.sim, RECOGNIZER, token=holder_token, appkey=h.appkey) as holder:
        assert isinstance(await holder.start(), Started)
        assert h.sim.store.slots_in_use(account) == 1

        def grow_quota(event: Event) -> None:
            if event.name == "asr_resilience.retry_scheduled" and event.fields["code"] == 40000005:
                account.quota = 2

        remove = add_hook(grow_quota)
        try:
            return await h.recognizer().recognize(SPEECH)
        finally:
            remove()


def transcribe_too_fast(h: Harness) -> Awaitable[object]:
    """A Transcriber sends 1.1 s of audio at once to a gateway that enforces real-time pacing."""

    @ar.resilient(POLICY, tokens=h.tokens)
    async def transcribe(*, token: str = "") -> None:
        async with Transcriber(h.sim.gateway_url, h.appkey, token, POLICY) as transcriber:
            for chunk in frames(SPEECH):
                await transcriber.send(chunk)
            await transcriber.finish()

    return transcribe()


def transcribe_then_stall(h: Harness) -> Awaitable[object]:
    """A Transcriber sends 200 ms of audio, then nothing (a microphone that hangs)."""

    @ar.resilient(POLICY, tokens=h.tokens)
    async def transcribe(*, token: str = "") -> list[StreamEvent]:
        async with Transcriber(h.sim.gateway_url, h.appkey, token, POLICY) as transcriber:
            await transcriber.send(silence(200))
            return [event async for event in transcriber]

    return transcribe()


Misbehaviour = Callable[[RawTask], Awaitable[None]]


def misbehaving(misbehave: Misbehaviour) -> Driver:
    """A resilient function whose raw client (websockets + ClientProtocol) misbehaves, then
    raises the TaskFailed it gets as NlsError."""

    async def drive(h: Harness) -> None:
        @ar.resilient(POLICY, tokens=h.tokens)
        async def call(*, token: str = "") -> NoReturn:
            ws = await open_ws(h.sim, token)
            try:
                await misbehave(RawTask(ws, RECOGNIZER, h.appkey))
                event = await failure(ws)
            finally:
                await ws.close()
            raise ar.NlsError(event.status, event.status_text, event.task_id)

        await call()

    return drive


async def audio_before_start(raw: RawTask) -> None:
    """Audio first: ClientProtocol would refuse, so the frame goes on the socket directly."""
    await raw.ws.send(bytes(3200))


async def unsupported_directive(raw: RawTask) -> None:
    """A directive SpeechRecognizer does not have."""
    directive = Directive(RECOGNIZER, "EnhanceRecognition", new_id(), new_id(), raw.client.appkey)
    await raw.ws.send(directive.to_json())


async def stop_twice(raw: RawTask) -> None:
    """A whole task, but StopRecognition twice: the second arrives while the gateway is still
    processing (``service_time``), i.e. while the task is stopping."""
    assert isinstance(await raw.start(), Started)
    await raw.send_audio(SPEECH)
    stop = raw.client.stop()
    await raw.send(stop)
    await raw.send(stop)


async def say_nothing(raw: RawTask) -> None:
    """Connect and send nothing at all."""


def large_wav_header() -> bytes:
    """A RIFF/WAVE file whose first chunk (an 8 KiB LIST) puts ``data`` past the 4 KiB limit."""
    listing = b"LIST" + struct.pack("<I", 8192) + bytes(8192)
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + listing + fmt + b"data" + struct.pack("<I", len(SPEECH)) + SPEECH
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- row-specific checks ---------------------------------------------------------------------------


def refreshed_once(h: Harness) -> None:
    """The refresh replaced the spoiled token with the second one the provider issued."""
    held = h.tokens.peek_token()
    assert held is not None
    assert len(h.provider.issued) == 2
    assert held.value == h.provider.issued[1] != h.provider.issued[0]


def handshake_refused_once(h: Harness) -> None:
    """Two handshakes: the unknown token's was refused, the fresh token's completed a task."""
    assert h.sim.stats.connections == 2
    assert h.sim.stats.handshakes_rejected == 1
    assert h.sim.stats.sessions_completed == 1


def throttled_once(h: Harness) -> None:
    """The gateway refused one start for quota, then ran the call beside the holder."""
    stats = h.sim.stats
    assert stats.throttled == 1
    assert stats.max_concurrent[THROTTLED_ACCOUNT] == 2
    assert stats.sessions_completed == 1


def injected_once(h: Harness) -> None:
    """The fault fired on the first session only; the second completed."""
    assert h.sim.scenario.fired == (1,)
    assert h.sim.stats.sessions_completed == 1


# -- the rows, in the seed's order ---------------------------------------------------------------

FIX, FAIL, RETRY, REFRESH = "fix-client", "fail-fast", "retry", "refresh-token"
VOCABULARY_200 = {f"热词{i}": 2 for i in range(200)}

ROWS: list[Row] = [
    # 通用错误码 (general table)
    Row(
        40000000,
        None,
        "40000000-general-too-fast",
        transcribe_too_fast,
        ar.FixClientError,
        FIX,
        config={"pacing": 1.0, "pacing_grace_ms": 200},
    ),
    Row(
        40000001,
        "The token 'xxx' has expired",
        "40000001-expired",
        expired_token,
        None,
        REFRESH,
        attempts=2,
        provider_calls=2,
        check=refreshed_once,
    ),
    Row(
        40000001,
        "The token 'xxx' is invalid",
        "40000001-invalid",
        revoked_token,
        None,
        REFRESH,
        attempts=2,
        provider_calls=2,
        check=refreshed_once,
    ),
    Row(
        40000002,
        "Gateway:MESSAGE_INVALID:Can't process message in state'FAILED'!",
        "40000002-audio-before-start",
        misbehaving(audio_before_start),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000003,
        "PARAMETER_INVALID",
        "40000003-parameter-invalid",
        recognize(params={"enable_intermediate_result": "yes"}),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000003,
        "Failed to decode url params",
        "40000003-rest-url-params",
        rest(params={"sample_rate": "16k"}),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000005,
        "Gateway:TOO_MANY_REQUESTS:Too many requests!",
        "40000005-throttled",
        throttled,
        None,
        RETRY,
        attempts=2,
        account=THROTTLED_ACCOUNT,
        check=throttled_once,
    ),
    Row(
        40000009,
        "Invalid wav header!",
        "40000009-invalid-wav",
        recognize(b"NOT A RIFF/WAVE FILE AT ALL" * 64, streamed=True, format="wav"),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000009,
        "Too large wav header!",
        "40000009-large-wav",
        recognize(large_wav_header(), streamed=True, format="wav"),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000010,
        "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!",
        "40000010-trial-expired",
        recognize(),
        ar.FailFastError,
        FAIL,
        account="expired",
    ),
    Row(
        40010001,
        "Gateway:NAMESPACE_NOT_FOUND:RESTful url path illegal",
        "40010001-rest-path",
        rest(path="/stream/v1/FlashRecognizer"),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40010003,
        "Gateway:DIRECTIVE_INVALID:[xxx]",
        "40010003-directive-invalid",
        recognize(params={"vocabulary": ["北京", "上海"]}),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40010004,
        "Gateway:CLIENT_DISCONNECT:Client disconnected before task finished!",
        "40010004-client-disconnect",
        recognize(),
        ar.FixClientError,
        FIX,
        # A gateway-side log code a client never receives from the real service: injected.
        faults=(Fault("code", "start", code=40010004),),
    ),
    Row(
        40010005,
        "Gateway:TASK_STATE_ERROR:Got stop directive while task is stopping!",
        "40010005-stop-twice",
        misbehaving(stop_twice),
        ar.FixClientError,
        FIX,
        config={"service_time": 2.0},
    ),
    Row(
        40020105,
        "Meta:APPKEY_NOT_EXIST:Appkey not exist!",
        "40020105-appkey-not-exist",
        recognize(),
        ar.FailFastError,
        FAIL,
        appkey="no-such-appkey",
    ),
    Row(
        40020106,
        "Meta:APPKEY_UID_MISMATCH:Appkey and user mismatch!",
        "40020106-appkey-of-another-account",
        recognize(),
        ar.FailFastError,
        FAIL,
        appkey="other-appkey",
    ),
    Row(
        403,
        "Forbidden",
        "403-unknown-token",
        recognize(),
        None,
        REFRESH,
        attempts=2,
        provider_calls=2,
        first_token="a-token-this-gateway-never-issued",
        check=handshake_refused_once,
    ),
    Row(
        41000003,
        "MetaInfo doesn't have end point info",
        "41000003-no-route",
        recognize(),
        ar.FailFastError,
        FAIL,
        account="unrouted",
        appkey="unrouted-appkey",
    ),
    Row(
        41010101,
        "UNSUPPORTED_SAMPLE_RATE",
        "41010101-sample-rate",
        recognize(sample_rate=44100),
        ar.FixClientError,
        FIX,
    ),
    Row(
        41040201,
        "Realtime:GET_CLIENT_DATA_TIMEOUT:Client data does not send continuously!",
        "41040201-client-data-timeout",
        transcribe_then_stall,
        ar.RetryExhaustedError,
        RETRY,
        attempts=2,
        config={"client_data_timeout": 0.3},
    ),
    Row(
        50000000,
        "GRPC_ERROR:Grpc error!",
        "50000000-grpc",
        recognize(),
        None,
        RETRY,
        attempts=2,
        faults=(Fault("code", "start", code=50000000, times=1),),
        check=injected_once,
    ),
    Row(
        50000001,
        "GRPC_ERROR:Grpc error!",
        "50000001-grpc",
        recognize(),
        None,
        RETRY,
        attempts=2,
        faults=(Fault("code", "start", code=50000001, times=1),),
        check=injected_once,
    ),
    Row(
        52010001,
        "GRPC_ERROR:Grpc error!",
        "52010001-grpc",
        recognize(),
        None,
        RETRY,
        attempts=2,
        faults=(Fault("code", "start", code=52010001, times=1),),
        check=injected_once,
    ),
    # 一句话识别错误码 (one-sentence table)
    Row(
        40000000,
        "Gateway:CLIENT_ERROR:Empty audio data!",
        "40000000-empty-audio",
        recognize(b"", streamed=True),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40000004,
        "Gateway:IDLE_TIMEOUT:Websocket session is idle for too long time",
        "40000004-idle-timeout",
        misbehaving(say_nothing),
        ar.RetryExhaustedError,
        RETRY,
        attempts=2,
        config={"idle_timeout": 0.3},
    ),
    Row(
        40010002,
        "Gateway:DIRECTIVE_NOT_SUPPORTED:Directive'SpeechRecognizer.EnhanceRecognition'isnotsupported!",
        "40010002-directive-not-supported",
        misbehaving(unsupported_directive),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40010003,
        "Gateway:DIRECTIVE_INVALID:Too many items for ‘vocabulary'!(173)",
        "40010003-too-many-hotwords",
        recognize(params={"vocabulary": VOCABULARY_200}),
        ar.FixClientError,
        FIX,
    ),
    Row(
        40270002,
        "NO_VALID_AUDIO_ERROR",
        "40270002-clicks",
        recognize(clicks()),
        ar.FailFastError,
        FAIL,
    ),
    Row(
        41010104,
        "TOO_LONG_SPEECH",
        "41010104-too-long",
        recognize(),
        ar.FixClientError,
        FIX,
        config={"max_sentence_ms": 500},
    ),
    Row(
        41010105,
        "SILENT_SPEECH",
        "41010105-silence",
        recognize(silence(1000)),
        ar.FailFastError,
        FAIL,
    ),
]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in ROWS])
async def test_seed_row_end_to_end(row: Row, observed: Observed) -> None:
    """The simulator answers the row's code on a socket; client and default policy act on it."""
    entry = seed_entry(row.code, row.message)
    config = SimulatorConfig(transcripts=[TEXT], **row.config)
    async with Simulator(accounts=accounts(), config=config, scenario=row.faults) as sim:
        provider = SimProvider(sim, row.account, row.first_token)
        appkey = row.appkey or sim.store.get(row.account).appkeys[0]
        h = Harness(sim, provider, TokenManager(provider), appkey)
        with no_wait():
            if row.outcome is None:
                result = await row.drive(h)
            else:
                with pytest.raises(row.outcome) as info:
                    await row.drive(h)

        # (1) The client really got the row's code, with a text the catalog files under the row.
        failed = observed.errors
        assert [e.code for e in failed] == [row.code] * row.failures, failed
        for nls in failed:
            assert ar.catalog().lookup(row.code, nls.message) == entry, nls.message
        if row.counted:
            assert answered(sim, row.code) == row.failures, sim.stats.snapshot()

        # (2) The default policy's action, carried out.
        assert observed.decisions() == [(row.code, row.action)] * row.failures
        assert provider.calls == h.tokens.provider_calls == row.provider_calls
        if row.outcome is None:
            assert isinstance(result, Recognition)
            assert result.attempts == row.attempts
            assert result.text == TEXT
        else:
            error = info.value
            assert error.code == row.code
            assert error.action == row.action
            assert error.hint == entry.solution("en")
            assert [(a.code, a.action) for a in error.attempts] == [
                (row.code, row.action)
            ] * row.attempts
            assert error.__cause__ is failed[-1]
        row.check(h)


def test_rows_are_the_seed_rows() -> None:
    """The parametrization covers exactly the catalog's 30 seed (code, message) rows, in order."""
    seed = [(entry.code, entry.message) for entry in ar.catalog().seed_entries()]
    assert len(seed) == 30
    assert [(row.code, row.message) for row in ROWS] == seed
    assert len({row.id for row in ROWS}) == len(ROWS)

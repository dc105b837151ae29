"""The resilient wrapper: each action end to end, sync and async side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

import asr_resilience as ar
from asr_resilience.testing import FakeClock, no_wait
from asr_resilience.tokens import TokenManager

from .helpers import CountingProvider, write_policy

Outcome = BaseException | str


class Script:
    """A fake NLS call: raises or returns the scripted outcomes in order, then the last forever."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.tokens: list[str] = []

    def step(self, token: str = "") -> str:
        self.calls += 1
        self.tokens.append(token)
        outcome = self.outcomes[min(self.calls, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def wrap(script: Script, mode: str, **options: Any) -> Callable[[], Any]:
    """Decorate the script as a sync or an async function and return a sync runner."""
    policy = options.pop("policy", "default")
    if mode == "sync":

        @ar.resilient(policy, **options)
        def call(*, token: str = "") -> str:
            return script.step(token)

        return call

    @ar.resilient(policy, **options)
    async def acall(*, token: str = "") -> str:
        await asyncio.sleep(0)
        return script.step(token)

    return lambda: asyncio.run(acall())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
def test_retry_then_success(mode: str) -> None:
    """Two gRPC errors, then a result: the caller gets the result after three attempts."""
    script = Script(ar.NlsError(50000000, "GRPC_ERROR:Grpc error!"), ar.NlsError(52010001), "ok")
    with no_wait():
        assert wrap(script, mode, scope=f"retry-{mode}")() == "ok"
    assert script.calls == 3


@MODES
def test_retry_exhausted_carries_history(mode: str) -> None:
    """A gateway that keeps failing ends in RetryExhaustedError with the whole history."""
    cause = ar.NlsError(50000001, "GRPC_ERROR:Grpc error!", task_id="t1")
    script = Script(cause)
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
        wrap(script, mode, scope=f"exhaust-{mode}")()
    err = info.value
    assert script.calls == 4
    assert err.code == 50000001
    assert err.action == "retry"
    assert [a.code for a in err.attempts] == [50000001] * 4
    assert [a.number for a in err.attempts] == [1, 2, 3, 4]
    assert err.__cause__ is cause
    assert err.hint  # the catalog's fix, in English by default
    assert "一般重试" not in err.hint
    assert isinstance(err, ar.ResilienceError)


@MODES
def test_fix_client_is_not_retried(mode: str) -> None:
    """A bad WAV header stops at once with FixClientError and the catalog's fix."""
    script = Script(ar.NlsError(40000009, "Too large wav header!"))
    with pytest.raises(ar.FixClientError) as info:
        wrap(script, mode, scope=f"fix-{mode}")()
    assert script.calls == 1
    assert info.value.action == "fix-client"
    assert "WAV" in info.value.hint
    assert len(info.value.attempts) == 1


@MODES
def test_fail_fast_is_not_retried(mode: str) -> None:
    """An expired trial stops at once with FailFastError."""
    script = Script(ar.NlsError(40000010, "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!"))
    with pytest.raises(ar.FailFastError) as info:
        wrap(script, mode, scope=f"ff-{mode}")()
    assert script.calls == 1
    assert info.value.code == 40000010


@MODES
def test_chinese_hint_when_policy_says_zh(mode: str, tmp_path: Path) -> None:
    """language: zh gives the seed's Chinese fix as the hint."""
    policy = write_policy(tmp_path, "language: zh\n")
    script = Script(ar.NlsError(40000010, "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!"))
    with pytest.raises(ar.FailFastError) as info:
        wrap(script, mode, policy=policy, scope=f"zh-{mode}")()
    assert "控制台" in info.value.hint


@MODES
def test_refresh_token_then_success(mode: str) -> None:
    """40000001 invalidates the token, the retry uses a fresh one at once."""
    provider = CountingProvider()
    tokens = TokenManager(provider)
    script = Script(ar.NlsError(40000001, "The token 'x' has expired"), "ok")
    clock = FakeClock()
    assert wrap(script, mode, tokens=tokens, clock=clock.clock(), scope=f"rt-{mode}")() == "ok"
    assert provider.calls == 2
    assert script.tokens == ["secret-token-0001", "secret-token-0002"]
    assert clock.sleeps == []  # a refresh retries at once


@MODES
def test_refresh_does_not_count_against_attempts(mode: str, tmp_path: Path) -> None:
    """A refresh retry does not use up max_attempts: 1 refresh + 2 attempts allowed by the rule."""
    policy = write_policy(tmp_path, "defaults: {max_attempts: 2}\n")
    tokens = TokenManager(CountingProvider())
    script = Script(ar.NlsError(40000001), ar.NlsError(50000000), "ok")
    with no_wait():
        out = wrap(script, mode, policy=policy, tokens=tokens, scope=f"rc-{mode}")()
    assert out == "ok"
    assert script.calls == 3


@MODES
def test_second_rejection_blames_credentials(mode: str) -> None:
    """A fresh token refused again ends in TokenRefreshError about the credentials."""
    provider = CountingProvider()
    tokens = TokenManager(provider)
    script = Script(ar.NlsError(40000001, "Meta:ACCESS_DENIED:The token 'abc123' is invalid!"))
    with pytest.raises(ar.TokenRefreshError) as info:
        wrap(script, mode, tokens=tokens, scope=f"cred-{mode}")()
    assert "credentials" in str(info.value)
    assert script.calls == 2
    assert provider.calls == 2
    assert "abc123" not in str(info.value)


@MODES
def test_refresh_without_token_manager(mode: str) -> None:
    """A 403 with no TokenManager to refresh gives TokenRefreshError, not a blind retry."""
    script = Script(ar.NlsError(403, "Forbidden"))
    with pytest.raises(ar.TokenRefreshError):
        wrap(script, mode, scope=f"nt-{mode}")()
    assert script.calls == 1


@MODES
def test_foreign_exception_propagates_untouched(mode: str) -> None:
    """An exception that is not a service failure is neither retried nor wrapped."""
    boom = ValueError("a bug in the caller")
    script = Script(boom)
    with pytest.raises(ValueError, match="a bug") as info:
        wrap(script, mode, scope=f"fe-{mode}")()
    assert info.value is boom
    assert script.calls == 1


@MODES
def test_transport_failures_are_retried(mode: str) -> None:
    """Refused, reset and timeouts are retried like any transient failure."""
    script = Script(ConnectionRefusedError(), ConnectionResetError(), TimeoutError())
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
        wrap(script, mode, scope=f"tr-{mode}")()
    assert [a.transport for a in info.value.attempts] == ["refused", "reset", "timeout", "timeout"]
    script2 = Script(ConnectionResetError(), "ok")
    with no_wait():
        assert wrap(script2, mode, scope=f"tr2-{mode}")() == "ok"


@MODES
def test_deadline_is_never_overshot(mode: str, tmp_path: Path) -> None:
    """The call gives up before a wait that would cross the deadline, and never sleeps past it."""
    policy = write_policy(
        tmp_path,
        "defaults:\n  max_attempts: 10\n  deadline: 1s\n"
        "  backoff: {initial: 400ms, max: 400ms, jitter: none}\n",
    )
    clock = FakeClock()
    script = Script(ar.NlsError(50000000))
    with pytest.raises(ar.DeadlineExceededError) as info:
        wrap(script, mode, policy=policy, clock=clock.clock(), scope=f"dl-{mode}")()
    assert clock.sleeps == [0.4, 0.4]
    assert sum(clock.sleeps) <= 1.0
    assert script.calls == 3
    assert info.value.code == 50000000


@MODES
def test_throttle_schedule_differs_from_transient(mode: str, tmp_path: Path) -> None:
    """40000005 waits on the throttle schedule, 5xxxxxxx on the transient one."""
    policy = write_policy(
        tmp_path,
        "defaults: {backoff: {initial: 100ms, max: 1s, jitter: none}}\n"
        "rules:\n  - name: throttled\n    match: {codes: [40000005]}\n    action: retry\n"
        "    backoff: {initial: 2s, max: 8s, jitter: none}\n",
    )
    slow = FakeClock()
    wrap(
        Script(ar.NlsError(40000005), ar.NlsError(40000005), "ok"),
        mode,
        policy=policy,
        clock=slow.clock(),
        scope=f"th-{mode}",
    )()
    fast = FakeClock()
    wrap(
        Script(ar.NlsError(50000000), ar.NlsError(50000000), "ok"),
        mode,
        policy=policy,
        clock=fast.clock(),
        scope=f"tr-{mode}",
    )()
    assert slow.sleeps == [2.0, 4.0]
    assert fast.sleeps == [0.1, 0.2]


@MODES
def test_no_wait_keeps_decisions_but_skips_sleeps(mode: str, tmp_path: Path) -> None:
    """Under no_wait the same attempts happen and the clock's sleep is never called."""
    policy = write_policy(tmp_path, "defaults: {backoff: {initial: 5s, max: 5s, jitter: none}}\n")
    clock = FakeClock()
    script = Script(ar.NlsError(50000000), "ok")
    with no_wait():
        assert wrap(script, mode, policy=policy, clock=clock.clock(), scope=f"nw-{mode}")() == "ok"
    assert clock.sleeps == []
    assert script.calls == 2


@MODES
def test_rest_body_checked_only_when_asked(mode: str) -> None:
    """check_result=True retries a returned body whose status is not 20000000."""
    bad = {"status": 50000000, "message": "GRPC_ERROR:Grpc error!", "result": ""}
    good = {"status": 20000000, "message": "SUCCESS", "result": "你好"}
    outcomes: list[dict[str, Any]] = [bad, good]

    @ar.resilient("default", check_result=True, scope=f"rest-{mode}")
    def call() -> dict[str, Any]:
        return outcomes.pop(0)

    with no_wait():
        assert call() == good

    @ar.resilient("default", scope=f"rest2-{mode}")
    def unchecked() -> dict[str, Any]:
        return bad

    assert unchecked() == bad


def test_budget_stops_a_failure_storm(tmp_path: Path) -> None:
    """With every call failing, retries stay at the budget's ratio of the calls."""
    policy = write_policy(
        tmp_path,
        "retry_budget: {ratio: 0.1, min_per_second: 0, window: 10s}\n"
        "circuit_breaker: {enabled: false}\n",
    )
    script = Script(ar.NlsError(50000000))
    exhausted = 0
    with no_wait():
        call = wrap(script, "sync", policy=policy, scope="storm")
        for _ in range(1000):
            try:
                call()
            except ar.RetryBudgetExhaustedError:
                exhausted += 1
            except ar.RetryExhaustedError:
                pass
    retries = script.calls - 1000
    assert 90 <= retries <= 110
    assert exhausted > 900


def test_breaker_opens_probes_and_closes(tmp_path: Path) -> None:
    """Failures open the breaker; while open no call is made; after open_for a probe closes it."""
    policy = write_policy(
        tmp_path,
        "defaults: {max_attempts: 1}\nretry_budget: {enabled: false}\n"
        "circuit_breaker: {failure_ratio: 0.5, min_calls: 5, window: 30s, open_for: 15s}\n",
    )
    clock = FakeClock()
    script = Script(*([ar.NlsError(50000000)] * 5), "ok")
    call = wrap(script, "sync", policy=policy, clock=clock.clock(), scope="breaker")
    for _ in range(5):
        with pytest.raises(ar.RetryExhaustedError):
            call()
    with pytest.raises(ar.CircuitOpenError):
        call()
    assert script.calls == 5
    clock.advance(16)
    assert call() == "ok"  # the probe
    assert call() == "ok"  # closed again
    assert script.calls == 7


def test_method_is_decorated_like_a_function() -> None:
    """A decorated method gets self and the token like any function."""
    tokens = TokenManager(CountingProvider())

    class Client:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @ar.resilient("default", tokens=tokens, scope="method")
        def recognize(self, audio: bytes, *, token: str = "") -> int:
            self.seen.append(token)
            return len(audio)

    client = Client()
    assert client.recognize(b"abc") == 3
    assert client.seen == ["secret-token-0001"]


def test_block_form_sync() -> None:
    """for/with retries the block per policy and exposes the token."""
    tokens = TokenManager(CountingProvider())
    script = Script(ar.NlsError(40000001), ar.NlsError(50000000), "ok")
    result = None
    with no_wait():
        for attempt in ar.retrying("default", tokens=tokens, scope="block"):
            with attempt:
                result = script.step(attempt.token)
    assert result == "ok"
    assert script.tokens == ["secret-token-0001", "secret-token-0002", "secret-token-0002"]


async def test_block_form_async() -> None:
    """async for/with works the same and raises the typed error at the end."""
    script = Script(ar.NlsError(40270002, "NO_VALID_AUDIO_ERROR"))

    async def block() -> None:
        async for attempt in ar.retrying("default", scope="ablock"):
            with attempt:
                script.step()

    with pytest.raises(ar.FailFastError):
        await block()
    assert script.calls == 1


def test_events_are_logged_without_secrets() -> None:
    """Each decision is one structlog event with the documented fields; no token leaks."""
    provider = CountingProvider()
    tokens = TokenManager(provider)
    first = "secret-token-0001"
    script = Script(
        ar.NlsError(40000001, f"Gateway:ACCESS_DENIED:The token '{first}' has expired!"),
        ar.NlsError(50000000, "GRPC_ERROR:Grpc error!", task_id="task-42"),
        "ok",
    )
    with structlog.testing.capture_logs() as logs, no_wait():
        assert wrap(script, "sync", tokens=tokens, scope="logs")() == "ok"
    names = [e["event"] for e in logs]
    assert names == [
        "asr_resilience.token_refreshed",  # the first token
        "asr_resilience.token_invalidated",
        "asr_resilience.token_refreshed",
        "asr_resilience.retry_scheduled",
    ]
    assert logs[2]["token_fingerprint"].startswith("tok:")
    retry = logs[3]
    assert retry["code"] == 50000000
    assert retry["action"] == "retry"
    assert retry["rule"] == "server"
    assert retry["attempt"] == 2
    assert retry["task_id"] == "task-42"
    assert "delay" in retry
    assert retry["function"].endswith("call")
    for event in logs:
        for value in event.values():
            assert "secret-token" not in str(value)


def test_successful_first_attempt_logs_nothing() -> None:
    """A call that succeeds at once emits no event."""
    with structlog.testing.capture_logs() as logs:
        assert wrap(Script("ok"), "sync", scope="quiet")() == "ok"
    assert logs == []


def test_gave_up_event_and_hooks() -> None:
    """Giving up logs only gave_up; hooks also receive the call's and attempt's boundaries."""
    from asr_resilience.observe import add_hook

    seen: list[str] = []
    remove = add_hook(lambda event: seen.append(event.name))
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(ar.FixClientError):
            wrap(Script(ar.NlsError(40000003, "PARAMETER_INVALID")), "sync", scope="hooks")()
    finally:
        remove()
    assert [e["event"] for e in logs] == ["asr_resilience.gave_up"]
    assert logs[0]["error"] == "FixClientError"
    names = [name.removeprefix("asr_resilience.") for name in seen]  # hooks see the boundaries
    assert names == ["call_started", "attempt_started", "attempt_ended", "gave_up", "call_ended"]


def test_a_sync_function_with_an_attempt_keyword_gets_the_time_left(tmp_path: Path) -> None:
    """A decorated function that declares ``attempt`` receives it, with the call's time left."""
    policy = write_policy(tmp_path, "defaults: {deadline: 10s}\n")
    fake = FakeClock()
    seen: list[tuple[int, float]] = []

    @ar.resilient(policy, scope="attempt-keyword", clock=fake.clock())
    def call(*, attempt: ar.Attempt | None = None) -> str:
        assert attempt is not None
        seen.append((attempt.number, attempt.remaining))
        fake.advance(3)  # the attempt itself takes 3 s
        if attempt.number == 1:
            raise ar.NlsError(50000000, "GRPC_ERROR")
        return "ok"

    assert call() == "ok"
    assert seen[0] == (1, 10.0)
    number, remaining = seen[1]
    assert number == 2
    assert remaining == pytest.approx(10.0 - 3.0 - fake.sleeps[0])


def test_a_function_without_an_attempt_keyword_is_called_as_written(tmp_path: Path) -> None:
    """Only a function that names ``attempt`` receives it (not one taking only ``**kwargs``)."""
    received: list[dict[str, Any]] = []

    @ar.resilient("default", scope="no-attempt-keyword")
    def call(**kwargs: Any) -> str:
        received.append(kwargs)
        return "ok"

    assert call(x=1) == "ok"
    assert received == [{"x": 1}]

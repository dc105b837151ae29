"""Per-call and per-process overrides of the policy: ``deadline``, ``max_attempts``,
``retry_with``, ``.policy`` and the ``ASR_RESILIENCE_*`` environment knobs."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asr_resilience as ar
from asr_resilience.retry._call import CallState
from asr_resilience.retry._overrides import (
    ENV_DEADLINE,
    ENV_MAX_ATTEMPTS,
    effective_policy,
    from_environment,
)
from asr_resilience.retry._settings import make_settings
from asr_resilience.testing import FakeClock, no_wait

from .helpers import write_policy

_scopes = itertools.count()


def scope() -> str:
    """A scope name no other test shares (budget, breaker and limiter start fresh)."""
    return f"overrides-{next(_scopes)}"


class Failing:
    """A fake NLS call that raises ``NlsError(code)`` every time and counts its calls."""

    def __init__(self, code: int = 50000000) -> None:
        self.code = code
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        raise ar.NlsError(self.code)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No knob leaks in from the machine running the tests."""
    monkeypatch.delenv(ENV_DEADLINE, raising=False)
    monkeypatch.delenv(ENV_MAX_ATTEMPTS, raising=False)


# -- max_attempts ----------------------------------------------------------------------------------


def test_max_attempts_caps_a_rule_with_more() -> None:
    """max_attempts=2 stops the throttle rule (6 attempts) after 2; the policy is unchanged."""
    call = Failing(40000005)
    wrapped = ar.resilient("default", scope=scope(), max_attempts=2)(call)
    with no_wait(), pytest.raises(ar.RetryExhaustedError) as info:
        wrapped()
    assert call.calls == 2
    assert len(info.value.attempts) == 2
    assert ar.load_policy("default").decide_code(40000005).max_attempts == 6


def test_max_attempts_never_raises_a_rule() -> None:
    """A ceiling above the rule's attempts leaves them as the rule says (4 by default)."""
    call = Failing()
    wrapped = ar.resilient("default", scope=scope(), max_attempts=10)(call)
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        wrapped()
    assert call.calls == 4


def test_max_attempts_does_not_count_token_refreshes(tmp_path: Path) -> None:
    """A refresh is not an attempt: max_attempts=1 still lets a rejected token be refreshed."""
    outcomes = iter([ar.NlsError(40000001), "ok"])

    def call(*, token: str = "") -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    from .helpers import CountingProvider

    tokens = ar.TokenManager(CountingProvider())
    wrapped = ar.resilient("default", tokens=tokens, scope=scope(), max_attempts=1)(call)
    with no_wait():
        assert wrapped() == "ok"


def test_block_form_takes_max_attempts() -> None:
    """retrying(max_attempts=2) gives up after two blocks."""
    blocks = 0

    def run() -> None:
        nonlocal blocks
        for attempt in ar.retrying("default", scope=scope(), max_attempts=2):
            with attempt:
                blocks += 1
                raise ar.NlsError(50000000)

    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        run()
    assert blocks == 2


# -- deadline --------------------------------------------------------------------------------------


def test_deadline_replaces_the_policys_with_fake_clock(tmp_path: Path) -> None:
    """deadline=1 on a 30 s policy: the call gives up before a wait would cross 1 s."""
    policy = write_policy(
        tmp_path,
        "defaults:\n  max_attempts: 10\n  backoff: {initial: 400ms, max: 400ms, jitter: none}\n",
    )
    clock = FakeClock()
    call = Failing()
    wrapped = ar.resilient(policy, scope=scope(), clock=clock.clock(), deadline=1)(call)
    with pytest.raises(ar.DeadlineExceededError):
        wrapped()
    assert clock.sleeps == [0.4, 0.4]
    assert call.calls == 3


def test_call_state_deadline_and_cap_override_the_settings() -> None:
    """A CallState's own deadline and max_attempts win over its settings'."""
    clock = FakeClock(start=100.0)
    settings = make_settings(
        "default", tokens=None, scope=scope(), function="t", clock=clock.clock(), deadline=5
    )
    assert CallState(settings, clock.now).deadline_at == 105.0
    state = CallState(settings, clock.now, 2.5, 3)
    assert (state.deadline_at, state.max_attempts) == (102.5, 3)
    assert CallState(settings, clock.now).max_attempts is None


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan, "3s", True, 90_000])
def test_bad_deadline_is_a_value_error_naming_it(value: Any) -> None:
    """A deadline that is not a positive, finite number of seconds is refused by name."""
    with pytest.raises(ValueError, match="deadline"):
        ar.resilient("default", deadline=value)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2", 5000])
def test_bad_max_attempts_is_a_value_error_naming_it(value: Any) -> None:
    """max_attempts must be a whole number from 1 to the policy ceiling, refused by name."""
    with pytest.raises(ValueError, match="max_attempts"):
        ar.retrying("default", max_attempts=value)


# -- retry_with and .policy ------------------------------------------------------------------------


def test_policy_is_the_policy_in_effect(tmp_path: Path) -> None:
    """.policy is the resolved policy, with the decorator's deadline and cap applied."""
    plain = ar.resilient("default")(Failing())
    assert plain.policy is not None
    assert plain.policy.name == "default"
    assert plain.policy.defaults.deadline == 30.0
    capped = ar.resilient("default", deadline=2, max_attempts=3)(Failing())
    assert capped.policy.defaults.deadline == 2.0
    assert capped.policy.decide_code(40000005).max_attempts == 3
    assert capped.policy.decide_code(41040201).max_attempts == 2  # below the cap: kept


def test_effective_policy_is_the_same_object_without_changes() -> None:
    """No override (or a cap above every rule) gives the policy itself back."""
    policy = ar.load_policy("default")
    assert effective_policy(policy, None, None) is policy
    assert effective_policy(policy, 30.0, 100) is policy


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retry_with_returns_a_new_wrapper_and_keeps_the_old(mode: str) -> None:
    """retry_with(max_attempts=1) gives a new wrapper; the original keeps its attempts."""
    call = Failing()

    async def acall() -> str:
        return call()

    def run(fn: Callable[[], Any]) -> Any:
        return fn() if mode == "sync" else asyncio.run(fn())

    original: ar.retry.ResilientFunction[[], Any] = ar.resilient("default", scope=scope())(
        call if mode == "sync" else acall
    )
    once = original.retry_with(max_attempts=1)
    assert once is not original
    assert once.__wrapped__ is original.__wrapped__  # type: ignore[attr-defined]
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        run(once)
    assert call.calls == 1
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        run(original)
    assert call.calls == 1 + 4


def test_retry_with_changes_policy_and_scope(tmp_path: Path) -> None:
    """retry_with(policy=..., scope=...) swaps them; .policy follows."""
    policy = write_policy(tmp_path, "defaults: {max_attempts: 2}\n")
    call = Failing()
    wrapped = ar.resilient("default", scope=scope())(call).retry_with(policy=policy, scope=scope())
    assert wrapped.policy.defaults.max_attempts == 2
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        wrapped()
    assert call.calls == 2


def test_retry_with_refuses_unknown_arguments() -> None:
    """A misspelt override is a TypeError listing what retry_with takes."""
    wrapped = ar.resilient("default")(Failing())
    with pytest.raises(TypeError, match="max_attempts"):
        wrapped.retry_with(max_attempt=2)  # type: ignore[call-arg]


def test_retry_with_on_a_method_is_taken_from_the_class() -> None:
    """A method's retry_with (from the class) returns a function given self explicitly."""

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @ar.resilient("default", scope=scope())
        def fetch(self) -> str:
            self.calls += 1
            raise ar.NlsError(50000000)

    client = Client()
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        Client.fetch.retry_with(max_attempts=2)(client)
    assert client.calls == 2
    assert client.fetch.policy is Client.fetch.policy  # type: ignore[attr-defined]


# -- the environment -------------------------------------------------------------------------------


def test_environment_caps_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASR_RESILIENCE_MAX_ATTEMPTS=2 caps a decorated function built after it is set."""
    monkeypatch.setenv(ENV_MAX_ATTEMPTS, "2")
    call = Failing()
    wrapped = ar.resilient("default", scope=scope())(call)
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        wrapped()
    assert call.calls == 2
    assert wrapped.policy.defaults.max_attempts == 2


def test_environment_deadline_accepts_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASR_RESILIENCE_DEADLINE takes 500ms, 5s, 2m or plain seconds."""
    for text, seconds in [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("7", 7.0), ("1.5", 1.5)]:
        monkeypatch.setenv(ENV_DEADLINE, text)
        settings = make_settings("default", tokens=None, scope=scope(), function="t")
        assert settings.deadline == seconds


def test_code_beats_environment_beats_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Precedence: a call's argument > the decorator's > the environment > the policy file."""
    monkeypatch.setenv(ENV_DEADLINE, "5s")
    monkeypatch.setenv(ENV_MAX_ATTEMPTS, "2")
    from_env = make_settings("default", tokens=None, scope=scope(), function="t")
    assert (from_env.deadline, from_env.max_attempts) == (5.0, 2)
    from_code = make_settings(
        "default", tokens=None, scope=scope(), function="t", deadline=9, max_attempts=3
    )
    assert (from_code.deadline, from_code.max_attempts) == (9.0, 3)
    state = CallState(from_env, 0.0, 1.0, 4)  # the call's own: a ceiling of 4 lifts the env's 2
    assert (state.deadline_at, state.max_attempts) == (1.0, 4)
    call = Failing()
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        ar.resilient("default", scope=scope(), max_attempts=3)(call)()
    assert call.calls == 3
    monkeypatch.delenv(ENV_DEADLINE)
    monkeypatch.delenv(ENV_MAX_ATTEMPTS)
    from_file = make_settings("default", tokens=None, scope=scope(), function="t")
    assert (from_file.deadline, from_file.max_attempts) == (30.0, None)


def test_environment_is_read_when_settings_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting the variable after decorating changes nothing: calls never read it."""
    call = Failing()
    wrapped = ar.resilient("default", scope=scope())(call)
    monkeypatch.setenv(ENV_MAX_ATTEMPTS, "1")
    with no_wait(), pytest.raises(ar.RetryExhaustedError):
        wrapped()
    assert call.calls == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (ENV_DEADLINE, "soon"),
        (ENV_DEADLINE, "0s"),
        (ENV_DEADLINE, "-1"),
        (ENV_DEADLINE, "inf"),
        (ENV_DEADLINE, "3d"),
        (ENV_MAX_ATTEMPTS, "two"),
        (ENV_MAX_ATTEMPTS, "0"),
        (ENV_MAX_ATTEMPTS, "2.5"),
        (ENV_MAX_ATTEMPTS, "100000"),
    ],
)
def test_bad_environment_value_is_one_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad value is one PolicyError (a ValueError) that names the variable and the value."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ar.PolicyError) as info:
        ar.resilient("default")(Failing())
    assert isinstance(info.value, ValueError)
    assert len(info.value.issues) == 1
    assert variable in str(info.value)
    assert value in str(info.value)


def test_empty_environment_values_are_unset() -> None:
    """An empty or blank variable counts as unset."""
    assert from_environment({ENV_DEADLINE: "", ENV_MAX_ATTEMPTS: "  "}) == (None, None)

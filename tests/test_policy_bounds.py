"""Bounded policies: documented maxima, linear-time message patterns, windows in few buckets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import asr_resilience as ar
from asr_resilience import cli
from asr_resilience._errors import FailFastError
from asr_resilience._failure import Failure
from asr_resilience.limits import CircuitBreaker, RetryBudget
from asr_resilience.limits._budget import MAX_BUCKETS
from asr_resilience.policy import (
    CircuitBreakerSettings,
    RetryBudgetSettings,
    load_policy,
    shipped_policies,
)
from asr_resilience.policy._matchers import message


@pytest.mark.parametrize("name", shipped_policies())
def test_shipped_policies_sit_within_the_maxima(name: str) -> None:
    """Every shipped policy loads: its numbers are inside the documented maxima."""
    assert load_policy(name).name == name


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    """`^(a+)+$` (seconds of backtracking in `re`) matches 100 000 characters at once on RE2."""
    matcher = message(r"^(a+)+$")
    assert not matcher(Failure(code=50000000, message="a" * 100_000 + "!"))
    assert matcher(Failure(code=50000000, message="a" * 100_000))


def test_pattern_re2_cannot_run_is_a_value_error() -> None:
    """A pattern RE2 cannot compile (a backreference) is a ValueError naming the reason."""
    with pytest.raises(ValueError, match="invalid escape sequence"):
        message(r"(a)\1")


def test_message_patterns_keep_python_syntax_they_share_with_re2(tmp_path: Path) -> None:
    """Classes, alternation, anchors and (?i) work as with `re`."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nrules:\n  - name: busy\n    match: {message: '(?i)^too_many|busy\\s+now'}\n"
        "    action: fail-fast\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.decide(Failure(code=50000000, message="TOO_MANY requests")).rule == "busy"
    assert policy.decide(Failure(code=50000000, message="gateway busy  now")).rule == "busy"
    assert policy.decide(Failure(code=50000000, message="fine")).rule != "busy"


@pytest.mark.parametrize("window", [1.0, 10.0, 120.0, 121.0, 3600.0, 1e9])
def test_window_memory_does_not_grow_with_the_window(window: float) -> None:
    """Budget and breaker keep at most MAX_BUCKETS buckets, whatever the window."""
    budget = RetryBudget(RetryBudgetSettings(window=window), clock=lambda: 0.0)
    breaker = CircuitBreaker(CircuitBreakerSettings(window=window), clock=lambda: 0.0)
    for ring in (budget, breaker):
        assert len(ring._ring_a) <= MAX_BUCKETS
        assert len(ring._ring_a) * ring._width >= min(window, 1e9)


def test_long_window_counts_calls_across_buckets() -> None:
    """An hour's window (30 s buckets) still counts calls from 50 minutes ago, not from 61."""
    settings = RetryBudgetSettings(ratio=0.5, min_per_second=0.0, window=3600.0)
    budget = RetryBudget(settings, clock=lambda: 0.0)
    for _ in range(10):
        budget.deposit(now=0.0)
    assert budget.available(now=3000.0) == pytest.approx(5.0)
    assert budget.available(now=3660.0) == pytest.approx(0.0)


def test_long_window_breaker_opens_on_failures_in_separate_buckets() -> None:
    """A one-hour breaker window sees failures minutes apart as one window."""
    settings = CircuitBreakerSettings(failure_ratio=0.5, min_calls=4, window=3600.0)
    now = [0.0]
    breaker = CircuitBreaker(settings, clock=lambda: now[0])
    for minute in range(4):
        now[0] = minute * 60.0
        breaker.record_failure()
    assert breaker.state == "open"


def test_policy_check_of_a_deeply_nested_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check` on 500 nested lists: exit 2 and one line, not a RecursionError."""
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\ndescription: " + "[" * 500 + "]" * 500 + "\n", encoding="utf-8")
    assert cli.main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"{path}:2: mappings and lists are nested more than 32 deep\n"
    assert sys.getrecursionlimit() >= 1000  # the limit, not a raised recursion limit, stopped it


def test_hint_is_never_rendered_as_none() -> None:
    """A typed error built without a hint (None) renders without one."""
    error = FailFastError("50000000 'busy'", hint=None)  # type: ignore[arg-type]
    assert str(error) == "50000000 'busy'"
    assert "None" not in str(ar.RetryExhaustedError("x", hint=""))

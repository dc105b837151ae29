"""Tests for asr_resilience.limits._budget: the retry budget over a sliding window."""

from __future__ import annotations

import math

from asr_resilience.limits import RetryBudget
from asr_resilience.policy import RetryBudgetSettings


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _withdraw_all(budget: RetryBudget, tries: int = 10_000) -> int:
    return sum(budget.try_withdraw() for _ in range(tries))


def test_retries_are_a_ratio_of_calls() -> None:
    """With no floor, 1000 calls at ratio 0.1 allow exactly 100 retries."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.1, min_per_second=0.0, window=10.0), clock)
    for _ in range(1000):
        budget.deposit()
    assert budget.available() == 100.0
    assert _withdraw_all(budget) == 100
    assert budget.available() == 0.0
    assert not budget.try_withdraw()


def test_deposit_takes_the_callers_time() -> None:
    """``deposit(now)`` counts into the second of ``now`` without reading the clock."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.5, min_per_second=0.0, window=10.0), clock)
    for _ in range(10):
        budget.deposit(clock.now + 0.5)
    assert budget.available(clock.now + 0.5) == 5.0


def test_floor_allows_retries_without_calls() -> None:
    """The floor alone allows ``min_per_second * window`` retries in an idle window."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.1, min_per_second=5.0, window=10.0), clock)
    assert budget.available() == 50.0
    assert _withdraw_all(budget) == 50


def test_floor_and_ratio_add_up() -> None:
    """Calls raise the allowance above the floor by ``ratio`` per call."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.2, min_per_second=1.0, window=10.0), clock)
    for _ in range(100):
        budget.deposit()
    assert _withdraw_all(budget) == 30


def test_window_slides_and_frees_budget() -> None:
    """Retries older than the window stop counting, so the budget comes back."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.1, min_per_second=1.0, window=10.0), clock)
    assert _withdraw_all(budget) == 10
    clock.advance(5.0)
    assert not budget.try_withdraw()
    clock.advance(5.0)
    assert budget.available() == 10.0
    assert _withdraw_all(budget) == 10


def test_calls_leave_the_window_by_whole_seconds() -> None:
    """Calls count for the window's whole seconds and drop out when their second leaves it."""
    clock = FakeClock(1000.5)
    budget = RetryBudget(RetryBudgetSettings(ratio=0.1, min_per_second=0.0, window=10.0), clock)
    for _ in range(100):
        budget.deposit()
    clock.now = 1009.99
    assert budget.available() == 10.0
    clock.now = 1010.0
    assert budget.available() == 0.0


def test_partial_slide_keeps_recent_seconds() -> None:
    """Only the seconds that left the window are forgotten; later ones still count."""
    clock = FakeClock(1000.0)
    budget = RetryBudget(RetryBudgetSettings(ratio=1.0, min_per_second=0.0, window=4.0), clock)
    for second in range(4):
        clock.now = 1000.0 + second
        for _ in range(second + 1):
            budget.deposit()
    assert budget.available() == 1 + 2 + 3 + 4
    clock.now = 1005.0
    assert budget.available() == 3 + 4
    clock.now = 1100.0
    assert budget.available() == 0.0


def test_disabled_always_allows() -> None:
    """A disabled budget allows every retry and reports an infinite allowance."""
    budget = RetryBudget(RetryBudgetSettings(enabled=False, min_per_second=0.0), FakeClock())
    assert all(budget.try_withdraw() for _ in range(1000))
    assert math.isinf(budget.available())

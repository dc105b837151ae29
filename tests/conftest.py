"""Shared fixtures: every test starts with fresh scopes (budgets, breakers, limiters) and no
held-back repeated warnings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asr_resilience.limits import reset_scopes
from asr_resilience.observe._events import repeats


@pytest.fixture(autouse=True)
def _fresh_scopes() -> Iterator[None]:
    """Scopes are process-wide; a test must not inherit another's breaker or budget."""
    reset_scopes()
    repeats.reset()
    yield
    reset_scopes()
    repeats.reset()

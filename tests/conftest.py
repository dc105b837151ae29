"""Shared fixtures: every test starts with fresh scopes (budgets, breakers, limiters), no
held-back repeated warnings, and no proxy from the environment of whoever runs the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asr_resilience.limits import reset_scopes
from asr_resilience.observe._events import repeats

PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy")
    for name in (base, base.upper())
)


@pytest.fixture(autouse=True)
def _no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests talk to loopback servers; a developer's proxy variables must not reroute them
    (the proxy tests set the variables they test)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fresh_scopes() -> Iterator[None]:
    """Scopes are process-wide; a test must not inherit another's breaker or budget."""
    reset_scopes()
    repeats.reset()
    yield
    reset_scopes()
    repeats.reset()

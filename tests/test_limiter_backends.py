"""Tests for asr_resilience.limits._backends: limiter backends registered from above."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from asr_resilience.limits import (
    AdaptiveLimiter,
    Limiter,
    get_scope,
    limiter_backend,
    register_limiter_backend,
)
from asr_resilience.limits import (
    _backends as backends,
)
from asr_resilience.policy import ConcurrencySettings, Policy


def test_registered_factory_is_found_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A factory registered under a name is what limiter_backend returns for it."""
    monkeypatch.setattr(backends, "_backends", {})
    built: list[str] = []

    def factory(
        name: str,
        policy: Policy,
        *,
        clock: Callable[[], float],
        on_change: Callable[[float, float], None] | None,
    ) -> Limiter:
        built.append(name)
        return AdaptiveLimiter(ConcurrencySettings(adaptive=True))

    register_limiter_backend("memory", factory)
    limiter = limiter_backend("memory")("acct", Policy(), clock=lambda: 0.0, on_change=None)
    assert built == ["acct"]
    assert isinstance(limiter, Limiter)


def test_unknown_backend_is_a_lookup_error() -> None:
    """A name nobody registered raises LookupError naming the known ones."""
    with pytest.raises(LookupError, match="redis"):
        limiter_backend("no-such-backend")


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the provider cannot be imported, the error says which extra to install."""
    monkeypatch.setattr(backends, "_backends", {})
    monkeypatch.setitem(backends._PROVIDERS, "redis", ("asr_resilience_missing_module", "redis"))
    with pytest.raises(ImportError, match=r"pip install 'asr-resilience\[redis\]'"):
        limiter_backend("redis")


def test_both_limiters_satisfy_the_protocol() -> None:
    """AdaptiveLimiter is a Limiter; so is the fleet's (checked where redis-py is installed)."""
    assert isinstance(AdaptiveLimiter(ConcurrencySettings(adaptive=True)), Limiter)
    fleet = pytest.importorskip("asr_resilience.fleet")
    conn = fleet.FleetConnection(None)
    limiter = fleet.FleetLimiter(conn, "asr-test:protocol:limiter:{acct}", quota=1)
    try:
        assert isinstance(limiter, Limiter)
    finally:
        limiter.close()
        conn.close()


def test_local_scopes_never_import_the_fleet() -> None:
    """import asr_resilience and a local scope leave redis and the fleet unimported."""
    code = (
        "import sys, asr_resilience\n"
        "from asr_resilience.limits import get_scope\n"
        "from asr_resilience.policy import ConcurrencySettings, Policy\n"
        "get_scope('a', Policy(concurrency=ConcurrencySettings(adaptive=True)))\n"
        "bad = [m for m in ('redis', 'asr_resilience.fleet') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_limits_source_does_not_import_the_fleet() -> None:
    """No module of asr_resilience.limits names the fleet package in an import."""
    from pathlib import Path

    import asr_resilience.limits as limits

    for path in Path(limits.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "from ..fleet" not in text, path
        assert "import asr_resilience.fleet" not in text, path


def test_scope_without_fleet_needs_no_backend() -> None:
    """A policy without fleet: gets a local limiter, through no registry lookup."""
    scope = get_scope("local-backend-test", Policy(concurrency=ConcurrencySettings(adaptive=True)))
    assert isinstance(scope.limiter, AdaptiveLimiter)

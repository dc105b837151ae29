"""The policy's ``fleet:`` section: parsed into FleetSettings, every mistake reported precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_resilience._errors import PolicyError
from asr_resilience.policy import Policy, check_policy, load_policy, shipped_policies
from asr_resilience.policy._model import FleetSettings

from . import fleet_support as fs


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text("version: 1\n" + body, encoding="utf-8")
    return path


def test_defaults_leave_the_fleet_off() -> None:
    """A policy without fleet: (and every shipped one) runs per process."""
    assert Policy().fleet == FleetSettings()
    assert not FleetSettings().enabled
    for name in shipped_policies():
        assert not load_policy(name).fleet.enabled


def test_full_section_is_parsed(tmp_path: Path) -> None:
    """Every key of fleet: lands in FleetSettings, durations in seconds."""
    path = _write(
        tmp_path,
        "fleet:\n"
        "  enabled: true\n"
        "  redis_url: rediss://redis.internal:6380/2\n"
        "  redis_url_env: NLS_REDIS\n"
        "  key_prefix: 'nls:'\n"
        "  quota: 200\n"
        "  lease_ttl: 1.5m\n"
        "  fallback_share: 0.1\n",
    )
    fleet = load_policy(path).fleet
    assert fleet == FleetSettings(
        enabled=True,
        redis_url="rediss://redis.internal:6380/2",
        redis_url_env="NLS_REDIS",
        key_prefix="nls:",
        quota=200,
        lease_ttl=90.0,
        fallback_share=0.1,
    )


def test_null_quota_means_adaptive(tmp_path: Path) -> None:
    """quota: null (or no quota) learns the fleet limit between min and max."""
    path = _write(tmp_path, "fleet: {enabled: true, quota: null, initial: 2, min: 1, max: 50}\n")
    fleet = load_policy(path).fleet
    assert fleet.quota is None
    assert (fleet.initial, fleet.min, fleet.max) == (2, 1, 50)


def test_each_mistake_is_one_issue_with_line_and_field(tmp_path: Path) -> None:
    """One issue per bad value, each naming its line and dotted field."""
    path = _write(
        tmp_path,
        "fleet:\n"
        "  enabled: yes please\n"
        "  quota: 0\n"
        "  lease_ttl: -1s\n"
        "  fallback_share: 1.5\n"
        "  redis_url: http://:hunter2@redis\n"
        "  redis_url_env: 'NOT A NAME'\n"
        "  peers: 3\n",
    )
    issues = check_policy(path)
    found = {(issue.line, issue.field) for issue in issues}
    assert found == {
        (3, "fleet.enabled"),
        (4, "fleet.quota"),
        (5, "fleet.lease_ttl"),
        (6, "fleet.fallback_share"),
        (7, "fleet.redis_url"),
        (8, "fleet.redis_url_env"),
        (9, "fleet.peers"),
    }
    assert all("hunter2" not in issue.message for issue in issues)  # a password never echoes


def test_initial_outside_min_max_is_refused(tmp_path: Path) -> None:
    """The adaptive fleet limit must start within min..max."""
    path = _write(tmp_path, "fleet: {min: 4, max: 8, initial: 9}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    (issue,) = info.value.issues
    assert issue.field == "fleet.initial"
    assert "outside min..max" in issue.message


def test_fleet_merges_along_extends(tmp_path: Path) -> None:
    """A child policy can turn the fleet on over a shipped parent."""
    path = _write(tmp_path, "extends: production\nfleet: {enabled: true, quota: 200}\n")
    policy = load_policy(path)
    assert policy.fleet.enabled
    assert policy.concurrency.adaptive  # the parent's settings are kept


def test_url_comes_from_the_setting_then_the_environment() -> None:
    """redis_url wins; else the variable redis_url_env names; else no Redis."""
    fs.require_redis_py()
    from asr_resilience.fleet import resolve_url

    env = {"ASR_RESILIENCE_REDIS_URL": "redis://env:6379/0", "OTHER": "redis://other:1/0"}
    assert resolve_url(FleetSettings(redis_url="redis://set:6379/0"), env) == "redis://set:6379/0"
    assert resolve_url(FleetSettings(), env) == "redis://env:6379/0"
    assert resolve_url(FleetSettings(redis_url_env="OTHER"), env) == "redis://other:1/0"
    assert resolve_url(FleetSettings(), {}) is None


def test_connection_label_hides_the_password() -> None:
    """Events name the server as host:port/db, never with the URL's credentials."""
    fs.require_redis_py()
    from asr_resilience.fleet import FleetConnection

    connection = FleetConnection.from_url("redis://:hunter2@127.0.0.1:1/3")
    try:
        assert connection.label == "127.0.0.1:1/3"
        assert "hunter2" not in repr(connection)
    finally:
        connection.close()

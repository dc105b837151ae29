"""Smoke test of the fleet quota benchmark (``bench.fleet``), small enough for every test run."""

from __future__ import annotations

import pytest

from . import fleet_support as fs

fs.require_redis_py()

redis_url = pytest.fixture(fs.redis_url)


def test_fleet_quota_holds_across_processes(redis_url: str) -> None:
    """2 processes x 20 calls at concurrency 10 share a fleet quota of 3: no 40000005 at all."""
    from bench.fleet import fleet_quota

    result = fleet_quota(
        "on",
        processes=2,
        calls=20,
        concurrency=10,
        quota=3,
        service_time=0.05,
        url=redis_url,
    )
    assert result["failed_calls"] == 0, result
    assert result["throttled_per_call"] == 0, result
    # The simulator saw at most the quota at once, and the workers did fill it.
    assert result["max_concurrent"] == 3, result

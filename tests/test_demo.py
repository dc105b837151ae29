"""`asr-resilience demo`: the chaos run ends as its scenario says, and the check can fail."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from asr_resilience.cli import main
from asr_resilience.demo import _fleet as fleet
from asr_resilience.demo import _plan as plan


def assert_consistent(data: dict[str, Any]) -> None:
    """The summary adds up: the parts sum to the totals, the per-code counts are the gateway's
    own, and the chaos part's clients saw exactly the failures the gateway answered."""
    parts = data["parts"].values()
    for field in ("calls", "successes", "attempts", "gateway_requests"):
        assert sum(part[field] for part in parts) == data[field], field
    for error, count in data["failures_by_error"].items():
        assert sum(part["failures_by_error"].get(error, 0) for part in parts) == count
    sim = data["simulator"]
    assert data["gateway_requests"] == sim["connections"] + sim["rest_requests"]
    assert data["attempts_per_call"] == round(data["attempts"] / data["calls"], 3)
    assert data["retry_amplification"] == round(data["gateway_requests"] / data["calls"], 3)
    for part in parts:
        assert part["attempts_per_call"] == round(part["attempts"] / part["calls"], 3)
        assert part["retry_amplification"] == round(part["gateway_requests"] / part["calls"], 3)
    by_code = data["by_code"]
    gateway = {str(code): n for code, n in sim["failed"].items()}
    gateway.update({f"drop:{a}": n for a, n in sim["faults"].items() if a in ("close", "reset")})
    assert {code: row["count"] for code, row in by_code.items()} == gateway
    for code, row in by_code.items():
        assert row["count"] == sum(row[name] for name in data["parts"]), code
        if code.isdigit():
            assert row["seen_by_clients"] == row["chaos"], code
    drops = sum(row["chaos"] for code, row in by_code.items() if code.startswith("drop:"))
    assert data["transport_failures_seen_by_clients"] == drops


def test_demo_runs_and_every_call_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo exits 0, writes the summary, the plot and the log, and survives the chaos;
    its counts add up, and the skipped fleet part is said to be skipped."""
    summary = tmp_path / "demo.json"
    figure = tmp_path / "demo.png"
    log = tmp_path / "demo.log"
    status = main(
        ["demo", "--no-fleet", "--json", str(summary), "--plot", str(figure), "--log", str(log)]
    )
    out, err = capsys.readouterr()
    assert status == 0, out
    data = json.loads(summary.read_text(encoding="utf-8"))
    calls = len(plan.workload())
    assert data["calls"] == calls
    assert f"asr-resilience demo: {calls} calls: {calls} in the chaos part" in err
    assert "fleet part skipped (--no-fleet)" in err
    assert "fleet part skipped: --no-fleet" in out
    assert "Redis" not in err
    assert (out + err).count("policy 'production'") == 1
    assert_consistent(data)
    assert list(data["parts"]) == ["chaos"]
    assert data["matched_expectation"] == calls
    assert data["mismatches"] == []
    assert data["fleet"] is None
    assert data["successes"] == sum(1 for c in plan.workload() if c.expected == "ok")
    # The chaos really happened and was handled: throttling, a revoked token, gRPC errors.
    assert data["throttled_attempts"] > 0
    assert data["by_code"]["40000001"]["outcome"] == "recovered"
    assert data["by_code"]["50000000"]["action"] == "retry"
    assert data["by_code"]["41010105"]["outcome"] == "raised to the caller"
    assert data["retry_amplification"] > 1.0
    # The real-time stream was cut twice and resumed: the same sentences as its audio holds.
    stream = data["stream"]
    assert stream["reconnects"] == 2
    assert stream["identical"] is True
    assert stream["sentences_delivered"] == stream["sentences_expected"] > 5
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert any(e["event"] == "asr_resilience.retry_scheduled" for e in events)
    text = log.read_text(encoding="utf-8")
    assert "demo-secret-do-not-log" not in text
    assert "every call ended as the scenario says" in out
    # The per-code table's columns fit their longest value: every row as wide as its header.
    table = out[out.index("\ncode ") + 1 :].split("\n\n", 1)[0].splitlines()
    action_column = table[0].index("action")
    assert all(line[action_column - 2 : action_column] == "  " for line in table)
    assert all(line[action_column] != " " for line in table)


def test_demo_check_fails_on_a_wrong_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the scenario expected another outcome for one call, the demo says so and exits 1."""
    original = plan.workload

    def tampered() -> list[plan.Call]:
        calls = original()
        calls[19] = dataclasses.replace(calls[19], expected="ok")  # silence cannot succeed
        return calls

    monkeypatch.setattr(plan, "workload", tampered)
    status = main(["demo", "--no-fleet", "--log", str(tmp_path / "demo.log")])
    out = capsys.readouterr().out
    assert status == 1
    assert "expected ok, got FailFastError" in out


def test_demo_fleet_part_keeps_the_shared_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Redis, worker processes share the account's quota: peak = quota, no 40000005."""
    if fleet.redis_url() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide Redis at 127.0.0.1:6379 (.ci/run starts one)")
        pytest.skip("no Redis answers at 127.0.0.1:6379: the demo's fleet part cannot run")
    summary = tmp_path / "demo.json"
    status = main(["demo", "--json", str(summary), "--log", str(tmp_path / "demo.log")])
    out, err = capsys.readouterr()
    assert status == 0, out
    data = json.loads(summary.read_text(encoding="utf-8"))
    fleet_calls = fleet.WORKERS * fleet.CALLS
    assert data["calls"] == len(plan.workload()) + fleet_calls
    assert f"asr-resilience demo: {data['calls']} calls:" in err
    assert f"{fleet_calls} in the fleet part" in err
    assert_consistent(data)
    assert data["parts"]["fleet"]["calls"] == fleet_calls
    # Every failed attempt of a fleet call was retried: the gateway's count is the workers'.
    fleet_part = data["parts"]["fleet"]
    failed = sum(fleet_part["failed_attempts"].values())
    assert failed == fleet_part["attempts"] - fleet_part["successes"]
    part = data["fleet"]
    assert part["workers"] == fleet.WORKERS
    assert part["calls"] == fleet.WORKERS * fleet.CALLS
    assert part["throttled"] == 0
    assert part["max_concurrent"] == part["quota"] == fleet.QUOTA
    assert data["mismatches"] == []
    assert "shared through Redis" in out

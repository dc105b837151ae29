"""The demo's summary: a table for people, a JSON object for machines."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from ..policy import Policy
from ._record import Recorder


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _gateway_attempts(sim: Any) -> int:
    if not isinstance(sim, dict):
        return 0
    return int(sim.get("connections", 0)) + int(sim.get("rest_requests", 0))


def summary(recorder: Recorder, extra: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Everything the demo reports, as plain data."""
    calls = recorder.calls
    attempts = [c.attempts for c in calls]
    latencies = [c.latency for c in calls]
    outcomes = Counter(c.outcome for c in calls)
    by_code: dict[str, dict[str, Any]] = {}
    for (code, action), count in sorted(recorder.codes().items(), key=lambda kv: str(kv[0])):
        raised = sum(1 for c in calls if c.code == code and c.outcome != "ok")
        key = str(code)
        entry = by_code.setdefault(key, {"count": 0, "action": action, "raised": 0})
        entry["count"] += count
        entry["raised"] = raised
        entry["outcome"] = "raised to the caller" if raised else "recovered"
    sim = extra.get("simulator", {})
    total_attempts = sum(attempts)
    mismatches = [
        {"index": c.index, "kind": c.kind, "expected": c.expected, "got": c.outcome, "why": c.why}
        for c in calls
        if not c.matched
    ]
    fleet = extra.get("fleet")
    if isinstance(fleet, dict) and (fleet["throttled"] or fleet["max_concurrent"] > fleet["quota"]):
        # The fleet's promise: the shared quota is never exceeded, so the vendor never throttles.
        mismatches.append(
            {
                "index": -1,
                "kind": "fleet",
                "expected": f"at most {fleet['quota']} connections, no 40000005",
                "got": f"peak {fleet['max_concurrent']}, {fleet['throttled']} throttled",
                "why": "shared quota",
            }
        )
    return {
        "policy": policy.name,
        "calls": len(calls),
        "successes": outcomes.get("ok", 0),
        "failures_by_error": {k: v for k, v in outcomes.items() if k != "ok"},
        "matched_expectation": sum(1 for c in calls if c.matched),
        "mismatches": [
            {
                "index": c.index,
                "kind": c.kind,
                "expected": c.expected,
                "got": c.outcome,
                "why": c.why,
            }
            for c in calls
            if not c.matched
        ],
        "attempts_per_call": round(total_attempts / max(len(calls), 1), 3),
        # What the service saw: every connection and REST request, per call the caller made.
        "retry_amplification": round(_gateway_attempts(sim) / max(len(calls), 1), 3),
        "token_refreshes": recorder.count("token_refreshed"),
        "provider_calls": extra.get("provider_calls"),
        "throttled_attempts": sim.get("throttled", 0) if isinstance(sim, dict) else 0,
        "latency_s": {
            "p50": round(_percentile(latencies, 0.5), 3),
            "p95": round(_percentile(latencies, 0.95), 3),
            "mean": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        },
        "by_code": by_code,
        "fleet": extra.get("fleet"),
        "stream": recorder.stream or None,
        "simulator": sim,
    }


def table(data: dict[str, Any]) -> str:
    """The summary as aligned text."""
    lines = [
        f"policy {data['policy']!r}",
        f"calls                 {data['calls']}",
        f"successes             {data['successes']}",
    ]
    for error, count in sorted(data["failures_by_error"].items()):
        lines.append(f"  {error:20}{count}")
    lines += [
        f"attempts per call     {data['attempts_per_call']}",
        f"retry amplification   {data['retry_amplification']}x (requests the gateway saw per call)",
        f"token refreshes       {data['token_refreshes']}",
        f"throttled attempts    {data['throttled_attempts']}",
        f"latency p50 / p95     {data['latency_s']['p50']} s / {data['latency_s']['p95']} s",
        "",
        f"{'code':<22}{'failed attempts':>16}  {'action':<14} outcome",
    ]
    for code, row in data["by_code"].items():
        lines.append(f"{code:<22}{row['count']:>16}  {row['action']:<14} {row['outcome']}")
    stream = data.get("stream")
    if stream:
        lines += [
            "",
            f"real-time stream: {stream['sentences_delivered']}/{stream['sentences_expected']} "
            f"sentences, identical to the audio's: {'yes' if stream['identical'] else 'NO'}; "
            f"{stream['reconnects']} reconnects, {stream['replayed_seconds']:.1f} s replayed, "
            f"{stream['duplicates_dropped']} duplicates dropped, peak buffer "
            f"{stream['peak_buffer_seconds']:.1f} s",
        ]
    fleet = data.get("fleet")
    if fleet:
        lines += [
            "",
            f"fleet: {fleet['workers']} worker processes x concurrency "
            f"{fleet['concurrency_per_worker']}, {fleet['calls']} calls, one account quota "
            f"{fleet['quota']} shared through Redis: peak {fleet['max_concurrent']} connections, "
            f"{fleet['throttled']} throttled",
        ]
    lines.append("")
    verdict = "every call ended as the scenario says" if not data["mismatches"] else "MISMATCHES:"
    lines.append(f"{data['matched_expectation']}/{data['calls']} calls as expected: {verdict}")
    for m in data["mismatches"]:
        where = f"call {m['index']} ({m['kind']}, {m['why']})"
        lines.append(f"  {where}: expected {m['expected']}, got {m['got']}")
    return "\n".join(lines)

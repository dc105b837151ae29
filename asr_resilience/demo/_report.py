"""The demo's summary: a table for people, a JSON object for machines.

Figures come from two sides that must agree: the gateway's own counters (every request it
received, every TaskFailed it answered, every connection it dropped) and what the clients
recorded (calls, attempts, the events of the resilience machinery). The run has two parts —
``chaos`` (this process's clients) and ``fleet`` (worker processes sharing a quota through
Redis) — and every count is given per part, the parts summing to the totals.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._columns import columns
from .._failure import Failure, TransportKind
from ..policy import Policy
from ._record import CallRecord, Recorder

DROPS: dict[str, TransportKind] = {"close": "abnormal_close", "reset": "reset"}
"""Injected faults that drop a connection without a TaskFailed, and the transport failure a
client sees for each (a TCP close without a close frame is an abnormal close)."""
PARTS = ("chaos", "fleet")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _requests(sim: Mapping[str, Any]) -> int:
    """Requests the gateway received: WebSocket handshakes and REST requests."""
    return int(sim.get("connections", 0)) + int(sim.get("rest_requests", 0))


def _failures(sim: Mapping[str, Any]) -> Counter[str]:
    """Failed attempts the gateway saw: TaskFailed answers by code, drops as ``drop:ACTION``."""
    found: Counter[str] = Counter({str(code): n for code, n in sim.get("failed", {}).items()})
    for action in DROPS:
        if sim.get("faults", {}).get(action):
            found[f"drop:{action}"] = sim["faults"][action]
    return found


def _part(
    calls: Sequence[CallRecord], before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, Any]:
    """One part's figures: its calls, and what the gateway saw between two snapshots."""
    attempts = sum(c.attempts for c in calls)
    requests = _requests(after) - _requests(before)
    failed = _failures(after)
    failed.subtract(_failures(before))
    return {
        "calls": len(calls),
        "successes": sum(1 for c in calls if c.outcome == "ok"),
        "first_try": sum(1 for c in calls if c.outcome == "ok" and c.attempts == 1),
        "failures_by_error": dict(
            sorted(Counter(c.outcome for c in calls if c.outcome != "ok").items())
        ),
        "attempts": attempts,
        "attempts_per_call": round(attempts / max(len(calls), 1), 3),
        "gateway_requests": requests,
        # What the service saw per call the caller made: the load retries add.
        "retry_amplification": round(requests / max(len(calls), 1), 3),
        "failed_attempts": {k: v for k, v in sorted(failed.items()) if v},
    }


def _action(policy: Policy, key: str) -> str:
    if key.startswith("drop:"):
        failure = Failure(transport=DROPS[key[len("drop:") :]])
        return str(policy.decide(failure).action)
    return str(policy.decide_code(int(key)).action)


def _by_code(
    parts: Mapping[str, dict[str, Any]],
    calls: Iterable[CallRecord],
    seen: Counter[int | str],
    policy: Policy,
) -> dict[str, dict[str, Any]]:
    """Per code: failed attempts the gateway saw (per part and in all), what the chaos part's
    clients saw, the policy's action, and how many calls it ended."""
    keys = sorted({k for part in parts.values() for k in part["failed_attempts"]})
    ended = Counter(str(c.code) for c in calls if c.outcome != "ok" and c.code is not None)
    rows: dict[str, dict[str, Any]] = {}
    for key in keys:
        per_part = {name: part["failed_attempts"].get(key, 0) for name, part in parts.items()}
        count = sum(per_part.values())
        raised = ended.get(key, 0)
        if raised == 0:
            outcome = "recovered"
        elif raised == count:
            outcome = "raised to the caller"
        else:
            outcome = f"{raised} raised, {count - raised} recovered"
        rows[key] = {
            "count": count,
            **per_part,
            "seen_by_clients": seen.get(int(key), 0) if key.isdigit() else None,
            "action": _action(policy, key),
            "raised": raised,
            "outcome": outcome,
        }
    return rows


def summary(recorder: Recorder, extra: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Everything the demo reports, as plain data."""
    calls = recorder.calls
    sim: dict[str, Any] = extra.get("simulator", {})
    chaos_sim: dict[str, Any] = extra.get("chaos_simulator", sim)
    by_part = {name: [c for c in calls if c.part == name] for name in PARTS}
    parts = {"chaos": _part(by_part["chaos"], {}, chaos_sim)}
    fleet = extra.get("fleet")
    if fleet is not None:
        parts["fleet"] = _part(by_part["fleet"], chaos_sim, sim)
    seen = recorder.failed_attempts()
    attempts = [c.attempts for c in calls]
    latencies = [c.latency for c in calls]
    outcomes = Counter(c.outcome for c in calls)
    mismatches = [
        {"index": c.index, "kind": c.kind, "expected": c.expected, "got": c.outcome, "why": c.why}
        for c in calls
        if not c.matched
    ]
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
        "failures_by_error": {k: v for k, v in sorted(outcomes.items()) if k != "ok"},
        "matched_expectation": sum(1 for c in calls if c.matched),
        "mismatches": mismatches,
        "attempts": sum(attempts),
        "attempts_per_call": round(sum(attempts) / max(len(calls), 1), 3),
        "gateway_requests": _requests(sim),
        "retry_amplification": round(_requests(sim) / max(len(calls), 1), 3),
        "parts": parts,
        "fleet_skipped": extra.get("fleet_skipped"),
        # A token manager's first fetch is not a refresh.
        "token_refreshes": recorder.count("token_refreshed")
        - recorder.count("token_refreshed", initial=True),
        "provider_calls": extra.get("provider_calls"),
        "throttled_attempts": sim.get("throttled", 0),
        "latency_s": {
            "p50": round(_percentile(latencies, 0.5), 3),
            "p95": round(_percentile(latencies, 0.95), 3),
            "mean": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        },
        "by_code": _by_code(parts, calls, seen, policy),
        "transport_failures_seen_by_clients": sum(
            n for k, n in seen.items() if isinstance(k, str) and k.startswith("transport:")
        ),
        "fleet": fleet,
        "stream": recorder.stream or None,
        "simulator": sim,
    }


def table(data: dict[str, Any]) -> str:
    """The summary as aligned text."""
    parts: dict[str, dict[str, Any]] = data["parts"]
    names = list(parts)
    lines = [f"policy {data['policy']!r}", ""]
    figures: list[list[object]] = [
        ["calls", *(parts[n]["calls"] for n in names), data["calls"]],
        ["successes", *(parts[n]["successes"] for n in names), data["successes"]],
        [
            "  at the first try",
            *(parts[n]["first_try"] for n in names),
            sum(parts[n]["first_try"] for n in names),
        ],
    ]
    for error, count in data["failures_by_error"].items():
        figures.append(
            [f"  {error}", *(parts[n]["failures_by_error"].get(error, 0) for n in names), count]
        )
    figures += [
        ["attempts", *(parts[n]["attempts"] for n in names), data["attempts"]],
        [
            "attempts per call",
            *(parts[n]["attempts_per_call"] for n in names),
            data["attempts_per_call"],
        ],
        [
            "requests the gateway saw",
            *(parts[n]["gateway_requests"] for n in names),
            data["gateway_requests"],
        ],
        [
            "retry amplification",
            *(f"{parts[n]['retry_amplification']}x" for n in names),
            f"{data['retry_amplification']}x",
        ],
    ]
    lines += columns(["", *names, "total"], figures, right=set(range(1, len(names) + 2)))
    lines += [
        "",
        f"token refreshes {data['token_refreshes']}, throttled attempts "
        f"{data['throttled_attempts']}, latency p50 / p95 {data['latency_s']['p50']} s / "
        f"{data['latency_s']['p95']} s",
        "",
        "failed attempts the gateway answered (TaskFailed) or dropped, by code:",
    ]
    rows = [
        [code, *(row.get(n, 0) for n in names), row["count"], row["action"], row["outcome"]]
        for code, row in data["by_code"].items()
    ]
    lines += columns(
        ["code", *names, "total", "action", "outcome"], rows, right=set(range(1, len(names) + 2))
    )
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
    elif data.get("fleet_skipped"):
        lines += ["", f"fleet part skipped: {data['fleet_skipped']}"]
    lines.append("")
    verdict = "every call ended as the scenario says" if not data["mismatches"] else "MISMATCHES:"
    lines.append(f"{data['matched_expectation']}/{data['calls']} calls as expected: {verdict}")
    for m in data["mismatches"]:
        where = f"call {m['index']} ({m['kind']}, {m['why']})"
        lines.append(f"  {where}: expected {m['expected']}, got {m['got']}")
    return "\n".join(lines)

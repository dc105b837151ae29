"""Run every benchmark, print a table, write bench/results.json (`make bench`)."""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from . import (
    classify,
    fleet,
    memory,
    outage,
    overhead,
    quota,
    simulator,
    streaming,
    token_storm,
)

RESULTS = Path(__file__).resolve().parent / "results.json"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _quiet() -> None:
    """Benchmarks measure, they do not log: drop events below ERROR."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def _timed(name: str, fn: Callable[[], Any]) -> Any:
    print(f"… {name}", end="", flush=True)
    start = time.perf_counter()
    result = fn()
    print(f"\r✓ {name} ({time.perf_counter() - start:.1f} s)", flush=True)
    return result


def table(results: dict[str, Any]) -> str:
    """The human-readable summary of a results mapping."""
    lines = []
    o = results.get("overhead")
    if o:
        lines.append("overhead (µs per successful call; added by asr_resilience in brackets)")
        for mode, row in o.items():
            cells = "  ".join(f"{k} {v:.2f}" for k, v in row.items())
            lines.append(f"  {mode:5}  {cells}  [+{row['asr_resilience'] - row['bare']:.2f}]")
    q = results.get("quota")
    if q:
        lines.append(
            f"quota (200 calls, concurrency 50, quota 10; limit {q['physical_limit_s']} s)"
        )
        for who in ("asr_resilience", "tenacity"):
            r = q[who]
            lines.append(
                f"  {who:15} completion {r['completion_ratio']:.2f}x  "
                f"throttled/call {r['throttled_per_call']:.3f}"
            )
    moving = results.get("quota_follow")
    if moving:
        lines.append(quota.follow_table(moving))
    out = results.get("outage")
    if out:
        lines.append("outage (2000 calls, 50 callers, 100% 50000000): gateway attempts per call")
        for who in ("asr_resilience", "tenacity"):
            lines.append(f"  {who:15} {out[who]['attempts_per_call']:.3f}")
    rec = results.get("outage_recovery")
    if rec:
        lines.append(
            f"outage recovery (open_for {rec['open_for_s']:g} s): first success "
            f"{rec['first_success_after_s']} s after the end; gateway sessions while open "
            f"{rec['gateway_sessions_while_open']}, probes {rec['probes']}"
        )
    storm = results.get("token_storm")
    if storm:
        lines.append(
            f"token_storm (1000 calls, token revoked): provider calls {storm['provider_calls']}"
        )
    sim = results.get("simulator")
    if sim:
        lines.append(f"simulator: {sim['sessions_per_second']:.0f} one-sentence sessions/s")
    st = results.get("streaming")
    if st:
        lines.append(
            f"streaming (10 min, {st['faults']} faults): {st['sentences_delivered']}/"
            f"{st['sentences_expected']} sentences, {st['duplicates']} duplicates, "
            f"{st['missing']} missing, {st['replayed_seconds']} s replayed, "
            f"peak buffer {st['peak_buffer_seconds']} s"
        )
    f = results.get("fleet")
    if f:
        lines.append(fleet.table(f))
    c = results.get("classify")
    if c:
        lines.append(f"classify: {c['decisions_per_second']:,} code-only decisions/s")
    m = results.get("memory")
    if m:
        lines.append(memory.table(m))
    return "\n".join(lines)


def main() -> int:
    _quiet()
    results: dict[str, Any] = {}
    results["overhead"] = _timed("overhead", overhead.run)
    results["classify"] = _timed("classify", classify.run)
    results["quota"] = _timed("quota", quota.run)
    results["quota_follow"] = _timed("quota_follow", quota.follow)
    results["outage"] = _timed("outage", outage.run)
    results["outage_recovery"] = _timed("outage_recovery", outage.recovery)
    results["token_storm"] = _timed("token_storm", token_storm.run)
    results["simulator"] = _timed("simulator", simulator.run)
    results["streaming"] = _timed("streaming", streaming.run)
    results["memory"] = _timed("memory", memory.run)
    if _redis_answers():
        results["fleet"] = _timed("fleet", fleet.run)
    else:
        print("- fleet skipped: no Redis at 127.0.0.1:6379 (start one to measure the fleet)")
    results["machine"] = machine()
    print()
    print(table(results))
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

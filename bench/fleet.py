"""Fleet benchmarks on a real Redis (``python -m bench.fleet``; ``bench.run`` reports ``fleet``).

* :func:`fleet_quota`: ``PROCESSES`` worker processes x ``CONCURRENCY`` callers, ``CALLS`` one-
  sentence recognitions each, against one simulated account whose quota is ``QUOTA`` and whose
  sessions each hold a slot for ``SERVICE_TIME``. No schedule finishes faster than the physical
  limit ``PROCESSES * CALLS / QUOTA * SERVICE_TIME``. Modes: ``on`` (a fleet limiter told the
  quota), ``adaptive`` (a fleet limiter learning it), ``off`` (each process alone with its own
  adaptive limiter: the 40000005 storm for contrast). Figures: throttled attempts (40000005 the
  simulator answered) per call, and completion (first worker's start to last worker's end) over
  the physical limit.
* :func:`token_storm`: ``processes`` workers x ``calls`` concurrent callers hit an expired shared
  token at once; the number is how many times the provider was called fleet-wide (1 is ideal).
  The provider counts its calls in Redis, so no simulator is needed.
* :func:`killed_worker`: a worker holding every slot of the fleet's quota is SIGKILLed; the
  number is how many seconds pass until another worker holds all those slots again (bounded by
  ``lease_ttl``).

The simulator runs in this process (a :class:`SimulatorThread`); workers are ``spawn`` children
that start together at a barrier and report through a queue.

Redis: ``$ASR_RESILIENCE_REDIS_URL``, else 127.0.0.1:6379. Every key lives under a fresh
``asr-bench:<uuid>:`` prefix and is deleted afterwards; nothing is flushed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import redis
import structlog

from asr_resilience.fleet import FleetConnection, FleetLimiter, RedisTokenCache
from asr_resilience.simulator import Account, SimulatorConfig, SimulatorThread
from asr_resilience.tokens import Token

from .fleet_worker import WorkerReport, work

REDIS_URL = os.environ.get("ASR_RESILIENCE_REDIS_URL", "redis://127.0.0.1:6379/0")
_SPAWN = multiprocessing.get_context("spawn")

PROCESSES = 4
CALLS = 200
CONCURRENCY = 50
QUOTA = 10
SERVICE_TIME = 0.2
LEASE_TTL = 5.0
APPKEY = "fleet-bench-appkey"

Mode = Literal["on", "adaptive", "off"]


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class _CountingProvider:
    """CreateToken stand-in: 50 ms per call, every call counted in Redis (fleet-wide)."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._key = f"{prefix}provider_calls"

    def __call__(self) -> Token:
        number = int(self._client.incr(self._key))
        time.sleep(0.05)
        return Token(f"bench-token-{number:04d}-{uuid.uuid4().hex[:8]}", time.time() + 3600)


def _storm_worker(url: str, prefix: str, calls: int, ready: Any, start: Any) -> None:
    _quiet()
    connection = FleetConnection.from_url(url)
    cache = RedisTokenCache(
        _CountingProvider(url, prefix), connection=connection, key_prefix=prefix, name="bench"
    )

    async def storm() -> None:
        await asyncio.gather(*(cache.get() for _ in range(calls)))

    ready.set()
    start.wait(60)
    asyncio.run(storm())
    connection.close()


def token_storm(processes: int = 4, calls: int = 250, url: str = REDIS_URL) -> int:
    """Provider calls when ``processes`` x ``calls`` concurrent callers meet an expired token."""
    prefix = f"asr-bench:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        # The fleet's token has just expired: still in Redis, but past its expiry.
        past = time.time() - 1
        client.hset(
            f"{prefix}token:{{default}}",
            mapping={"value": "bench-expired-token", "expires_at": past, "issued_at": past - 3600},
        )
        start = _SPAWN.Event()
        readies = [_SPAWN.Event() for _ in range(processes)]
        workers = [
            _SPAWN.Process(target=_storm_worker, args=(url, prefix, calls, ready, start))
            for ready in readies
        ]
        for worker in workers:
            worker.start()
        for ready in readies:
            ready.wait(60)
        start.set()
        for worker in workers:
            worker.join(120)
        return int(client.get(f"{prefix}provider_calls") or 0)
    finally:
        client.close()
        _cleanup(url, prefix)


def _holder(url: str, prefix: str, quota: int, lease_ttl: float, holding: Any) -> None:
    _quiet()
    connection = FleetConnection.from_url(url)
    limiter = FleetLimiter(
        connection, f"{prefix}limiter:{{bench}}", quota=quota, lease_ttl=lease_ttl
    )
    permits = [limiter.acquire_sync(timeout=30) for _ in range(quota)]
    if all(permit is not None for permit in permits):
        holding.set()
    threading.Event().wait()  # hold (and renew) until killed


def killed_worker(lease_ttl: float = 1.0, quota: int = 4, url: str = REDIS_URL) -> float:
    """Seconds until a SIGKILLed worker's ``quota`` slots are all held by another worker."""
    prefix = f"asr-bench:{uuid.uuid4().hex}:"
    holding = _SPAWN.Event()
    worker = _SPAWN.Process(target=_holder, args=(url, prefix, quota, lease_ttl, holding))
    worker.start()
    connection = FleetConnection.from_url(url)
    limiter = FleetLimiter(
        connection, f"{prefix}limiter:{{bench}}", quota=quota, lease_ttl=lease_ttl
    )
    try:
        if not holding.wait(60):
            raise RuntimeError("the worker never took its slots")
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
        killed = time.monotonic()
        permits = [limiter.acquire_sync(timeout=lease_ttl * 3 + 5) for _ in range(quota)]
        back_after = time.monotonic() - killed
        if any(permit is None for permit in permits):
            raise RuntimeError("the killed worker's slots did not come back")
        for permit in permits:
            if permit is not None:
                permit.release("dropped")
        return back_after
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
        limiter.close()
        connection.close()
        _cleanup(url, prefix)


def _policy_file(mode: Mode, url: str, prefix: str, quota: int, lease_ttl: float) -> Path:
    """The workers' policy: the default plus a fleet limiter (``on``, ``adaptive``) or not."""
    if mode == "off":
        body = "concurrency: {adaptive: true}\n"
    else:
        told = f", quota: {quota}" if mode == "on" else ""
        body = (
            f"fleet: {{enabled: true, redis_url: '{url}', key_prefix: '{prefix}'{told}, "
            f"lease_ttl: {lease_ttl}}}\n"
        )
    folder = Path(tempfile.mkdtemp(prefix="asr-bench-fleet-"))
    path = folder / f"fleet-{mode}.yaml"
    path.write_text(
        f"version: 1\nextends: default\nname: bench-fleet-{mode}\n{body}", encoding="utf-8"
    )
    return path


def _collect(reports: Any, barrier: Any, workers: list[Any], timeout: float) -> list[WorkerReport]:
    """Every worker's report; a worker that failed breaks the barrier so no other one hangs."""
    collected: dict[int, WorkerReport] = {}
    deadline = time.monotonic() + timeout
    grace = 0  # empty polls since a worker exited without its report
    while len(collected) < len(workers):
        try:
            report: WorkerReport = reports.get(timeout=1.0)
        except queue.Empty:
            gone = [
                w.name
                for i, w in enumerate(workers)
                if w.exitcode is not None and w.exitcode != 0 and i not in collected
            ]
            grace = grace + 1 if gone else 0
            if grace > 2 or time.monotonic() > deadline:
                barrier.abort()
                why = f"exited without a report: {', '.join(gone)}" if gone else "too slow"
                raise RuntimeError(f"the fleet workers failed ({why})") from None
            continue
        if report["error"]:
            barrier.abort()
            raise RuntimeError(f"fleet worker {report['index']} failed:\n{report['error']}")
        collected[report["index"]] = report
    return list(collected.values())


def fleet_quota(
    mode: Mode,
    processes: int = PROCESSES,
    calls: int = CALLS,
    concurrency: int = CONCURRENCY,
    quota: int = QUOTA,
    service_time: float = SERVICE_TIME,
    lease_ttl: float = LEASE_TTL,
    url: str = REDIS_URL,
) -> dict[str, Any]:
    """``processes`` workers x ``calls`` calls at ``concurrency`` against one account's quota."""
    prefix = f"asr-bench:{uuid.uuid4().hex}:"
    account = Account(name="fleet-bench", appkeys=(APPKEY,), quota=quota)
    path = _policy_file(mode, url, prefix, quota, lease_ttl)
    try:
        with SimulatorThread(
            accounts=[account], config=SimulatorConfig(service_time=service_time)
        ) as sim:
            token = sim.token()
            barrier = _SPAWN.Barrier(processes)
            reports = _SPAWN.Queue()
            workers = [
                _SPAWN.Process(
                    target=work,
                    args=(
                        index,
                        sim.gateway_url,
                        APPKEY,
                        token,
                        str(path),
                        calls,
                        concurrency,
                        barrier,
                        reports,
                    ),
                    name=f"fleet-bench-{mode}-{index}",
                )
                for index in range(processes)
            ]
            for worker in workers:
                worker.start()
            try:
                done = _collect(reports, barrier, workers, timeout=300)
            finally:
                for worker in workers:
                    worker.join(30)
                    if worker.is_alive():
                        worker.kill()
                        worker.join()
            stats = sim.stats.snapshot()
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
        _cleanup(url, prefix)
    total = processes * calls
    limit = total / quota * service_time
    elapsed = max(r["ended"] for r in done) - min(r["started"] for r in done)
    failed: Counter[str] = Counter()
    for r in done:
        failed.update(r["failed"])
    ok = sum(r["ok"] for r in done)
    return {
        "throttled_per_call": round(stats["throttled"] / total, 3),
        "completion_ratio": round(elapsed / limit, 3),
        "completion_s": round(elapsed, 3),
        "physical_limit_s": round(limit, 3),
        "calls": total,
        "failed_calls": total - ok,
        "failures": dict(failed),
        "attempts_per_success": round(sum(r["attempts"] for r in done) / ok, 3) if ok else None,
        "max_concurrent": stats["max_concurrent"].get(account.name, 0),
        "lost_leases": sum(r["lost_leases"] for r in done),
        "start_skew_s": round(max(r["started"] for r in done) - min(r["started"] for r in done), 3),
    }


def run() -> dict[str, Any]:
    """Every fleet figure, as ``bench.run`` reports them under ``fleet``."""
    _quiet()
    results: dict[str, Any] = {}
    for mode in ("on", "adaptive", "off"):
        results[mode] = fleet_quota(mode)
    results["token_provider_calls"] = token_storm(PROCESSES, 250)
    results["killed_worker_recovery_s"] = round(killed_worker(LEASE_TTL, QUOTA), 3)
    results["lease_ttl_s"] = LEASE_TTL
    return results


def table(results: dict[str, Any]) -> str:
    """The human-readable summary of :func:`run`'s figures."""
    on = results["on"]
    lines = [
        f"fleet ({PROCESSES} processes x {CALLS} calls, concurrency {CONCURRENCY}, "
        f"quota {QUOTA}, service {SERVICE_TIME}s; limit {on['physical_limit_s']} s)"
    ]
    labels = {"on": "fleet, quota 10", "adaptive": "fleet, adaptive", "off": "each process alone"}
    for mode, label in labels.items():
        r = results[mode]
        lines.append(
            f"  {label:19} completion {r['completion_ratio']:.2f}x ({r['completion_s']:.1f} s)  "
            f"throttled/call {r['throttled_per_call']:.3f}  failed {r['failed_calls']}  "
            f"peak {r['max_concurrent']}"
        )
    lines.append(
        f"  token storm ({PROCESSES} x 250 callers, expired token): "
        f"provider calls {results['token_provider_calls']}"
    )
    lines.append(
        f"  killed worker: slots back after {results['killed_worker_recovery_s']:.2f} s "
        f"(lease_ttl {results['lease_ttl_s']:g} s)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))

"""One worker process of the fleet quota benchmark (:func:`bench.fleet.fleet_quota`).

Lives in its own module so that a ``spawn`` child imports only what it needs. The worker loads
its policy, builds its Recognizer and its scope (the FleetLimiter and its Redis connection, or the
local adaptive limiter), says it is ready, waits for the common start, runs ``calls``
recognitions at ``concurrency``, and puts one :class:`WorkerReport` mapping on the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter
from typing import Any, TypedDict

import structlog

import asr_resilience as ar
from asr_resilience.limits import get_scope, reset_scopes

from .common import tone_audio


class WorkerReport(TypedDict):
    """What one worker tells the parent (plain data: it crosses a process boundary)."""

    index: int
    started: float  # time.time() when the calls were issued (after the common start)
    ended: float  # time.time() when the last call ended
    ok: int
    failed: dict[str, int]  # exception type (and vendor code of its cause) -> calls
    attempts: int  # attempts of the successful calls, the first included
    lost_leases: int  # fleet leases that expired while held (0 without a fleet)
    error: str  # a crash of the worker itself ("" when it ran)


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _label(exc: BaseException) -> str:
    cause = exc.__cause__
    code = getattr(cause, "code", None)
    return f"{type(exc).__name__}:{code}" if code is not None else type(exc).__name__


async def _calls(
    recognizer: ar.Recognizer, calls: int, concurrency: int, report: WorkerReport
) -> None:
    audio = tone_audio(300)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> ar.clients.Recognition:
        async with gate:
            return await recognizer.recognize(audio)

    report["started"] = time.time()
    results = await asyncio.gather(*(one() for _ in range(calls)), return_exceptions=True)
    report["ended"] = time.time()
    failed: Counter[str] = Counter()
    ok = attempts = 0
    for result in results:
        if isinstance(result, BaseException):
            failed[_label(result)] += 1
        else:
            ok += 1
            attempts += result.attempts
    report["ok"], report["failed"], report["attempts"] = ok, dict(failed), attempts


def work(
    index: int,
    gateway_url: str,
    appkey: str,
    token: str,
    policy_path: str,
    calls: int,
    concurrency: int,
    barrier: Any,
    reports: Any,
) -> None:
    """The body of one worker process (a ``multiprocessing`` target)."""
    _quiet()
    report = WorkerReport(
        index=index,
        started=0.0,
        ended=0.0,
        ok=0,
        failed={},
        attempts=0,
        lost_leases=0,
        error="",
    )
    fleet_stats = None
    try:
        policy = ar.load_policy(policy_path)
        recognizer = ar.Recognizer(gateway_url, appkey, token, policy, scope=appkey)
        # Build the scope now (the Recognizer would on its first call), so that connecting to
        # Redis and loading the modules happen before the common start, not inside the figure.
        limiter = get_scope(appkey, policy).limiter
        fleet_stats = getattr(limiter, "fleet_stats", None)
        if fleet_stats is not None:
            fleet_stats()  # one round trip: the connection is open
        barrier.wait(120)
        asyncio.run(_calls(recognizer, calls, concurrency, report))
        stats = getattr(limiter, "stats", None)
        if stats is not None:
            report["lost_leases"] = int(stats().get("lost_leases", 0))
    except BaseException:
        report["error"] = traceback.format_exc()
        raise
    finally:
        reports.put(report)
        # Give the fleet's leases back and leave its queue before the process ends.
        reset_scopes()
        if fleet_stats is not None:
            from asr_resilience.fleet import close_shared_connections

            close_shared_connections()

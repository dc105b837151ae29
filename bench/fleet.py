"""Fleet benchmarks on a real Redis (``python -m bench.fleet``; not yet part of ``bench.run``).

* :func:`token_storm`: ``processes`` workers x ``calls`` concurrent callers hit an expired shared
  token at once; the number is how many times the provider was called fleet-wide (1 is ideal).
  The provider counts its calls in Redis, so no simulator is needed.
* :func:`killed_worker`: a worker holding every slot of the fleet's quota is SIGKILLed; the
  number is how many seconds pass until another worker holds all those slots again (bounded by
  ``lease_ttl``).

Redis: ``$ASR_RESILIENCE_REDIS_URL``, else 127.0.0.1:6379. Every key lives under a fresh
``asr-bench:<uuid>:`` prefix and is deleted afterwards; nothing is flushed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from typing import Any

import redis
import structlog

from asr_resilience.fleet import FleetConnection, FleetLimiter, RedisTokenCache
from asr_resilience.tokens import Token

REDIS_URL = os.environ.get("ASR_RESILIENCE_REDIS_URL", "redis://127.0.0.1:6379/0")
_SPAWN = multiprocessing.get_context("spawn")


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
        _CountingProvider(url, prefix), connection=connection, key_prefix=prefix
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


def run() -> dict[str, Any]:
    """Both benchmarks, as bench.run reports them."""
    _quiet()
    return {
        "token_storm": {"processes": 4, "calls": 250, "provider_calls": token_storm(4, 250)},
        "killed_worker": {str(ttl): round(killed_worker(ttl), 3) for ttl in (0.5, 1.0, 2.0)},
    }


if __name__ == "__main__":
    results = run()
    storm = results["token_storm"]
    print(
        f"token_storm: {storm['processes']} processes x {storm['calls']} callers -> "
        f"{storm['provider_calls']} provider call(s)"
    )
    for ttl, seconds in results["killed_worker"].items():
        print(f"killed_worker: lease_ttl {ttl}s -> slots back after {seconds:.3f}s")

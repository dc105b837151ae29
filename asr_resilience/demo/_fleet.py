"""The demo's fleet part (when Redis answers): worker processes sharing one account's quota.

Three worker processes, each with more concurrency than the whole account allows, run under a
policy whose ``fleet:`` section names the quota; the Redis leases keep the fleet at the quota,
so the vendor never has to answer 40000005.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import multiprocessing
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

APPKEY = "fleet-appkey"
QUOTA = 4
WORKERS = 3
CALLS = 12
CONCURRENCY = 8
REDIS_ENV = "ASR_RESILIENCE_REDIS_URL"


def redis_url() -> str | None:
    """The Redis the demo may use: ``$ASR_RESILIENCE_REDIS_URL``, else a local one that answers;
    None without one, or without redis-py (the fleet part is then skipped)."""
    if importlib.util.find_spec("redis") is None:
        return None
    url = os.environ.get(REDIS_ENV)
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3):
            return "redis://127.0.0.1:6379/0"
    except OSError:
        return None


def _policy(url: str, prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="asr-demo-fleet-"))
    path = folder / "fleet.yaml"
    path.write_text(
        "version: 1\nextends: default\nname: demo-fleet\n"
        f"fleet: {{enabled: true, redis_url: '{url}', key_prefix: '{prefix}', quota: {QUOTA}, "
        "lease_ttl: 5s}\n",
        encoding="utf-8",
    )
    return path


def _worker(
    gateway: str, token: str, policy_path: str, audio: bytes
) -> list[tuple[str, int, float, float]]:
    """One worker process: CALLS recognitions at CONCURRENCY; (outcome, attempts, start, end)."""
    import structlog

    import asr_resilience as ar

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    policy = ar.load_policy(policy_path)
    recognizer = ar.Recognizer(gateway, APPKEY, token, policy, scope=APPKEY)

    async def main() -> list[tuple[str, int, float, float]]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> tuple[str, int, float, float]:
            async with gate:
                start = time.time()
                try:
                    result = await recognizer.recognize(audio)
                    return ("ok", result.attempts, start, time.time())
                except ar.ResilienceError as exc:
                    return (type(exc).__name__, len(exc.attempts), start, time.time())

        return list(await asyncio.gather(*(one() for _ in range(CALLS))))

    try:
        return asyncio.run(main())
    finally:
        from asr_resilience.limits import reset_scopes

        reset_scopes()  # gives the leases back


async def run(gateway: str, token: str, url: str, audio: bytes) -> dict[str, Any]:
    """Run the workers; their records, with wall-clock times."""
    prefix = f"asr-demo:{uuid.uuid4().hex}:"
    path = _policy(url, prefix)
    context = multiprocessing.get_context("spawn")
    try:
        with context.Pool(WORKERS) as pool:
            pending = pool.starmap_async(_worker, [(gateway, token, str(path), audio)] * WORKERS)
            results = await asyncio.to_thread(pending.get, 120)
    finally:
        _cleanup(url, prefix)
    return {"workers": WORKERS, "records": [r for worker in results for r in worker]}


def _cleanup(url: str, prefix: str) -> None:
    """Delete the demo's keys (SCAN + DEL: on a cluster, redis-py scans every node)."""
    from ..fleet import FleetConnection, FleetUnavailable

    def delete(client: Any) -> None:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)

    connection = FleetConnection.from_url(url)
    try:
        connection.run(delete)
    except FleetUnavailable:
        pass  # every key the demo wrote has a TTL or was released
    finally:
        connection.close()

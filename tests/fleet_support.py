"""Helpers for the fleet tests: Redis servers, per-test key prefixes, events, worker processes.

The shared server (127.0.0.1:6379, or ``ASR_RESILIENCE_TEST_REDIS_URL``) is used by other
people and by CI at the same time: every test writes under its own prefix and deletes it after;
nothing here ever flushes a database. A test that needs Redis skips on a machine without it,
but fails under CI (``CI`` set), where a missing server is a broken setup, not a reason to skip.

Worker functions for :func:`spawn` live here, at module level, so a ``spawn`` child can import
them; they report back through multiprocessing queues and events, never through timing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any, NoReturn

import pytest

SHARED_URL = os.environ.get("ASR_RESILIENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONTEXT = multiprocessing.get_context("spawn")
CALL_ROUND_TRIPS = 10
"""What a simulated vendor call does while it holds a slot: Redis round trips, not a sleep, so
that callers overlap the way real calls do."""


def unavailable(reason: str) -> NoReturn:
    """Skip on a user's machine; fail under CI, where Redis is part of the setup."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the fleet tests must run)")
    pytest.skip(f"{reason}; start one (or set ASR_RESILIENCE_TEST_REDIS_URL) to run this test")


def require_redis_py() -> None:
    """Skip the calling test module when redis-py is missing (under CI: fail, it must be there)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(
            "redis-py is not installed: pip install 'asr-resilience[redis]'",
            allow_module_level=True,
        )


def _ping(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` (Redis state, a thread's progress) until it holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(pause)
        pause = min(0.05, pause * 2)


# -- fixtures (bound with pytest.fixture(...) in each test module) -------------------------------


def redis_url() -> Iterator[str]:
    """The shared Redis server's URL; skips (or fails under CI) when it does not answer."""
    if not _ping(SHARED_URL):
        unavailable(f"no Redis server answers at {SHARED_URL}")
    yield SHARED_URL


def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    value = f"asr-test:{uuid.uuid4().hex}:"
    yield value
    delete_prefix(redis_url, value)


def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port, to kill and restart at will."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not on PATH")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def events() -> Iterator[list[str]]:
    """The names of the asr_resilience events emitted during the test, in order."""
    from asr_resilience.observe import Event, add_hook

    seen: list[str] = []
    lock = threading.Lock()

    def hook(event: Event) -> None:
        with lock:
            seen.append(event.name)

    remove = add_hook(hook)
    yield seen
    remove()


def delete_prefix(url: str, key_prefix: str) -> None:
    """Delete every key under ``key_prefix`` (SCAN + DEL: never a flush)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    """A TCP port nobody listens on (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server --port N --save "" --appendonly no``, as a subprocess on a fixed port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _ping(self.url), timeout=10.0, what=f"redis-server on {self.port}")

    def kill(self) -> None:
        """SIGKILL the server (its data is gone: nothing is saved)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """Kill the server if it runs."""
        self.kill()


# -- worker processes -------------------------------------------------------------------------


def spawn(target: Callable[..., None], *args: Any) -> SpawnProcess:
    """Start ``target(*args)`` in a fresh interpreter (spawn: no inherited threads or sockets)."""
    process = CONTEXT.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def join_all(processes: list[SpawnProcess], timeout: float = 30.0) -> None:
    """Join every process; fail (after killing the rest) if one hangs or exits non-zero."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in processes if p.is_alive()]
    for process in hung:
        process.kill()
        process.join()
    assert not hung, f"{len(hung)} worker process(es) hung"
    codes = [p.exitcode for p in processes]
    assert codes == [0] * len(processes), f"worker exit codes: {codes}"


def kill(process: SpawnProcess) -> None:
    """SIGKILL a worker: no cleanup runs, as when a machine dies."""
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join()


def _quiet() -> None:
    """Keep the children's event logs out of the test output."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


_MAX_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], n)
end
return n
"""


def contend(
    url: str,
    key_prefix: str,
    quota: int,
    threads: int,
    rounds: int,
    start: Any,
    results: Any,
    name: str,
) -> None:
    """``threads`` threads each take a fleet slot ``rounds`` times and record the high water."""
    _quiet()
    import redis

    from asr_resilience.fleet import FleetConnection, FleetLimiter

    connection = FleetConnection.from_url(url)
    limiter = FleetLimiter(connection, f"{key_prefix}limiter:{{acct}}", quota=quota, lease_ttl=5)
    counter = redis.Redis.from_url(url)
    peak = counter.register_script(_MAX_SCRIPT)
    active, high = f"{key_prefix}active", f"{key_prefix}high"
    granted = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal granted
        for _ in range(rounds):
            permit = limiter.acquire_sync(timeout=20)
            assert permit is not None, "no slot within 20s"
            try:
                peak(keys=[active, high])
                for _ in range(CALL_ROUND_TRIPS):  # the "call": real I/O with the slot held
                    counter.ping()
                counter.decr(active)
            finally:
                permit.release("success")
            with lock:
                granted += 1

    start.wait(30)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    results.put((name, granted))
    limiter.close()
    connection.close()
    counter.close()


def compete(
    url: str,
    key_prefix: str,
    quota: int,
    threads: int,
    ready: Any,
    start: Any,
    stop: Any,
    results: Any,
    name: str,
) -> None:
    """``threads`` threads take and release fleet slots until ``stop``; report the grants.

    Releases ``ready`` once it can compete, then waits for ``start``: a process that spawns
    slowly must not find the race run without it.
    """
    _quiet()
    from asr_resilience.fleet import FleetConnection, FleetLimiter

    connection = FleetConnection.from_url(url)
    limiter = FleetLimiter(connection, f"{key_prefix}limiter:{{acct}}", quota=quota, lease_ttl=5)
    granted = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal granted
        while not stop.is_set():
            permit = limiter.acquire_sync(timeout=0.2)
            if permit is None:
                continue
            for _ in range(CALL_ROUND_TRIPS):  # the "call": real I/O with the slot held
                connection.client.ping()
            permit.release("success")
            with lock:
                granted += 1

    ready.release()
    start.wait(60)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    results.put((name, granted))
    limiter.close()
    connection.close()


def hold_slots(
    url: str, key_prefix: str, quota: int, lease_ttl: float, holding: Any, slots: int
) -> None:
    """Take ``slots`` fleet slots, say so, and hold them until killed."""
    _quiet()
    from asr_resilience.fleet import FleetConnection, FleetLimiter

    connection = FleetConnection.from_url(url)
    limiter = FleetLimiter(
        connection, f"{key_prefix}limiter:{{acct}}", quota=quota, lease_ttl=lease_ttl
    )
    permits = [limiter.acquire_sync(timeout=10) for _ in range(slots)]
    assert all(p is not None for p in permits)
    holding.set()
    threading.Event().wait()  # until SIGKILL: the renewer thread keeps the leases alive


def fetch_tokens(
    url: str, key_prefix: str, callers: int, start: Any, results: Any, expires_in: float
) -> None:
    """``callers`` threads want a token at once from a cold cache; report what they got."""
    _quiet()
    from concurrent.futures import ThreadPoolExecutor

    from asr_resilience.fleet import FleetConnection, RedisTokenCache

    connection = FleetConnection.from_url(url)
    provider = CountingRedisProvider(url, key_prefix, expires_in)
    cache = RedisTokenCache(provider, connection=connection, key_prefix=key_prefix, name="fleet")
    with ThreadPoolExecutor(callers) as pool:
        start.wait(30)
        values = list(pool.map(lambda _: cache.get_sync(), range(callers)))
    results.put((sorted(set(values)), cache.provider_calls))
    provider.close()
    connection.close()


class CountingRedisProvider:
    """A token provider that counts its calls fleet-wide in Redis (``{prefix}provider_calls``).

    It is slow on purpose (50 ms, as a CreateToken round trip), so concurrent refreshes overlap.
    """

    def __init__(self, url: str, key_prefix: str, expires_in: float = 3600.0) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self.key = f"{key_prefix}provider_calls"
        self._expires_in = expires_in

    def __call__(self) -> Any:
        from asr_resilience.tokens import Token

        number = int(self._client.incr(self.key))
        for _ in range(CALL_ROUND_TRIPS):  # CreateToken takes a while: real I/O, not a sleep
            self._client.ping()
        return Token(
            f"fleet-token-{number:04d}-{uuid.uuid4().hex[:6]}", time.time() + self._expires_in
        )

    def calls(self) -> int:
        """Provider calls so far, across every process."""
        return int(self._client.get(self.key) or 0)

    def close(self) -> None:
        """Close its Redis connection."""
        with contextlib.suppress(Exception):
            self._client.close()


def _label(exc: BaseException) -> str:
    """An exception's type, with the vendor code of its cause when it has one."""
    code = getattr(exc.__cause__, "code", None)
    return f"{type(exc).__name__}:{code}" if code is not None else type(exc).__name__


PROGRESS_OK, PROGRESS_FAILED, PROGRESS_LOCAL, PROGRESS_ADMITTING = range(4)
"""Fields of :func:`recognize_until_stopped`'s shared ``progress`` array."""


def recognize_until_stopped(
    gateway_url: str,
    appkey: str,
    token: str,
    policy_path: str,
    audio: bytes,
    callers: int,
    ready: Any,
    stop: Any,
    progress: Any,
    results: Any,
    name: str,
) -> None:
    """``callers`` tasks recognize ``audio`` through one Recognizer, call after call, until
    ``stop``.

    ``progress`` (a shared array, written only here) shows the parent how far it got: calls
    that succeeded, calls that failed, successful calls that ran while the fleet limiter was not
    admitting (local fallback or recovery grace, seen before and after the call), and whether
    the limiter admits fleet work now. The tally goes on ``results`` at the end.
    """
    _quiet()
    import asyncio
    import traceback
    from collections import Counter

    import asr_resilience as ar
    from asr_resilience.fleet import close_shared_connections
    from asr_resilience.limits import get_scope, reset_scopes

    failures: Counter[str] = Counter()
    tally: dict[str, Any] = {"ok": 0, "attempts": 0, "lost_leases": 0, "error": ""}
    try:
        policy = ar.load_policy(policy_path)
        recognizer = ar.Recognizer(gateway_url, appkey, token, policy, scope=appkey)
        limiter: Any = get_scope(appkey, policy).limiter
        limiter.fleet_stats()  # Redis is reached before the parent is told we are ready
        progress[PROGRESS_ADMITTING] = int(limiter.admitting)

        async def caller() -> None:
            while not stop.is_set():
                local_before = not limiter.admitting
                try:
                    result = await recognizer.recognize(audio)
                except Exception as exc:
                    failures[_label(exc)] += 1
                    progress[PROGRESS_FAILED] += 1
                else:
                    tally["ok"] += 1
                    tally["attempts"] += result.attempts
                    progress[PROGRESS_OK] += 1
                    if local_before and not limiter.admitting:
                        progress[PROGRESS_LOCAL] += 1

        async def watch() -> None:
            # Sampled, not set at the end of calls: callers may all be waiting for a slot.
            while not stop.is_set():
                progress[PROGRESS_ADMITTING] = int(limiter.admitting)
                await asyncio.sleep(0.005)

        async def main() -> None:
            await asyncio.gather(watch(), *(caller() for _ in range(callers)))

        ready.set()
        asyncio.run(main())
        tally["lost_leases"] = int(limiter.stats().get("lost_leases", 0))
    except BaseException:
        tally["error"] = traceback.format_exc()
        raise
    finally:
        results.put((name, tally, dict(failures)))
        reset_scopes()  # the leases go back to the fleet
        close_shared_connections()

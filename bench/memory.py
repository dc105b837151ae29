"""Peak memory (RSS) of the bounded paths: a huge REST answer, an event flood, a huge window.

Each scenario runs in a fresh interpreter (``python -m bench.memory SCENARIO`` prints one JSON
object), so its peak RSS is its own: the peak after the scenario, next to the same
interpreter's peak before it started (imports and servers up), both from ``VmHWM``. Not
asserted in the tests: a measurement, reported in README "Performance".

- ``rest``: a server answers 300 MB of chunked body; ``RestRecognizer`` stops at the 1 MiB cap.
- ``flood``: a gateway sends 300 000 events (1000 sentences of 298 partials) while the caller
  does not read; then the caller reads them all.
- ``window``: a retry budget and a circuit breaker with a window of 10^9 s (code may build one;
  a policy stops at 1 h), fed a million calls spread over a simulated month.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

SCENARIOS = ("rest", "flood", "window")


def _peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM (its own address space; ``ru_maxrss`` can carry the
    parent's peak across fork and exec), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- rest ---------------------------------------------------------------------------------------


async def _rest() -> dict[str, Any]:
    from asr_resilience.clients import RestRecognizer
    from asr_resilience.protocol import RemoteProtocolError

    chunk = b"\0" * 65536
    total = 300 * 1024 * 1024
    served = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")]
        await reader.readexactly(int(length[0].split(b":")[1]) if length else 0)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(total // len(chunk)):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        except ConnectionError:
            pass  # the client hung up at its cap: what is measured
        finally:
            writer.close()
            served.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream/v1/asr"
    rec = RestRecognizer(url, "appkey-bench", "token-bench")
    before = _peak_mb()
    start = time.perf_counter()
    outcome = "returned"
    try:
        await rec.recognize(b"\0\0" * 16000)
    except RemoteProtocolError:
        outcome = "RemoteProtocolError"
    elapsed = time.perf_counter() - start
    await served.wait()
    server.close()
    await server.wait_closed()
    return {
        "answer_mb": total // (1024 * 1024),
        "outcome": outcome,
        "seconds": round(elapsed, 3),
        "before_mb": before,
        "peak_mb": _peak_mb(),
    }


# -- flood --------------------------------------------------------------------------------------


async def _flood() -> dict[str, Any]:
    from websockets.asyncio.server import ServerConnection, serve

    from asr_resilience.clients import Transcriber
    from asr_resilience.protocol import Audio, GatewayProtocol
    from asr_resilience.protocol._messages import STOP

    sentences, partials = 1000, 298
    sent = [0]
    flooded = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        gateway = GatewayProtocol()
        gateway.receive(await ws.recv())
        await ws.send(gateway.started())
        for index in range(1, sentences + 1):
            begin = index * 1000
            await ws.send(gateway.sentence_begin(index, begin))
            for p in range(partials):
                text = f"sentence {index} partial {p} " + "字" * 20
                await ws.send(
                    gateway.result_changed({"index": index, "time": begin + p, "result": text})
                )
                sent[0] += 1
            end = {"index": index, "time": begin + 500, "begin_time": begin, "result": f"s{index}"}
            await ws.send(gateway.sentence_end(end))
            sent[0] += 2
        flooded.set()
        async for frame in ws:
            directive = gateway.receive(frame)
            if not isinstance(directive, Audio) and directive.name == STOP[gateway.namespace]:
                await ws.send(gateway.completed())
                return

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/v1"
        before = _peak_mb()
        t = Transcriber(url, "appkey-bench", "token-bench", resume=False)
        async with t:
            # Nobody reads: wait until the gateway cannot send on (its count stops moving).
            last, still = -1, 0
            while still < 10:
                await asyncio.sleep(0.05)
                still = still + 1 if sent[0] == last else 0
                last = sent[0]
            unread = {"events_sent": sent[0], "held": len(t._events), "peak_mb": _peak_mb()}
            ends = 0

            async def read() -> None:
                nonlocal ends
                async for event in t:
                    ends += event.kind == "end"

            reader = asyncio.ensure_future(read())
            await flooded.wait()
            await t.finish()
            await reader
        return {
            "events": sentences * (partials + 2),
            "before_mb": before,
            "unread": unread,
            "sentence_ends_read": ends,
            "coalesced": t.stats.coalesced,
            "peak_queued": t.stats.peak_queued,
            "peak_mb": _peak_mb(),
        }


# -- window -------------------------------------------------------------------------------------


def _window() -> dict[str, Any]:
    from asr_resilience.limits import CircuitBreaker, RetryBudget
    from asr_resilience.policy import CircuitBreakerSettings, RetryBudgetSettings

    window = 1e9
    now = [0.0]
    before = _peak_mb()
    budget = RetryBudget(RetryBudgetSettings(window=window), clock=lambda: now[0])
    breaker = CircuitBreaker(CircuitBreakerSettings(window=window), clock=lambda: now[0])
    month = 30 * 24 * 3600.0
    calls = 1_000_000
    for i in range(calls):
        now[0] = i * month / calls
        budget.deposit()
        breaker.record_success()
    budget.try_withdraw()
    return {
        "window_s": window,
        "buckets": len(budget._ring_a),
        "calls": calls,
        "before_mb": before,
        "peak_mb": _peak_mb(),
    }


def scenario(name: str) -> dict[str, Any]:
    """Run one scenario in this interpreter."""
    if name == "rest":
        return asyncio.run(_rest())
    if name == "flood":
        return asyncio.run(_flood())
    if name == "window":
        return _window()
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def run() -> dict[str, Any]:
    """Every scenario, each in its own interpreter."""
    results: dict[str, Any] = {}
    for name in SCENARIOS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", name],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def table(results: dict[str, Any]) -> str:
    """The memory lines of bench/run.py's summary."""
    r, f, w = results["rest"], results["flood"], results["window"]
    return "\n".join(
        [
            f"memory: {r['answer_mb']} MB REST answer -> {r['outcome']} in {r['seconds']} s, "
            f"peak RSS {r['peak_mb']} MB (before {r['before_mb']} MB)",
            f"memory: {f['events']:,} events unread -> {f['unread']['held']} held, peak RSS "
            f"{f['unread']['peak_mb']} MB; all read: {f['sentence_ends_read']} ends, "
            f"{f['coalesced']:,} partials coalesced, peak RSS {f['peak_mb']} MB "
            f"(before {f['before_mb']} MB)",
            f"memory: window {w['window_s']:g} s in {w['buckets']} buckets, {w['calls']:,} calls "
            f"-> peak RSS {w['peak_mb']} MB (before {w['before_mb']} MB)",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 2:
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        print(json.dumps(scenario(sys.argv[1])))
    else:
        print(table(run()))

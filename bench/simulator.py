"""Throughput of the simulated gateway: one-sentence sessions per second on loopback.

Each session is a full task: handshake, StartRecognition, 1 s of 16 kHz audio sent unpaced in
3200-byte frames, StopRecognition, RecognitionCompleted, close. The simulator and the clients
(``CONCURRENCY`` at a time) share one event loop, so the number is what one core does for both
sides: a lower bound of the simulator's own capacity. (A :class:`SimulatorThread` would measure
less, not more: two busy loops in one interpreter take turns on the GIL.)
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

from asr_resilience.protocol import RECOGNIZER, ClientProtocol, Completed
from asr_resilience.simulator import Account, Simulator

SESSIONS = 1500
CONCURRENCY = 32
FRAME = 3200
RATE = 16000


def _audio() -> bytes:
    """1 s: 600 ms of a 440 Hz tone (amplitude 7000) and 400 ms of silence."""
    voiced = [int(7000 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(RATE * 6 // 10)]
    samples = voiced + [0] * (RATE - len(voiced))
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


async def _session(url: str, token: str, appkey: str, frames: list[bytes]) -> None:
    headers = {"X-NLS-Token": token}
    # proxy=None: no proxy lookup in the environment on every connect (a tenth of the time).
    async with connect(url, additional_headers=headers, compression=None, proxy=None) as ws:
        client = ClientProtocol(RECOGNIZER, appkey)
        await ws.send(client.start())
        client.receive(await ws.recv())
        for frame in frames:
            await ws.send(client.audio(frame))
        await ws.send(client.stop())
        event = client.receive(await ws.recv())
        if not isinstance(event, Completed):
            raise RuntimeError(f"unexpected {event!r}")


async def _drive(url: str, token: str, appkey: str, sessions: int, concurrency: int) -> float:
    audio = _audio()
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    queue = iter(range(sessions))

    async def worker() -> None:
        for _ in queue:
            await _session(url, token, appkey, frames)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _bench(sessions: int, concurrency: int) -> dict[str, Any]:
    async with Simulator(accounts=[Account(quota=concurrency * 2)]) as sim:
        token = sim.token()
        await _drive(sim.gateway_url, token, sim.appkey, concurrency * 2, concurrency)  # warm up
        elapsed = await _drive(sim.gateway_url, token, sim.appkey, sessions, concurrency)
        completed = sim.stats.sessions_completed
    return {
        "sessions_per_second": round(sessions / elapsed),
        "sessions": sessions,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "completed": completed,
    }


def run(sessions: int = SESSIONS, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """Run the benchmark; ``{"sessions_per_second": N, ...}``."""
    return asyncio.run(_bench(sessions, concurrency))


if __name__ == "__main__":
    result = run()
    print(f"simulator: {result['sessions_per_second']:,} one-sentence sessions/s ({result})")
    sys.exit(0)

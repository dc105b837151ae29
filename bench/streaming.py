"""A resumed real-time stream: 10 minutes of speech-like audio through a failing gateway.

The same generated recording (sentences of 1-3 s separated by a second of silence, from the
demo's generator) is transcribed twice against the simulator: once without faults (the
reference), once with the connection cut every 30 s of audio and a 50000000 every 2 minutes.
The second run must deliver every sentence of the first exactly once, with the same text and
times (± 20 ms), with the replay buffer within its bound. How much each fault replays — about one
sentence — depends on how far the sender was ahead of the gateway when it hit, which the
machine's load decides: it is measured here (``max_sentences_replayed``,
``mean_sentences_replayed``), not asserted by the tests.

The fault scenario. The simulator counts audio per task, not per stream, so the faults are
placed per task: every task loses its connection once it has received 30 s of audio — a TCP
close without a close frame, except in every fourth task, which gets a 50000000 TaskFailed
instead (after which the gateway closes the socket too). A resumed task starts at the end of
the last delivered sentence, one to four seconds before the fault, so in stream audio the faults
come about every 28 s and the 50000000 about every 110 s; the measured intervals are reported.

Pace. The audio is sent at ``SPEED`` times real time, so 10 minutes take seconds, and the
replay is unpaced (the simulator sets no pacing limit). Not unpaced: unpaced on loopback the
sender runs tens of seconds of audio ahead of the recognizer (socket buffers), and a cut then
has to replay all of that — correct, but it measures the sockets, not the resume. At 200x the
audio in flight is a few ms, as on a real stream paced at real time. Retry waits are shortened
(5-50 ms, as in the outage benchmark): the question is what is delivered, not how long the
backoff sleeps. Breaker and budget are the default policy's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asr_resilience as ar
from asr_resilience.clients import (
    Reconnected,
    SentenceEvent,
    StreamEvent,
    Transcriber,
    paced,
    split_frames,
)
from asr_resilience.demo._audio import RATE, recording
from asr_resilience.simulator import Fault, Scenario, Simulator

from .common import policy

SECONDS = 600
SPEED = 200
FRAME_MS = 400
FAULT_AFTER_MS = 30_000
CODE_EVERY = 4
TOLERANCE_MS = 20
MAX_BUFFER_SECONDS = 60.0
BYTES_PER_SECOND = 2 * RATE


def scenario(after_ms: int = FAULT_AFTER_MS) -> Scenario:
    """After 30 s of each task's audio a cut; in every fourth task a 50000000 instead."""
    return Scenario(
        [
            # The first fault that selects a task fires: the code wins in every fourth task.
            Fault("code", "audio", code=50000000, after_ms=after_ms, every=CODE_EVERY),
            Fault("close", "audio", after_ms=after_ms),
        ]
    )


async def _stream(
    audio: bytes, faults: Scenario | None, pol: ar.Policy, speed: int
) -> tuple[list[StreamEvent], Transcriber, dict[str, Any], float]:
    async with Simulator(scenario=faults) as sim:
        t = Transcriber(
            sim.gateway_url,
            sim.appkey,
            sim.token(),
            pol,
            scope="bench-streaming",
            replay_speed=None,
            max_buffer_seconds=MAX_BUFFER_SECONDS,
        )
        events: list[StreamEvent] = []
        start = time.perf_counter()
        async with t:

            async def collect() -> None:
                async for event in t:
                    events.append(event)

            collector = asyncio.create_task(collect())
            try:
                frames = paced(split_frames(audio, FRAME_MS * 32), BYTES_PER_SECOND * speed)
                await t.send_all(frames, realtime=False)
                await t.finish()
            finally:
                # The stream's error, if any, is raised by send_all / finish; the collector
                # ends with the same one.
                await asyncio.gather(collector, return_exceptions=True)
        elapsed = time.perf_counter() - start
        return events, t, sim.stats.snapshot(), elapsed


def _matches(a: SentenceEvent, b: SentenceEvent) -> bool:
    return (
        a.text == b.text
        and abs(a.begin_time - b.begin_time) <= TOLERANCE_MS
        and abs(a.end_time - b.end_time) <= TOLERANCE_MS
    )


def compare(expected: list[SentenceEvent], delivered: list[SentenceEvent]) -> dict[str, int]:
    """Each expected sentence against the delivered ones: found once, twice or more, or not."""
    found = [sum(_matches(e, d) for d in delivered) for e in expected]
    unmatched = sum(not any(_matches(e, d) for e in expected) for d in delivered)
    index_errors = sum(d.index != i for i, d in enumerate(delivered, 1))
    return {
        "duplicates": sum(n - 1 for n in found if n > 1),
        "missing": sum(n == 0 for n in found),
        "unexpected": unmatched,
        "index_errors": index_errors,
    }


def _sentences_in(span: tuple[int, int], sentences: list[SentenceEvent]) -> int:
    begin, end = span
    return sum(s.begin_time < end and s.end_time > begin for s in sentences)


async def _run(seconds: int, speed: int, fault_after_ms: int) -> dict[str, Any]:
    audio = recording(seconds)
    pol = policy("defaults: {backoff: {initial: 5ms, max: 50ms}}\n", "bench-streaming")
    clean, _, _, clean_s = await _stream(audio, None, pol, speed)
    events, t, stats, faulty_s = await _stream(audio, scenario(fault_after_ms), pol, speed)
    expected = [e for e in clean if e.kind == "end"]
    delivered = [e for e in events if e.kind == "end"]
    resumes = [e for e in events if isinstance(e, Reconnected)]
    # Where each fault hit the stream: the new task resumed at `resume_time` and was given
    # again what the failed one had been sent, up to the fault.
    fault_times = [(r.resume_time + r.replayed_ms) / 1000 for r in resumes]
    spans = [(r.resume_time, r.resume_time + r.replayed_ms) for r in resumes]
    codes = [r for r in resumes if r.code == 50000000]
    code_times = [(r.resume_time + r.replayed_ms) / 1000 for r in codes]
    s = t.stats
    return {
        "audio_seconds": round(len(audio) / BYTES_PER_SECOND, 1),
        "speed": speed,
        "sentences_expected": len(expected),
        "sentences_delivered": len(delivered),
        **compare(expected, delivered),
        "faults": len(resumes),
        "cuts": stats["faults"].get("close", 0),
        "codes_50000000": stats["failed"].get(50000000, 0),
        "mean_seconds_between_faults": _mean_gap(fault_times),
        "mean_seconds_between_50000000": _mean_gap(code_times),
        "replayed_seconds": round(s.replayed_seconds, 1),
        "max_replayed_seconds": round(max((r.replayed_ms for r in resumes), default=0) / 1000, 1),
        "max_sentences_replayed": max((_sentences_in(x, expected) for x in spans), default=0),
        "mean_sentences_replayed": round(
            sum(_sentences_in(x, expected) for x in spans) / max(len(spans), 1), 2
        ),
        "longest_sentence_seconds": max(e.end_time - e.begin_time for e in expected) / 1000,
        "gaps": s.gaps,
        "peak_buffer_seconds": s.peak_buffer_seconds,
        "buffer_bound_seconds": MAX_BUFFER_SECONDS,
        "reference_s": round(clean_s, 2),
        "faulty_s": round(faulty_s, 2),
    }


def _mean_gap(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    return round((times[-1] - times[0]) / (len(times) - 1), 1)


def run(
    seconds: int = SECONDS, *, speed: int = SPEED, fault_after_ms: int = FAULT_AFTER_MS
) -> dict[str, Any]:
    """The figures (``bench/results.json`` key ``streaming``); smaller runs for the smoke test."""
    return asyncio.run(_run(seconds, speed, fault_after_ms))


if __name__ == "__main__":
    print(run())

"""Shared pieces of the resumable-stream tests: audio, a stream runner, sentence comparison.

The simulator's texts come from each sentence's own sound (``asr_resilience/simulator/_engine.py``),
so the same audio gives the same sentences in whichever task hears it: a resumed stream can be
compared with an uninterrupted one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from asr_resilience.clients import Reconnected, SentenceEvent, StreamEvent, Transcriber
from asr_resilience.simulator import Simulator

from .audio_fixtures import FRAME_BYTES, speech_like

# (duration ms, pitch): distinct lengths and pitches give distinct texts.
SENTENCES = [(500, 300), (700, 500), (600, 700), (800, 400), (500, 900), (700, 350)]
AUDIO = speech_like(SENTENCES)
"""Six sentences, each followed by a second of silence (9.8 s); sentence k (from 0) begins at
``sum(d + 1000 for d, _ in SENTENCES[:k])``."""
BYTES_PER_MS = 32
TOLERANCE_MS = 20

Sentence = tuple[int, str, int, int]


def begins() -> list[int]:
    """Where each sentence of AUDIO begins (ms)."""
    out, at = [], 0
    for duration, _ in SENTENCES:
        out.append(at)
        at += duration + 1000
    return out


def transcriber(sim: Simulator, **options: Any) -> Transcriber:
    """A Transcriber aimed at the simulator; the replay unpaced (the simulator has no pacing)."""
    options.setdefault("replay_speed", None)
    options.setdefault("stop_timeout", 5.0)
    return Transcriber(sim.gateway_url, sim.appkey, options.pop("tokens", sim.token()), **options)


def chunks(audio: bytes, start_ms: int = 0, end_ms: int | None = None) -> Iterable[bytes]:
    """``audio[start_ms:end_ms]`` in 100 ms frames."""
    stop = len(audio) if end_ms is None else end_ms * BYTES_PER_MS
    for at in range(start_ms * BYTES_PER_MS, stop, FRAME_BYTES):
        yield audio[at : min(at + FRAME_BYTES, stop)]


class Collector:
    """Every event a stream yields, gathered by a task of its own."""

    def __init__(self, t: Transcriber) -> None:
        self.events: list[StreamEvent] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._collect(t))

    async def _collect(self, t: Transcriber) -> None:
        try:
            async for event in t:
                self.events.append(event)
                self._changed.set()
        except Exception as exc:
            self.error = exc
        finally:
            self._changed.set()

    async def wait_for(self, kind: str, count: int = 1) -> None:
        """Until ``count`` events of ``kind`` arrived (or the stream ended)."""
        while sum(e.kind == kind for e in self.events) < count and not self.task.done():
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 10.0)

    async def done(self) -> list[StreamEvent]:
        await asyncio.wait_for(self.task, 10.0)
        return self.events


class Stream:
    """Open a Transcriber, send audio unpaced, finish; ``collector`` has the events even when
    the stream ends in an error."""

    def __init__(self, t: Transcriber) -> None:
        self.t = t
        self.collector: Collector | None = None

    async def __call__(self, audio: bytes = AUDIO) -> list[StreamEvent]:
        async with self.t:
            self.collector = Collector(self.t)
            await self.t.send_all(chunks(audio), realtime=False)
            await self.t.finish()
        return await self.collector.done()

    async def events(self) -> list[StreamEvent]:
        """What the stream yielded (after it ended, in an error or not)."""
        assert self.collector is not None
        return await self.collector.done()


async def run(t: Transcriber, audio: bytes = AUDIO) -> list[StreamEvent]:
    """Open ``t``, send ``audio`` unpaced, finish, and return every event."""
    return await Stream(t)(audio)


async def reference(sim: Simulator, audio: bytes = AUDIO) -> list[Sentence]:
    """The sentences of ``audio`` in one uninterrupted task."""
    return sentences(await run(transcriber(sim), audio))


def sentences(events: Iterable[StreamEvent]) -> list[Sentence]:
    """(index, text, begin_time, end_time) of every end event."""
    return [(e.index, e.text, e.begin_time, e.end_time) for e in ends(events)]


def reconnects(events: Iterable[StreamEvent]) -> list[Reconnected]:
    return [e for e in events if isinstance(e, Reconnected)]


def ends(events: Iterable[StreamEvent]) -> list[SentenceEvent]:
    return [e for e in events if e.kind == "end"]


def same_sentences(got: list[Sentence], expected: list[Sentence]) -> bool:
    """Same indexes and texts, times within TOLERANCE_MS."""
    return len(got) == len(expected) and all(
        g[:2] == e[:2] and abs(g[2] - e[2]) <= TOLERANCE_MS and abs(g[3] - e[3]) <= TOLERANCE_MS
        for g, e in zip(got, expected, strict=True)
    )

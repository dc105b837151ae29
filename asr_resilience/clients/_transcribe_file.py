"""A whole recording through a resumable stream: :func:`transcribe_file`.

The recording is sent frame by frame, paced at real time by default (docs/protocol.md "Limits": the
service expects no bursts far faster than real time); ``realtime=False`` sends as fast as the
gateway takes it, and the replay after a reconnect is unpaced too: for short audio or a
simulator.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ._audio import load_audio
from ._results import SentenceEvent
from ._transcriber import Transcriber

__all__ = ["transcribe_file", "transcribe_like"]

AudioFile = bytes | str | os.PathLike[str]


async def transcribe_file(
    audio: AudioFile,
    *,
    realtime: bool = True,
    format: str | None = None,
    sample_rate: int | None = None,
    **options: Any,
) -> list[SentenceEvent]:
    """Transcribe a file (or WAV / raw bytes); returns its sentences' end events.

    ``options`` are :class:`Transcriber`'s (``url``, ``region``, ``appkey``, ``tokens``, ``policy``,
    ``scope``, ``params``, timeouts, ``resume``, ``max_buffer_seconds``, ``replay_speed``); the
    format and sample rate come from the file (a WAV header), else ``format`` /
    ``sample_rate``, else pcm at 16000 Hz.
    """
    return await transcribe_like(
        Transcriber(**options), audio, realtime=realtime, format=format, sample_rate=sample_rate
    )


async def transcribe_like(
    template: Transcriber,
    audio: AudioFile,
    *,
    realtime: bool = True,
    format: str | None = None,
    sample_rate: int | None = None,
) -> list[SentenceEvent]:
    """Transcribe ``audio`` on a new stream with ``template``'s settings; the template then
    describes that run (``task_id``, ``attempts``, ``stats``)."""
    data = load_audio(audio, format=format, sample_rate=sample_rate)
    stream = template._like(data.format, data.sample_rate, realtime)
    try:
        async with stream:
            # Read while sending: the stream holds a bounded number of unread events and stops
            # reading the gateway when they are not taken (a long recording has many).
            reader = asyncio.ensure_future(_sentence_ends(stream))
            try:
                await stream.send_all(data.frames(), realtime=realtime)
                await stream.finish()
            except BaseException:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                raise
            return await reader
    finally:
        template._adopt(stream)


async def _sentence_ends(stream: Transcriber) -> list[SentenceEvent]:
    return [event async for event in stream if event.kind == "end"]

"""Audio as the clients send it: loading files and bytes, framing, pacing, and replay.

docs/protocol.md "Audio frames": audio goes in binary frames under 16 KiB, 3200 bytes each 100 ms
for 16 kHz 16-bit mono PCM (each 200 ms at 8 kHz); ``format`` names the encoding and ``sample_rate``
is 8000 or 16000. A WAV file is sent as the PCM inside it (format ``pcm``): the client reads the
header it can check locally, so the gateway never sees one it would refuse (40000009 "Invalid wav
header!" / "Too large wav header!").
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import wave
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._errors import AsrResilienceError
from ..protocol._client import MAX_AUDIO_FRAME
from ..protocol._gateway import FORMATS, SAMPLE_RATES

__all__ = [
    "FRAME_BYTES",
    "ONE_SENTENCE_MAX_BYTES",
    "ONE_SENTENCE_MAX_SECONDS",
    "AudioData",
    "AudioSourceError",
    "ReplayableStream",
    "load_audio",
    "paced",
    "split_frames",
]

FRAME_BYTES = 3200
"""Bytes per audio frame: 100 ms of 16 kHz 16-bit mono PCM (docs/protocol.md "Audio frames")."""
ONE_SENTENCE_MAX_BYTES = 2 * 1024 * 1024
"""One-sentence recognition takes at most 2 MB per request (docs/protocol.md "Limits")."""
ONE_SENTENCE_MAX_SECONDS = 60.0
"""One-sentence recognition takes at most 60 s of audio (docs/protocol.md "Limits")."""

AudioInput = bytes | bytearray | memoryview | str | os.PathLike[str]

_CONVERT = "convert it, e.g. `ffmpeg -i INPUT -ac 1 -ar 16000 -sample_fmt s16 OUTPUT.wav`"
_SUFFIXES = {
    ".wav": "wav",
    ".pcm": "pcm",
    ".raw": "pcm",
    ".opus": "opus",
    ".opu": "opu",
    ".spx": "speex",
    ".speex": "speex",
    ".amr": "amr",
    ".mp3": "mp3",
    ".aac": "aac",
}
# Leading bytes of containers: a format the gateway takes, or None for one it does not.
_MAGIC: tuple[tuple[bytes, str | None, str], ...] = (
    (b"ID3", "mp3", "MP3"),
    (b"#!AMR", "amr", "AMR"),
    (b"fLaC", None, "FLAC"),
)


@dataclass(frozen=True, slots=True)
class AudioData:
    """Audio ready to send: the bytes, and the ``format`` and ``sample_rate`` to start with."""

    data: bytes
    format: str
    sample_rate: int

    @property
    def bytes_per_second(self) -> int | None:
        """The real-time byte rate for 16-bit mono PCM; None for compressed formats."""
        return 2 * self.sample_rate if self.format == "pcm" else None

    @property
    def duration_ms(self) -> int | None:
        """The length in ms for PCM; None for compressed formats."""
        rate = self.bytes_per_second
        return None if rate is None else len(self.data) * 1000 // rate

    def frames(self) -> Iterator[bytes]:
        """The audio in frames of :data:`FRAME_BYTES`."""
        return split_frames(self.data)


def load_audio(
    source: AudioInput,
    *,
    format: str | None = None,
    sample_rate: int | None = None,
    max_seconds: float | None = None,
    max_bytes: int | None = None,
) -> AudioData:
    """Read audio from a file or bytes and tell its format and sample rate.

    A WAV file (recognised by its header, whatever its name) must be 16-bit mono PCM at 8000 or
    16000 Hz; it becomes ``pcm``. Other files are named by ``format`` or their extension. Raw
    bytes without a ``format`` are PCM. ``sample_rate`` defaults to 16000 (the protocol's
    default) except for WAV, whose header decides. Raises ``ValueError`` saying what to do for
    audio the gateway would not take, and ``OSError`` for a file that cannot be read.

    ``max_seconds`` (PCM and WAV, whose length is known) and ``max_bytes`` (any format) refuse
    audio longer than the service takes, from the file's size and the WAV header, before the
    samples are read: a 200 MB file costs no memory to refuse.
    """
    wanted = format.lower() if format is not None else None
    if wanted is not None and wanted not in FORMATS:
        raise ValueError(
            f"format {format!r} is not one the gateway takes ({', '.join(FORMATS)}): {_CONVERT}"
        )
    limits = _Limits(max_seconds, max_bytes)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return _load(io.BytesIO(data), len(data), None, wanted, format, sample_rate, limits)
    path = Path(source)
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        return _load(stream, size, str(path), wanted, format, sample_rate, limits)


@dataclass(frozen=True, slots=True)
class _Limits:
    seconds: float | None
    bytes: int | None

    def check(self, label: str, size: int, rate: object) -> None:
        """Refuse ``size`` bytes (of 16-bit mono PCM at ``rate``, if known) past the limits.

        A rate that is not a positive int (a caller's mistake the gateway reports with its own
        code) gives no length: only the byte limit applies.
        """
        if (
            isinstance(rate, int)
            and rate > 0
            and self.seconds is not None
            and size > 2 * rate * self.seconds
        ):
            raise ValueError(
                f"{label} is {size / (2 * rate):.1f} s long; one-sentence recognition takes at "
                f"most {self.seconds:g} s: transcribe longer audio (Transcriber, "
                "`asr-resilience transcribe`)"
            )
        if self.bytes is not None and size > self.bytes:
            raise ValueError(
                f"{label} is {size} bytes; one-sentence recognition takes at most {self.bytes} "
                "bytes: transcribe longer audio (Transcriber, `asr-resilience transcribe`)"
            )


def _load(
    stream: BinaryIO,
    size: int,
    name: str | None,
    wanted: str | None,
    format: str | None,
    sample_rate: int | None,
    limits: _Limits,
) -> AudioData:
    label = name or "the audio"
    if size == 0:
        raise ValueError(f"{label} is empty: there is no audio to recognise")
    head = stream.read(12)
    stream.seek(0)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        if wanted not in (None, "wav", "pcm"):
            raise ValueError(f"{label} is a WAV file, not {format!r}: pass format='wav' or none")
        return _from_wav(stream, size, label, sample_rate, limits)
    fmt = wanted or _guess_format(head, name, label)
    if fmt == "wav":
        raise ValueError(f"{label} is not a WAV file (no RIFF/WAVE header): {_CONVERT}")
    rate = sample_rate if sample_rate is not None else 16000
    limits.check(label, size, rate if fmt == "pcm" else None)
    data = stream.read()
    if not data:
        raise ValueError(f"{label} is empty: there is no audio to recognise")
    return AudioData(data, fmt, rate)


def _guess_format(data: bytes, name: str | None, label: str) -> str:
    for magic, fmt, what in _MAGIC:
        if data.startswith(magic):
            if fmt is None:
                raise ValueError(f"{label} is {what}, which the gateway does not take: {_CONVERT}")
            return fmt
    if name is None:
        return "pcm"  # docs/protocol.md "Directives": pcm is the default format
    suffix = Path(name).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if fmt is None:
        raise ValueError(
            f"{label}: cannot tell the audio format from {suffix or 'a name without extension'!r};"
            f" pass the format ({', '.join(FORMATS)}) or {_CONVERT}"
        )
    return fmt


def _from_wav(
    stream: BinaryIO, size: int, label: str, sample_rate: int | None, limits: _Limits
) -> AudioData:
    try:
        with wave.open(stream) as reader:  # reads the header only; the samples on demand
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.getnframes()
            if channels == 1 and width == 2 and rate in SAMPLE_RATES:
                # The header's length, but never more than the file holds (a streamed WAV may
                # carry a placeholder length).
                limits.check(label, min(frames * 2, size), rate)
            pcm = reader.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise ValueError(
            f"{label} is not a PCM WAV file this client can read ({exc}): {_CONVERT}"
        ) from exc
    if channels != 1 or width != 2:
        raise ValueError(
            f"{label} has {channels} channel(s) of {8 * width}-bit samples; the gateway takes "
            f"16-bit mono: {_CONVERT}"
        )
    if rate not in SAMPLE_RATES:
        raise ValueError(
            f"{label} is sampled at {rate} Hz; the gateway takes 8000 or 16000 Hz: {_CONVERT}"
        )
    if sample_rate is not None and sample_rate != rate:
        raise ValueError(f"{label} is sampled at {rate} Hz, not {sample_rate} Hz as given")
    if not pcm:
        raise ValueError(f"{label} holds no audio samples")
    return AudioData(pcm, "pcm", rate)


def split_frames(data: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """``data`` in frames of ``size`` bytes (the last may be shorter); never over 16 KiB."""
    size = max(1, min(size, MAX_AUDIO_FRAME))
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def paced(
    frames: AsyncIterable[bytes] | Iterable[bytes],
    bytes_per_second: int | None,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[bytes]:
    """Yield ``frames`` no faster than real time (``None``: as they come).

    docs/protocol.md "Limits": real-time transcription does not take bursts far faster than
    real time. Each frame waits for the moment its first byte is due after the first frame, so the
    time spent sending does not add up to drift.
    """
    source = _as_async(frames)
    start: float | None = None
    sent = 0
    async for frame in source:
        if bytes_per_second:
            now = monotonic()
            if start is None:
                start = now
            due = start + sent / bytes_per_second
            if due > now:
                await sleep(due - now)
        sent += len(frame)
        yield frame


async def _as_async(frames: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame


class AudioSourceError(AsrResilienceError):
    """The caller's audio iterator raised (the original is ``__cause__``).

    Not a failure of the service, so no policy classifies it and it is never retried: a retry
    could only resend part of the audio, since a generator that raised is finished.
    """


class ReplayableStream:
    """An async audio source that can be sent again: what was read from it is kept.

    An async iterator cannot be rewound, yet each attempt of a call is a new task that needs all of
    the audio. So every chunk read is kept, and :meth:`frames` first replays what is kept, then
    reads on. The buffer is bounded by ``limit`` (one-sentence recognition takes at most
    60 s / 2 MB, docs/protocol.md "Limits"); more raises ``ValueError``. An exception from the
    source raises :class:`AudioSourceError`, now and on every later pass. A read in progress when
    an attempt ends is not cancelled (that would end the caller's generator): the next attempt
    takes it over.
    """

    def __init__(self, source: AsyncIterable[bytes], limit: int = ONE_SENTENCE_MAX_BYTES) -> None:
        self._iterator = aiter(source)
        self._limit = limit
        self._kept: list[bytes] = []
        self._size = 0
        self._done = False
        self._error: AudioSourceError | None = None
        self._pending: asyncio.Future[bytes | None] | None = None

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """Every frame of the source from its beginning: the kept ones, then new ones."""
        index = 0
        while True:
            if index < len(self._kept):
                yield self._kept[index]
                index += 1
                continue
            if self._done or not await self._read():
                return

    async def _read(self) -> bool:
        if self._error is not None:
            raise self._error
        if self._pending is None:
            self._pending = asyncio.ensure_future(_next_chunk(self._iterator))
        try:
            # Shielded: cancelling this attempt must not cancel the caller's generator.
            chunk = await asyncio.shield(self._pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._pending = None
            self._error = AudioSourceError(f"the audio source raised {type(exc).__name__}: {exc}")
            raise self._error from exc
        self._pending = None
        if chunk is None:
            self._done = True
            return False
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"audio chunks must be bytes, got {type(chunk).__name__}")
        self._size += len(chunk)
        if self._size > self._limit:
            raise ValueError(
                f"the audio stream passed {self._limit} bytes: one-sentence recognition takes "
                "at most 60 s (2 MB) of audio; stream longer audio with Transcriber"
            )
        self._kept.extend(split_frames(bytes(chunk)))
        return True

    def close(self) -> None:
        """Stop a read still in progress (the call is over)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


async def _next_chunk(iterator: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None

"""Audio sources of the clients: loading WAV and raw audio, framing, pacing, replay."""

from __future__ import annotations

import contextlib
import io
import struct
import tracemalloc
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from asr_resilience.clients import (
    FRAME_BYTES,
    AudioData,
    AudioSourceError,
    ReplayableStream,
    load_audio,
    paced,
    split_frames,
)

from .audio_fixtures import tone


def tone_pcm(ms: int, rate: int = 16000) -> bytes:
    """``ms`` of a 440 Hz tone as 16-bit mono PCM."""
    return tone(ms, 440, rate=rate)


def wav_bytes(pcm: bytes, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    """A RIFF/WAVE file around ``pcm``, in any layout (audio_fixtures.wav writes mono only)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()


def float_wav() -> bytes:
    """A WAV with IEEE-float samples (format tag 3), which the gateway does not take."""
    data = struct.pack("<4f", 0.0, 0.5, -0.5, 0.0)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_wav_bytes_become_pcm_with_the_header_rate() -> None:
    """A WAV's samples are sent as pcm, at the sample rate its header gives."""
    pcm = tone_pcm(300, rate=8000)
    audio = load_audio(wav_bytes(pcm, rate=8000))
    assert audio == AudioData(pcm, "pcm", 8000)
    assert audio.duration_ms == 300
    assert audio.bytes_per_second == 16000


def test_wav_file_is_read_from_a_path(tmp_path: Path) -> None:
    """A path to a WAV file loads like its bytes."""
    pcm = tone_pcm(200)
    path = tmp_path / "hello.wav"
    path.write_bytes(wav_bytes(pcm))
    assert load_audio(path) == AudioData(pcm, "pcm", 16000)
    assert load_audio(str(path)).data == pcm


def test_raw_bytes_default_to_pcm_at_16k() -> None:
    """Bytes without a header are PCM at 16000 Hz unless told otherwise."""
    assert load_audio(b"\x01\x02" * 10) == AudioData(b"\x01\x02" * 10, "pcm", 16000)
    mp3 = load_audio(b"\xff\xfb" * 10, format="MP3", sample_rate=8000)
    assert (mp3.format, mp3.sample_rate, mp3.bytes_per_second) == ("mp3", 8000, None)


def test_extension_names_the_format(tmp_path: Path) -> None:
    """A non-WAV file's extension names its format."""
    path = tmp_path / "clip.opus"
    path.write_bytes(b"OggS" + b"\0" * 40)
    assert load_audio(path).format == "opus"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (wav_bytes(tone_pcm(10) * 2, channels=2), "16-bit mono"),
        (wav_bytes(tone_pcm(10, rate=44100), rate=44100), "44100 Hz"),
        (float_wav(), "not a PCM WAV"),
        (b"fLaC" + b"\0" * 40, "FLAC"),
        (b"", "empty"),
    ],
)
def test_unsupported_audio_says_what_to_do(data: bytes, match: str) -> None:
    """Audio the gateway would not take raises ValueError naming the problem and the fix."""
    with pytest.raises(ValueError, match=match) as info:
        load_audio(data)
    if data:
        assert "ffmpeg" in str(info.value)


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    """A file whose format cannot be told asks for the format or a conversion."""
    path = tmp_path / "clip.ogg"
    path.write_bytes(b"OggS" + b"\0" * 40)
    with pytest.raises(ValueError, match=r"cannot tell the audio format.*'\.ogg'"):
        load_audio(path)


def test_mislabelled_wav_and_bad_format_are_refused(tmp_path: Path) -> None:
    """A .wav that is not RIFF, a format the gateway lacks, and a rate against the header fail."""
    path = tmp_path / "fake.wav"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not a WAV file"):
        load_audio(path)
    with pytest.raises(ValueError, match="'flac' is not one the gateway takes"):
        load_audio(b"\0" * 10, format="flac")
    with pytest.raises(ValueError, match="not 8000 Hz as given"):
        load_audio(wav_bytes(tone_pcm(10)), sample_rate=8000)


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    """A file that cannot be read raises the OSError."""
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav")


def test_split_frames_stays_under_16_kib() -> None:
    """Frames are 3200 bytes by default, never over 16 KiB, and add up to the audio."""
    data = bytes(range(256)) * 100
    frames = list(split_frames(data))
    assert {len(f) for f in frames[:-1]} == {FRAME_BYTES}
    assert b"".join(frames) == data
    assert max(len(f) for f in split_frames(data, 10**6)) == 16 * 1024


async def test_paced_waits_for_each_frames_due_time() -> None:
    """Pacing sleeps until each frame's time on one schedule, so drift does not add up."""
    now = [100.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    frames = [b"\0" * 3200] * 3
    out = [f async for f in paced(frames, 32000, monotonic=lambda: now[0], sleep=sleep)]
    assert out == frames
    assert sleeps == [0.1, 0.1]
    unpaced = [f async for f in paced(frames, None, monotonic=lambda: now[0], sleep=sleep)]
    assert unpaced == frames
    assert len(sleeps) == 2


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """An async iterator over ``parts``."""
    for part in parts:
        yield part


async def test_replayable_stream_replays_what_it_read() -> None:
    """A second pass yields the frames already read, then reads on."""
    stream = ReplayableStream(chunks(b"a" * 5000, b"b" * 10))
    first = stream.frames()
    assert await anext(first) == b"a" * 3200
    await first.aclose()
    again = [f async for f in stream.frames()]
    assert again == [b"a" * 3200, b"a" * 1800, b"b" * 10]
    assert [f async for f in stream.frames()] == again


async def test_replayable_stream_is_bounded() -> None:
    """More audio than one-sentence recognition takes raises ValueError."""
    stream = ReplayableStream(chunks(b"a" * 3000, b"b" * 3000), limit=4000)
    with pytest.raises(ValueError, match="at most 60 s"):
        [f async for f in stream.frames()]


async def test_replayable_stream_refuses_text() -> None:
    """A chunk that is not bytes raises TypeError."""

    async def text() -> AsyncIterator[bytes]:
        yield "hello"  # type: ignore[misc]

    with pytest.raises(TypeError, match="must be bytes"):
        [f async for f in ReplayableStream(text()).frames()]


async def test_replayable_stream_keeps_the_source_error() -> None:
    """An exception from the source raises AudioSourceError now and on every later pass."""

    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 10
        raise OSError("microphone unplugged")

    stream = ReplayableStream(broken())
    for _ in range(2):
        with pytest.raises(AudioSourceError, match="OSError: microphone unplugged") as info:
            [f async for f in stream.frames()]
        assert isinstance(info.value.__cause__, OSError)


# -- one-sentence limits: refused from the size and the header, before the samples are read -----


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes starting with ``head``; the rest is a hole (no disk, no write)."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def _wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    """A canonical 44-byte mono 16-bit WAV header announcing ``data_bytes`` of samples."""
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", data_bytes)


def _peak_while(work: Callable[[], object]) -> int:
    """Peak bytes Python allocated while ``work`` ran."""
    tracemalloc.start()
    try:
        with contextlib.suppress(ValueError):
            work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_wav_is_refused_from_its_header_without_reading_it(tmp_path: Path) -> None:
    """A 200 MB WAV (about 109 minutes) is refused for its length, reading only the header."""
    size = 200 * 1024 * 1024
    path = _sparse(tmp_path / "long.wav", _wav_header(size - 44), size)
    with pytest.raises(
        ValueError, match=r"6553\.6 s long; one-sentence recognition takes at most 60 s"
    ):
        load_audio(path, max_seconds=60, max_bytes=2 * 1024 * 1024)
    peak = _peak_while(lambda: load_audio(path, max_seconds=60))
    assert peak < 1024 * 1024, peak


def test_long_raw_pcm_is_refused_from_the_file_size(tmp_path: Path) -> None:
    """A 200 MB raw PCM file is refused from its size alone, before any sample is read."""
    path = _sparse(tmp_path / "long.pcm", b"\0\0", 200 * 1024 * 1024)
    peak = _peak_while(lambda: load_audio(path, max_seconds=60))
    assert peak < 1024 * 1024, peak
    with pytest.raises(ValueError, match="takes at most 60 s"):
        load_audio(path, max_seconds=60)


def test_compressed_audio_is_held_to_the_byte_limit(tmp_path: Path) -> None:
    """An MP3 (length unknown without decoding) is refused past max_bytes."""
    path = _sparse(tmp_path / "big.mp3", b"ID3", 3 * 1024 * 1024)
    with pytest.raises(ValueError, match="takes at most 2097152 bytes"):
        load_audio(path, max_seconds=60, max_bytes=2 * 1024 * 1024)


def test_wav_with_a_placeholder_length_is_judged_by_its_file_size() -> None:
    """A streamed WAV announcing 0xFFFFFFFF bytes but holding 2 s is accepted."""
    pcm = tone_pcm(2000)
    data = _wav_header(0xFFFFFFFF - 36)[:-4] + struct.pack("<I", 0xFFFFFFFF - 44) + pcm
    audio = load_audio(data, max_seconds=60)
    assert audio.data == pcm


def test_audio_at_the_limit_is_accepted() -> None:
    """Exactly 60 s of 16 kHz PCM passes the one-sentence limit."""
    pcm = bytes(60 * 32000)
    assert load_audio(wav_bytes(pcm), max_seconds=60, max_bytes=2 * 1024 * 1024).data == pcm
    with pytest.raises(ValueError, match=r"60\.0 s long"):
        load_audio(pcm + b"\0\0", max_seconds=60)

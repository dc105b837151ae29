"""Audio as the simulated gateway hears it: WAV headers, 10 ms frames, an energy voice detector.

Deterministic and cheap (numpy over whole frames): begin/end times come from the audio itself, so
the same audio gives the same sentences in whichever task it arrives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..protocol import GatewayReject

FRAME_MS = 10
VOICE_RMS = 300.0
"""RMS (int16 scale) above which a 10 ms frame counts as voiced."""
MAX_WAV_HEADER = 4096
"""A WAV header (chunks before ``data``) longer than this is refused (`Too large wav header!`)."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    data_offset: int


def parse_wav_header(data: bytes) -> WavInfo:
    """Parse a RIFF/WAVE header; GatewayReject 40000009 for a bad or oversized one."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise GatewayReject(40000009, "Invalid wav header!")
    pos = 12
    fmt: tuple[int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if chunk_id == b"data":
            if fmt is None:
                raise GatewayReject(40000009, "Invalid wav header!")
            channels, rate, bits = fmt
            return WavInfo(rate, channels, bits, pos + 8)
        if chunk_id == b"fmt ":
            if size < 16 or pos + 8 + 16 > len(data):
                raise GatewayReject(40000009, "Invalid wav header!")
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            fmt = (channels, rate, bits)
        pos += 8 + size + (size & 1)
        if pos > MAX_WAV_HEADER:
            raise GatewayReject(40000009, "Too large wav header!")
    if pos > MAX_WAV_HEADER:
        raise GatewayReject(40000009, "Too large wav header!")
    raise GatewayReject(40000009, "Invalid wav header!")


def samples(pcm: bytes) -> np.ndarray:
    """16-bit little-endian mono PCM as an int16 array (a trailing odd byte is dropped)."""
    usable = len(pcm) - (len(pcm) % 2)
    return np.frombuffer(pcm[:usable], dtype="<i2")


def frame_stats(pcm: bytes, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame: RMS energy and zero-crossing count."""
    x = samples(pcm)
    n = sample_rate * FRAME_MS // 1000
    frames = len(x) // n
    if frames == 0:
        return np.zeros(0), np.zeros(0)
    block = x[: frames * n].reshape(frames, n).astype(np.float64)
    rms = np.sqrt(np.mean(block * block, axis=1))
    signs = np.signbit(block)
    zc = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1)
    return rms, zc


def duration_ms(pcm_bytes: int, sample_rate: int) -> int:
    """Milliseconds of 16-bit mono audio in ``pcm_bytes`` bytes."""
    return pcm_bytes * 1000 // (2 * sample_rate)

"""Typed views of gateway events, as the client side hands them to its callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import RemoteProtocolError


@dataclass(frozen=True, slots=True)
class Word:
    """One word with its times (ms) inside a sentence."""

    text: str
    start_time: int
    end_time: int


@dataclass(frozen=True, slots=True)
class Started:
    """The task started; audio may flow."""

    task_id: str
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class SentenceBegan:
    """Real-time transcription detected the start of a sentence."""

    index: int
    time: int


@dataclass(frozen=True, slots=True)
class ResultChanged:
    """An intermediate result (one-sentence: the text so far; real-time: the open sentence)."""

    text: str
    index: int = 0
    time: int = 0
    confidence: float | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class SentenceEnded:
    """A finished sentence of real-time transcription (times in ms of audio)."""

    index: int
    begin_time: int
    end_time: int
    text: str
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    timed_out: bool = False
    """``payload.status`` 51040104: the sentence timed out; the task goes on."""


@dataclass(frozen=True, slots=True)
class Completed:
    """The task finished. One-sentence: the text and the audio duration (ms)."""

    task_id: str
    text: str = ""
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """TaskFailed: the vendor's status code and text. The gateway closes after it."""

    task_id: str
    status: int
    status_text: str
    extra: Mapping[str, Any] = field(default_factory=dict)


ProtocolEvent = Started | SentenceBegan | ResultChanged | SentenceEnded | Completed | Failed


def int_field(payload: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RemoteProtocolError(f"payload.{key} must be an integer, got {value!r}")
    return value


def count_field(payload: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """An integer that counts (an index, a time or duration in ms): never negative."""
    value = int_field(payload, key, default)
    if value < 0:
        raise RemoteProtocolError(f"payload.{key} must not be negative, got {value}")
    return value


def str_field(payload: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str):
        raise RemoteProtocolError(f"payload.{key} must be a string, got {value!r}")
    return value


def confidence_field(payload: Mapping[str, Any]) -> float | None:
    value = payload.get("confidence")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RemoteProtocolError(f"payload.confidence must be a number, got {value!r}")
    return float(value)


def words_field(payload: Mapping[str, Any]) -> tuple[Word, ...]:
    value = payload.get("words")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RemoteProtocolError("payload.words must be a list")
    words = []
    for item in value:
        if not isinstance(item, dict):
            raise RemoteProtocolError("payload.words items must be objects")
        start, end = count_field(item, "startTime"), count_field(item, "endTime")
        if end < start:
            raise RemoteProtocolError(f"a word ends at {end} ms, before it starts ({start})")
        words.append(Word(text=str_field(item, "text"), start_time=start, end_time=end))
    return tuple(words)

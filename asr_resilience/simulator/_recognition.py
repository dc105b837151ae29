"""One task's audio as the simulated recognizer hears it, sans I/O (WebSocket and REST share it).

Takes the audio frames of a task, strips a WAV header, runs the sentence detector, and decides the
outcome the real service gives for that audio (docs/protocol.md "Limits" and "Status codes", the
seed's one-sentence table): empty audio, silence, noise without speech, too long, or the text.

Compressed formats (opus, mp3, …) are not decoded: their bytes are read as 16-bit PCM, which is
enough to exercise a client's protocol handling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol import GatewayReject
from ._audio import MAX_WAV_HEADER, duration_ms, frame_stats, parse_wav_header
from ._engine import VOCABULARY, Sentence, SentenceDetector

EMPTY_AUDIO = (40000000, "Gateway:CLIENT_ERROR:Empty audio data!")
SILENT_SPEECH = (41010105, "SILENT_SPEECH")
NO_VALID_AUDIO = (40270002, "NO_VALID_AUDIO_ERROR")
TOO_LONG_SPEECH = (41010104, "TOO_LONG_SPEECH")
INVALID_WAV = (40000009, "Invalid wav header!")

_WORDS = sorted(VOCABULARY, key=len, reverse=True)


class Recognition:
    """The audio of one task: feed frames, read the sentences, ask for the one-sentence outcome."""

    def __init__(
        self,
        *,
        audio_format: str = "pcm",
        sample_rate: int = 16000,
        max_sentence_silence: int = 800,
        transcripts: Sequence[str] | None = None,
        max_ms: int | None = None,
        progress_every_ms: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.max_ms = max_ms
        self.detector = SentenceDetector(
            sample_rate=sample_rate,
            max_sentence_silence=max_sentence_silence,
            transcripts=tuple(transcripts or ()),
            progress_every_ms=progress_every_ms,
        )
        self.received_bytes = 0
        self.pcm_bytes = 0
        self.voiced_seen = False
        self._wav_pending = audio_format.lower() == "wav"
        self._head = b""

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio (after any WAV header) received so far."""
        return duration_ms(self.pcm_bytes, self.sample_rate)

    def feed(self, data: bytes) -> list[Sentence]:
        """Consume one frame; the sentences it closed. GatewayReject: 40000009, 41010104."""
        self.received_bytes += len(data)
        if self._wav_pending:
            pcm = self._strip_header(data)
            if pcm is None:
                return []
        else:
            pcm = data
        self.pcm_bytes += len(pcm)
        if self.max_ms is not None and self.audio_ms > self.max_ms:
            # Seed, one-sentence table: refused as soon as the limit is passed.
            raise GatewayReject(*TOO_LONG_SPEECH)
        if not self.voiced_seen:
            rms, _ = frame_stats(pcm, self.sample_rate)
            self.voiced_seen = bool(len(rms)) and float(rms.max()) > self.detector.voice_rms
        return self.detector.feed(pcm)

    def _strip_header(self, data: bytes) -> bytes | None:
        """Collect the WAV header; the audio after it, or None while it is incomplete."""
        head = self._head + data
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise GatewayReject(*INVALID_WAV)
        try:
            info = parse_wav_header(head)
        except GatewayReject as exc:
            if exc.status_text == INVALID_WAV[1] and len(head) <= MAX_WAV_HEADER + 8:
                self._head = head  # the header may continue in the next frame
                return None
            raise
        self._wav_pending = False
        self._head = b""
        return head[info.data_offset :]

    def flush(self) -> list[Sentence]:
        """End of audio: close the open sentence."""
        return self.detector.flush()

    @property
    def sentences(self) -> list[Sentence]:
        return self.detector.finished

    def one_sentence_result(self) -> tuple[str, int]:
        """After the stop: ``(text, duration ms)``, or GatewayReject with the seed's code."""
        if self._wav_pending:
            raise GatewayReject(*(INVALID_WAV if self.received_bytes else EMPTY_AUDIO))
        if self.pcm_bytes == 0:
            raise GatewayReject(*EMPTY_AUDIO)
        self.flush()
        if not self.sentences:
            # Voiced frames that never made a 200 ms sentence are clicks or noise.
            raise GatewayReject(*(NO_VALID_AUDIO if self.voiced_seen else SILENT_SPEECH))
        return join_texts([s.text for s in self.sentences]), self.audio_ms


def join_texts(texts: Sequence[str]) -> str:
    """Sentences as one text: Chinese runs together, Latin words keep a space between them."""
    out = ""
    for text in texts:
        if out and text and out[-1].isascii() and out[-1].isalnum() and text[0].isascii():
            out += " "
        out += text
    return out


def split_words(text: str) -> list[str]:
    """A sentence's words: by spaces, else by the engine's vocabulary, else by character."""
    if " " in text.strip():
        return text.split()
    words: list[str] = []
    rest = text
    while rest:
        word = next((w for w in _WORDS if rest.startswith(w)), rest[0])
        words.append(word)
        rest = rest[len(word) :]
    return words


def words_payload(sentence: Sentence) -> list[dict[str, Any]]:
    """``words`` of a SentenceEnd: the sentence's span shared evenly (times in ms)."""
    words = split_words(sentence.text)
    if not words:
        return []
    span = sentence.end_time - sentence.begin_time
    out = []
    for i, word in enumerate(words):
        start = sentence.begin_time + span * i // len(words)
        end = sentence.begin_time + span * (i + 1) // len(words)
        out.append({"text": word, "startTime": start, "endTime": end})
    return out


def sentence_end_payload(index: int, sentence: Sentence) -> dict[str, Any]:
    """docs/protocol.md "Events": SentenceEnd's payload (``time`` is the sentence's end)."""
    return {
        "index": index,
        "time": sentence.end_time,
        "begin_time": sentence.begin_time,
        "result": sentence.text,
        "confidence": sentence.confidence,
        "words": words_payload(sentence),
    }


def partial_payload(index: int, sentence: Sentence) -> dict[str, Any]:
    """A TranscriptionResultChanged for an open sentence as heard so far (``time``: its end)."""
    return {
        "index": index,
        "time": sentence.end_time,
        "result": sentence.text,
        "confidence": sentence.confidence,
        "words": words_payload(sentence),
    }

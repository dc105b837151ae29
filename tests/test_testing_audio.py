"""``asr_resilience.testing``'s generated speech: the simulator recognises exactly its texts."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from asr_resilience import testing
from asr_resilience.clients import Recognizer, transcribe_file
from asr_resilience.simulator import Simulator


@pytest.mark.parametrize("count", [1, 3, 5])
async def test_transcription_reports_exactly_the_texts(
    nls_simulator: Simulator, count: int
) -> None:
    """A real-time transcription of N generated sentences reports N sentences, with the texts."""
    sample = testing.speech(count)
    ends = await transcribe_file(
        sample.wav,
        realtime=False,
        url=nls_simulator.gateway_url,
        appkey=nls_simulator.appkey,
        tokens=nls_simulator.token(),
    )
    assert len(sample.texts) == count
    assert tuple(e.text for e in ends) == sample.texts


async def test_one_sentence_recognition_returns_the_joined_text(
    nls_simulator: Simulator, tmp_path: Path
) -> None:
    """One-sentence recognition of a written WAV file returns ``sample.text``."""
    path = tmp_path / "three.wav"
    sample = testing.write_speech_wav(path, 3, sample_rate=8000)
    recognizer = Recognizer(nls_simulator.gateway_url, nls_simulator.appkey, nls_simulator.token())
    result = await recognizer.recognize(path)
    assert result.text == sample.text


def test_wav_is_a_standard_mono_16_bit_file(tmp_path: Path) -> None:
    """speech_wav is a WAV the standard library reads: mono, 16-bit, the rate asked for."""
    path = tmp_path / "a.wav"
    path.write_bytes(testing.speech_wav(2, sample_rate=8000, sentence_ms=500))
    with wave.open(str(path)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, 8000)
        frames = reader.getnframes()
    assert frames * 1000 // 8000 == testing.speech(2, sample_rate=8000, sentence_ms=500).duration_ms


def test_sentences_differ_and_repeat_exactly() -> None:
    """Each sentence of a sample has its own text, and the same call gives the same audio."""
    sample = testing.speech(4)
    assert len(set(sample.texts)) == 4
    assert testing.speech(4) == sample


@pytest.mark.parametrize(
    "kwargs",
    [{"sentences": 0}, {"sample_rate": 44100}, {"sentence_ms": 100}],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, int]) -> None:
    """Sentence counts, rates and lengths the simulator would not hear as speech are refused."""
    with pytest.raises(ValueError, match="must be"):
        testing.speech(**kwargs)

"""The simulated gateway's one-sentence recognition (SpeechRecognizer), over real sockets."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator

import pytest

from asr_resilience import catalog
from asr_resilience.protocol import (
    RECOGNIZER,
    TRANSCRIBER,
    Completed,
    Failed,
    ResultChanged,
    Started,
    new_id,
    parse_event,
)
from asr_resilience.simulator import Simulator

from .audio_fixtures import clicks, silence, speech_like, tone, wav
from .simulator_client import (
    assert_seed,
    failure,
    open_ws,
    quick_config,
    recv,
    run_task,
    task,
)

SPEECH = speech_like([(1200, 440), (800, 660)])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config=quick_config()) as simulator:
        yield simulator


def _directive(name: str, appkey: str, payload: dict[str, object] | None = None) -> str:
    header = {
        "message_id": new_id(),
        "task_id": new_id(),
        "namespace": RECOGNIZER,
        "name": name,
        "appkey": appkey,
    }
    return json.dumps({"header": header, "payload": payload or {}})


async def _failed(sim: Simulator, audio: bytes, **params: object) -> Failed:
    events = await run_task(sim, RECOGNIZER, audio, params)
    last = events[-1]
    assert isinstance(last, Failed), events
    return last


async def test_recognition_completes_with_text_and_duration(sim: Simulator) -> None:
    """Speech gives Started, then Completed with the sentences' text and the audio's duration."""
    events = await run_task(sim, RECOGNIZER, SPEECH)
    assert isinstance(events[0], Started)
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.text
    assert done.duration == 4000
    assert sim.stats.sessions_completed == 1


async def test_same_audio_same_text_even_shifted(sim: Simulator) -> None:
    """The text depends on the audio only: two tasks, and 10-20 ms of leading silence, agree."""
    texts = []
    for lead in (0, 0, 10, 15, 20):
        done = (await run_task(sim, RECOGNIZER, silence(lead) + SPEECH))[-1]
        assert isinstance(done, Completed)
        texts.append(done.text)
    assert len(set(texts)) == 1


async def test_transcripts_from_config(sim: Simulator) -> None:
    """Configured transcripts replace the generated phrases, joined in order."""
    sim.configure(transcripts=["hello world", "good morning"])
    done = (await run_task(sim, RECOGNIZER, SPEECH))[-1]
    assert isinstance(done, Completed)
    assert done.text == "hello world good morning"


async def test_intermediate_results_when_asked(sim: Simulator) -> None:
    """With enable_intermediate_result the text so far comes as RecognitionResultChanged."""
    events = await run_task(sim, RECOGNIZER, SPEECH, {"enable_intermediate_result": True})
    partials = [e.text for e in events if isinstance(e, ResultChanged)]
    done = events[-1]
    assert isinstance(done, Completed)
    assert partials
    assert partials[-1] == done.text
    plain = await run_task(sim, RECOGNIZER, SPEECH)
    assert not any(isinstance(e, ResultChanged) for e in plain)


async def test_wav_audio_is_recognized_like_pcm(sim: Simulator) -> None:
    """A WAV header is stripped: the same text and duration as the raw PCM."""
    pcm = (await run_task(sim, RECOGNIZER, SPEECH))[-1]
    wave = (await run_task(sim, RECOGNIZER, wav(SPEECH), {"format": "wav"}))[-1]
    assert isinstance(pcm, Completed)
    assert isinstance(wave, Completed)
    assert (wave.text, wave.duration) == (pcm.text, pcm.duration)


async def test_wav_header_split_over_frames(sim: Simulator) -> None:
    """A WAV header that arrives in small pieces is still found."""
    whole = (await run_task(sim, RECOGNIZER, wav(SPEECH), {"format": "wav"}))[-1]
    async with task(sim, params={"format": "wav"}) as t:
        await t.start()
        await t.send_audio(wav(SPEECH)[:50], size=10)
        await t.send_audio(wav(SPEECH)[50:])
        pieces = (await t.stop())[-1]
    assert isinstance(whole, Completed)
    assert isinstance(pieces, Completed)
    assert (pieces.text, pieces.duration) == (whole.text, 4000)


async def test_invalid_wav_header(sim: Simulator) -> None:
    """format=wav without a RIFF header → 40000009 Invalid wav header!"""
    failed = await _failed(sim, SPEECH, format="wav")
    assert (failed.status, failed.status_text) == (40000009, "Invalid wav header!")
    assert_seed(failed.status, failed.status_text)


async def test_too_large_wav_header(sim: Simulator) -> None:
    """A WAV header with a huge chunk before the data → 40000009 Too large wav header!"""
    riff = wav(SPEECH)
    big = b"LIST" + struct.pack("<I", 8000) + bytes(8000)
    audio = riff[:36] + big + riff[36:]
    failed = await _failed(sim, audio, format="wav")
    assert (failed.status, failed.status_text) == (40000009, "Too large wav header!")
    assert_seed(failed.status, failed.status_text)


async def test_empty_audio(sim: Simulator) -> None:
    """Stop without any audio → 40000000 Empty audio data!"""
    failed = await _failed(sim, b"")
    assert failed.status == 40000000
    assert failed.status_text == "Gateway:CLIENT_ERROR:Empty audio data!"
    assert_seed(failed.status, failed.status_text)


async def test_silence_only(sim: Simulator) -> None:
    """Only silence → 41010105 SILENT_SPEECH."""
    failed = await _failed(sim, silence(2000))
    assert (failed.status, failed.status_text) == (41010105, "SILENT_SPEECH")
    assert_seed(failed.status, failed.status_text)


async def test_clicks_are_no_valid_audio(sim: Simulator) -> None:
    """Voiced bursts too short to be speech → 40270002 NO_VALID_AUDIO_ERROR."""
    failed = await _failed(sim, clicks())
    assert (failed.status, failed.status_text) == (40270002, "NO_VALID_AUDIO_ERROR")
    assert_seed(failed.status, failed.status_text)


async def test_too_long_speech_fails_as_soon_as_exceeded(sim: Simulator) -> None:
    """Audio past max_sentence_ms → 41010104 TOO_LONG_SPEECH without waiting for the stop."""
    sim.configure(max_sentence_ms=1000)
    async with task(sim) as t:
        await t.start()
        await t.send_audio(tone(1500, 440))
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert (failed.status, failed.status_text) == (41010104, "TOO_LONG_SPEECH")
    assert_seed(failed.status, failed.status_text)


async def test_unsupported_sample_rate(sim: Simulator) -> None:
    """sample_rate 44100 → 41010101 UNSUPPORTED_SAMPLE_RATE."""
    async with task(sim, params={"sample_rate": 44100}) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert (failed.status, failed.status_text) == (41010101, "UNSUPPORTED_SAMPLE_RATE")
    assert_seed(failed.status, failed.status_text)


async def test_parameter_invalid(sim: Simulator) -> None:
    """A parameter of the wrong type → 40000003 PARAMETER_INVALID."""
    async with task(sim, params={"enable_intermediate_result": "yes"}) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert failed.status == 40000003
    assert_seed(failed.status, failed.status_text)


async def test_too_many_vocabulary_items(sim: Simulator) -> None:
    """More hotwords than max_vocabulary → 40010003 Too many items for 'vocabulary'!(N)."""
    sim.configure(max_vocabulary=3)
    vocabulary = {f"word{i}": 2 for i in range(5)}
    async with task(sim, params={"vocabulary": vocabulary}) as t:
        failed = await t.start()
    assert isinstance(failed, Failed)
    assert failed.status == 40010003
    assert "Too many items for 'vocabulary'!(5)" in failed.status_text
    entry = catalog().lookup(failed.status, failed.status_text)
    assert entry.from_seed
    assert entry.table == "one_sentence"


async def test_invalid_directive(sim: Simulator) -> None:
    """A frame that is no directive → 40010003 DIRECTIVE_INVALID (the generic row)."""
    ws = await open_ws(sim)
    await ws.send('{"header": "nonsense"}')
    failed = await failure(ws)
    assert failed.status == 40010003
    assert failed.status_text.startswith("Gateway:DIRECTIVE_INVALID:")
    assert_seed(failed.status, failed.status_text)
    await ws.close()


async def test_namespace_not_found(sim: Simulator) -> None:
    """An unknown namespace → 40010001 NAMESPACE_NOT_FOUND."""
    ws = await open_ws(sim)
    await ws.send(_directive("StartRecognition", sim.appkey).replace(RECOGNIZER, "SpeechFoo"))
    failed = await failure(ws)
    assert failed.status == 40010001
    assert failed.namespace == "Default"
    assert_seed(failed.status, failed.status_text)
    await ws.close()


async def test_directive_not_supported(sim: Simulator) -> None:
    """A directive the service lacks → 40010002 DIRECTIVE_NOT_SUPPORTED."""
    ws = await open_ws(sim)
    await ws.send(_directive("EnhanceRecognition", sim.appkey))
    failed = await failure(ws)
    assert failed.status == 40010002
    assert "SpeechRecognizer.EnhanceRecognition" in failed.status_text
    assert_seed(failed.status, failed.status_text)
    await ws.close()


async def test_audio_before_start(sim: Simulator) -> None:
    """Audio before the start directive → 40000002 MESSAGE_INVALID, then the socket closes."""
    ws = await open_ws(sim)
    await ws.send(tone(100, 440))
    failed = await failure(ws)
    assert failed.status == 40000002
    assert_seed(failed.status, failed.status_text)
    await ws.wait_closed()


async def test_second_stop_while_stopping(sim: Simulator) -> None:
    """A second StopRecognition while the first is processed → 40010005 TASK_STATE_ERROR."""
    sim.configure(service_time=1.0)
    async with task(sim) as t:
        await t.start()
        await t.send_audio(SPEECH)
        stop = t.client.stop()
        await t.ws.send(stop)
        await t.ws.send(stop)
        event = parse_event(await recv(t.ws))
    assert event.status == 40010005
    assert (
        event.status_text == "Gateway:TASK_STATE_ERROR:Got stop directive while task is stopping!"
    )
    assert_seed(event.status, event.status_text)


async def test_directive_after_completed(sim: Simulator) -> None:
    """A stop after RecognitionCompleted → 40000002 (the task is over)."""
    async with task(sim) as t:
        await t.start()
        await t.send_audio(SPEECH)
        stop = t.client.stop()
        await t.ws.send(stop)
        assert isinstance(await t.event(), Completed)
        await t.ws.send(stop)
        event = parse_event(await recv(t.ws))
    assert event.status == 40000002
    assert_seed(event.status, event.status_text)


async def test_idle_before_start_directive(sim: Simulator) -> None:
    """No directive after the connection opens → 40000004 IDLE_TIMEOUT."""
    sim.configure(idle_timeout=0.2)
    ws = await open_ws(sim)
    failed = await failure(ws)
    assert failed.status == 40000004
    assert failed.status_text == "Gateway:IDLE_TIMEOUT:Websocket session is idle for too long time"
    assert_seed(failed.status, failed.status_text)
    await ws.close()


async def test_idle_after_started(sim: Simulator) -> None:
    """One-sentence: no audio after RecognitionStarted → 40000004 too."""
    sim.configure(idle_timeout=0.2)
    async with task(sim) as t:
        assert isinstance(await t.start(), Started)
        failed = await t.event()
    assert isinstance(failed, Failed)
    assert failed.status == 40000004


async def test_transcriber_directive_in_recognizer_task(sim: Simulator) -> None:
    """A transcriber's start in a started recognizer task → 40000002 (wrong task state)."""
    async with task(sim) as t:
        await t.start()
        other = _directive("StartTranscription", sim.appkey).replace(RECOGNIZER, TRANSCRIBER)
        await t.ws.send(other)
        event = parse_event(await recv(t.ws))
    assert event.status == 40000002

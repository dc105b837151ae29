"""Fault scenarios as data: YAML, validation, selection rules, default texts (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_resilience import catalog
from asr_resilience.simulator import Fault, Scenario
from asr_resilience.simulator._scenario import default_text

YAML = """\
seed: 7
faults:
  - {action: code, phase: start, code: 50000000, every: 3}
  - {action: close, phase: audio, after_ms: 500, sessions: [2, 5]}
  - {action: code, phase: handshake, code: 503, burst: {start: 10, length: 4}}
  - {action: stall, phase: stop, delay: 2.5, probability: 0.1, service: SpeechTranscriber}
  - {action: slow, phase: start, delay: 0.2, times: 1}
  - {action: garbage, phase: audio, frame: binary}
  - {action: revoke_token, phase: start, sessions: [1], service: [rest, SpeechRecognizer]}
"""


def test_yaml_loads_every_field(tmp_path: Path) -> None:
    """The documented YAML shape loads into faults with every field set."""
    path = tmp_path / "scenario.yaml"
    path.write_text(YAML, encoding="utf-8")
    scenario = Scenario.from_yaml(str(path))
    assert scenario.seed == 7
    assert scenario.faults[0] == Fault("code", "start", code=50000000, every=3)
    assert scenario.faults[1].after_ms == 500
    assert scenario.faults[1].sessions == (2, 5)
    assert scenario.faults[2].burst == (10, 4)
    assert scenario.faults[3].service == ("SpeechTranscriber",)
    assert scenario.faults[3].delay == 2.5
    assert scenario.faults[5].frame == "binary"
    assert scenario.faults[6].service == ("rest", "SpeechRecognizer")


def test_mapping_round_trip(tmp_path: Path) -> None:
    """to_mapping gives back what from_mapping reads."""
    path = tmp_path / "scenario.yaml"
    path.write_text(YAML, encoding="utf-8")
    scenario = Scenario.from_yaml(str(path))
    again = Scenario.from_mapping(scenario.to_mapping())
    assert again.faults == scenario.faults
    assert again.seed == scenario.seed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("faults: [{action: explode}]", "faults[0]: action: 'explode' is not one of"),
        ("faults: [{phase: start}]", "faults[0]: action: missing"),
        ("faults: [{action: code}]", "faults[0]: code: the 'code' action needs a code"),
        ("faults: [{action: code, phase: handshake, code: 40000005}]", "HTTP status"),
        ("faults: [{action: slow}]", "faults[0]: delay:"),
        ("faults: [{action: trickle, delay: 0}]", "faults[0]: delay:"),
        ("faults: [{action: close, after_ms: 5}]", "after_ms: a non-negative number"),
        ("faults: [{action: close, probability: 2}]", "probability: must be between 0 and 1"),
        ("faults: [{action: close, every: 0}]", "every: must be at least 1"),
        ("faults: [{action: close, burst: {start: 1}}]", "burst: expected"),
        ("faults: [{action: close, sessions: [0]}]", "sessions: session numbers start at 1"),
        ("faults: [{action: close, service: Speech}]", "service: 'Speech' is not one of"),
        (
            "faults: [{action: close, phase: handshake, service: SpeechRecognizer}]",
            "does not know the service",
        ),
        ("faults: [{action: close, colour: red}]", "unknown keys: colour"),
        ("faults: [{action: close, code: abc}]", "code: 'abc' is not a number"),
        ("seed: x", "seed: 'x' is not an integer"),
        ("faults: [\n", "not valid YAML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, body: str, message: str) -> None:
    """A mistake in a scenario file is a ValueError naming the file and the field."""
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml") as info:
        Scenario.from_yaml(str(path))
    assert message in str(info.value)


def test_empty_file_is_no_faults(tmp_path: Path) -> None:
    """An empty scenario file means no faults."""
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert Scenario.from_yaml(str(path)).faults == ()


def test_first_matching_fault_of_the_phase_fires() -> None:
    """At each phase the first fault that selects the session fires; others wait."""
    scenario = Scenario(
        [
            Fault("code", "start", code=50000000, sessions=(2,)),
            Fault("code", "start", code=40000005),
            Fault("close", "stop"),
        ]
    )
    assert scenario.select("start", 1, "SpeechRecognizer") == (1, scenario.faults[1])
    assert scenario.select("start", 2, "SpeechRecognizer") == (0, scenario.faults[0])
    assert scenario.select("stop", 2, "SpeechRecognizer") == (2, scenario.faults[2])
    assert scenario.select("audio", 2, "SpeechRecognizer", audio_ms=100) is None


def test_audio_fault_waits_for_after_ms_and_skip() -> None:
    """An audio fault fires once enough audio arrived, and not again when skipped."""
    scenario = Scenario([Fault("close", "audio", after_ms=500)])
    assert scenario.select("audio", 1, "rest", audio_ms=400) is None
    assert scenario.select("audio", 1, "rest", audio_ms=500) is not None
    assert scenario.select("audio", 1, "rest", audio_ms=600, skip={0}) is None


def test_times_and_reset() -> None:
    """times caps the firings; reset starts the count again."""
    scenario = Scenario([Fault("close", "start", times=2)])
    hits = [scenario.select("start", n, None) is not None for n in range(1, 5)]
    assert hits == [True, True, False, False]
    assert scenario.fired == (2,)
    scenario.reset()
    assert scenario.select("start", 9, None) is not None


def test_criteria_combine_with_and() -> None:
    """sessions, every, burst and service must all hold."""
    fault = Fault("close", "start", every=2, burst=(3, 4), service=("rest",))
    assert [n for n in range(1, 10) if fault.selects(n, "rest")] == [4, 6]
    assert not fault.selects(4, "SpeechRecognizer")


def test_probability_depends_on_seed_fault_and_session_only() -> None:
    """The draw for a session is the same whatever order sessions are asked in."""
    faults = [Fault("close", "start", probability=0.3)]
    forward = Scenario(faults, seed=11)
    backward = Scenario(faults, seed=11)
    hits = [n for n in range(1, 200) if forward.select("start", n, None)]
    again = [n for n in reversed(range(1, 200)) if backward.select("start", n, None)]
    assert hits == sorted(again)
    assert 30 < len(hits) < 90
    other = [n for n in range(1, 200) if Scenario(faults, seed=12).select("start", n, None)]
    assert other != hits


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (50000000, "GRPC_ERROR:Grpc error!"),
        (40000005, "Gateway:TOO_MANY_REQUESTS:Too many requests!"),
        (40000000, "Gateway:CLIENT_ERROR:Empty audio data!"),
        (40000009, "Invalid wav header!"),
        (40000001, "The token 'tok' has expired"),
        (40010003, "Gateway:DIRECTIVE_INVALID:[Injected fault]"),
    ],
)
def test_default_text_is_the_seed_message(code: int, text: str) -> None:
    """A code fault without text says what the vendor's table says for that code."""
    message = default_text(code, "tok")
    assert text in message
    assert catalog().lookup(code, message).from_seed


def test_default_text_for_an_unknown_code() -> None:
    """A code the catalog does not know still gets a text."""
    assert "59999999" in default_text(59999999)

"""``asr-resilience transcribe FILE``: sentences, the summary, JSON lines, errors, the bar."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from asr_resilience import cli
from asr_resilience.cli import transcribe
from asr_resilience.simulator import Fault, SimulatorConfig, SimulatorThread
from asr_resilience.testing import no_wait, speech

from .audio_fixtures import wav
from .cutting_proxy import CuttingProxyThread
from .streaming_support import AUDIO, SENTENCES

ENV = (
    "NLS_TOKEN",
    "NLS_APPKEY",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ASR_RESILIENCE_POLICY",
)


def main(argv: Sequence[str]) -> int:
    """The real ``asr-resilience`` entry point."""
    return cli.main(list(argv))


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credential variables of the environment stay out of these tests."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator in a background thread (the CLI runs its own event loop)."""
    with SimulatorThread() as simulator:
        yield simulator


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """Six sentences in a WAV file (9.8 s)."""
    path = tmp_path / "meeting.wav"
    path.write_bytes(wav(AUDIO))
    return path


def args(sim: SimulatorThread, path: Path, *extra: str) -> list[str]:
    """transcribe arguments aimed at the simulator, unpaced, with a valid token."""
    return [
        "transcribe",
        str(path),
        "--gateway",
        sim.gateway_url,
        "--appkey",
        sim.appkey,
        "--token",
        sim.token(),
        "--no-realtime",
        *extra,
    ]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_prints_sentences_with_times_and_a_summary(
    sim: SimulatorThread, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each sentence on a line with its times, then reconnects and replayed audio."""
    assert main(args(sim, recording)) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(SENTENCES) + 1
    assert lines[0].startswith("00:00.000 → 00:00.500  ")
    assert lines[1].startswith("00:01.500 → 00:02.200  ")
    assert lines[-1] == "6 sentences, 0 reconnects, 0.0 s of audio replayed"
    assert err == ""


def test_json_lines_survive_a_drop(
    sim: SimulatorThread, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json: one object per sentence and a summary; a drop changes only the summary."""
    assert main(args(sim, recording, "--json")) == 0
    clean = json_lines(capsys.readouterr().out)
    sim.set_scenario([Fault("close", "audio", after_ms=1900, sessions=(2,))])
    with no_wait():
        assert main(args(sim, recording, "--json")) == 0
    resumed = json_lines(capsys.readouterr().out)
    assert clean[:-1] == resumed[:-1]
    assert set(clean[0]) == {"index", "begin_time", "end_time", "text"}
    assert [s["index"] for s in clean[:-1]] == list(range(1, len(SENTENCES) + 1))
    summary = resumed[-1]
    assert summary["summary"] is True
    assert (summary["sentences"], summary["reconnects"], summary["gaps"]) == (6, 1, 0)
    assert summary["replayed_seconds"] > 0
    assert summary["audio_seconds"] == len(AUDIO) / 32000


def test_a_stream_the_policy_ends_exits_1(
    sim: SimulatorThread, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fix-client code mid-stream: the typed error's message, exit 1."""
    sim.set_scenario([Fault("code", "audio", code=40000002, after_ms=1900)])
    assert main(args(sim, recording)) == 1
    assert "40000002" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--appkey": ""}, "no appkey"),
        ({"--token": ""}, "no credentials"),
        ({"file": "missing.wav"}, "cannot read"),
        ({"--gateway": "not a url"}, "--gateway"),
    ],
)
def test_usage_mistakes_exit_2(
    sim: SimulatorThread,
    recording: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    """Missing credentials, an unreadable file or a bad URL: one line, exit 2."""
    argv = args(sim, recording)
    for key, value in change.items():
        if key == "file":
            argv[1] = str(recording.parent / value)
        else:
            argv[argv.index(key) + 1] = value
    assert main(argv) == 2
    assert message in capsys.readouterr().err


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_and_reconnects_on_a_terminal(
    sim: SimulatorThread, recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal stderr shows a bar over the file and a line per reconnect."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    sim.set_scenario([Fault("code", "audio", code=50000000, after_ms=1900, sessions=(1,))])
    with no_wait():
        assert main(args(sim, recording)) == 0
    shown = terminal.getvalue()
    assert "[" + "#" * 30 + "] 100%" in shown
    assert "↻ reconnected after 50000000 at 00:00.500" in shown


def test_clock() -> None:
    """Times print as mm:ss.mmm, with hours from an hour on."""
    assert transcribe.clock(61_234) == "01:01.234"
    assert transcribe.clock(3_600_000 + 5) == "1:00:00.005"


def test_full_speed_through_a_cutting_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``transcribe --no-realtime`` of 40 sentences through a link cut every 150-450 KB, against
    a gateway that hears at 40x real time, under the default policy (its breaker included: the
    cuts of legs that delivered are not an outage): every sentence once, in order, exit 0."""
    sample = speech(40)
    path = tmp_path / "long.wav"
    path.write_bytes(sample.wav)
    with (
        SimulatorThread(config=SimulatorConfig(realtime_factor=40.0)) as gateway,
        CuttingProxyThread(gateway.gateway_url, 150_000, 450_000, seed=3) as link,
        no_wait(),
    ):
        status = main(
            [
                *("transcribe", str(path), "--gateway", link.url, "--appkey", gateway.appkey),
                *("--token", gateway.token()),
                *("--no-realtime", "--json"),
            ]
        )
    assert status == 0
    lines = json_lines(capsys.readouterr().out)
    assert [line["text"] for line in lines[:-1]] == list(sample.texts)
    assert [line["index"] for line in lines[:-1]] == list(range(1, 41))
    assert lines[-1]["reconnects"] == link.cuts >= 5
    assert lines[-1]["gaps"] == 0

"""``asr-resilience recognize``: a WAV file against the simulator, and the CLI's errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from asr_resilience import cli
from asr_resilience.simulator import Fault, SimulatorConfig, SimulatorThread
from asr_resilience.testing import no_wait

from .audio_fixtures import speech_like, tone, wav

TEXT = "北京欢迎你"
Main = Callable[[Sequence[str]], int]
ENV = (
    "NLS_TOKEN",
    "NLS_APPKEY",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ASR_RESILIENCE_POLICY",
)


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> Main:
    """``cli.main`` with the credential variables cleared."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return cli.main


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator in a background thread (the CLI runs its own event loop)."""
    with SimulatorThread(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    """A one-sentence WAV file of 1.1 s."""
    path = tmp_path / "hello.wav"
    path.write_bytes(wav(speech_like([(800, 440)], gap_ms=300)))
    return path


def args(sim: SimulatorThread, path: Path, *extra: str) -> list[str]:
    """recognize arguments aimed at the simulator with a valid token."""
    return [
        "recognize",
        str(path),
        "--gateway",
        sim.gateway_url,
        "--appkey",
        sim.appkey,
        "--token",
        sim.token(),
        *extra,
    ]


def test_prints_the_transcript(
    main: Main, sim: SimulatorThread, speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A WAV file's transcript is printed on stdout."""
    assert main(args(sim, speech)) == 0
    assert capsys.readouterr() == (TEXT + "\n", "")


def test_json_output(
    main: Main, sim: SimulatorThread, speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one object with text, task_id, duration and attempts."""
    assert main([*args(sim, speech), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "task_id", "duration", "attempts"}
    assert (result["text"], result["duration"], result["attempts"]) == (TEXT, 1100, 1)


def test_credentials_from_the_environment(
    main: Main,
    sim: SimulatorThread,
    speech: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """NLS_TOKEN and NLS_APPKEY stand in for --token and --appkey."""
    monkeypatch.setenv("NLS_TOKEN", sim.token())
    monkeypatch.setenv("NLS_APPKEY", sim.appkey)
    assert main(["recognize", str(speech), "--gateway", sim.gateway_url]) == 0
    assert capsys.readouterr().out == TEXT + "\n"


def test_token_created_from_the_access_key_pair(
    main: Main,
    sim: SimulatorThread,
    speech: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a token, the AccessKey pair in the environment creates one at --meta."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228")
    info = sim.info()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", info["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", info["access_key_secret"])
    argv = ["recognize", str(speech), "--gateway", sim.gateway_url, "--meta", sim.meta_url]
    assert main([*argv, "--appkey", sim.appkey]) == 0
    assert capsys.readouterr().out == TEXT + "\n"


def test_wrong_access_key_secret_exits_1(
    main: Main,
    sim: SimulatorThread,
    speech: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A secret the meta service refuses ends in TokenRefreshError with its hint, exit 1."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sim.info()["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    argv = ["recognize", str(speech), "--gateway", sim.gateway_url, "--meta", sim.meta_url]
    assert main([*argv, "--appkey", sim.appkey]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "SignatureDoesNotMatch" in err
    assert "not-the-secret" not in err
    assert err.rstrip().endswith("check the AccessKey pair and the meta endpoint")


def test_events_go_to_stderr(
    main: Main, sim: SimulatorThread, speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --verbose a retried call logs its events on stderr; stdout holds the result only."""
    sim.set_scenario([Fault("code", "start", code=40000005, sessions=(1,))])
    with no_wait():
        assert main([*args(sim, speech), "--json", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["attempts"] == 2
    assert "asr_resilience.retry_scheduled" in err


def test_typed_error_prints_message_and_hint(
    main: Main, sim: SimulatorThread, speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call the policy ends prints the error and the catalog's fix, exit 1."""
    sim.set_scenario([Fault("code", "start", code=40000010)])
    assert main(args(sim, speech)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("asr-resilience: 40000010")
    assert " — " in err  # the hint follows the message
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-token", "no credentials: pass --token, set NLS_TOKEN"),
        ("no-appkey", "no appkey: pass --appkey or set NLS_APPKEY"),
        ("missing-file", "cannot read"),
        ("unsupported", "44100 Hz"),
        ("bad-gateway", "--gateway"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    main: Main,
    sim: SimulatorThread,
    speech: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    message: str,
) -> None:
    """Missing credentials or appkey, unreadable or unsupported audio, a bad URL: exit 2."""
    argv = args(sim, speech)
    if setup == "no-token":
        del argv[6:8]
    elif setup == "no-appkey":
        del argv[4:6]
    elif setup == "missing-file":
        argv[1] = str(tmp_path / "nope.wav")
    elif setup == "unsupported":
        loud = tmp_path / "cd.wav"
        loud.write_bytes(wav(tone(100, 440, rate=44100), rate=44100))
        argv[1] = str(loud)
    else:
        argv[3] = "http://not-a-websocket/"
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("asr-resilience recognize: error: ")
    assert message in err
    assert err.count("\n") == 1

"""``asr-resilience simulate``: the first JSON line, serving, a clean exit, and bad files."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asr_resilience import testing
from asr_resilience.clients import Recognizer
from asr_resilience.protocol import RECOGNIZER, TRANSCRIBER, Completed, Failed, SentenceEnded
from asr_resilience.tokens import TokenManager

from .audio_fixtures import speech_like
from .simulator_client import run_task

COMMAND = [sys.executable, "-m", "asr_resilience", "simulate"]
KEYS = {"gateway", "meta", "rest", "appkey", "access_key_id", "access_key_secret", "token"}


class Endpoint:
    """What the CLI printed, usable as a run_task target."""

    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.gateway_url = info["gateway"]
        self.appkey = info["appkey"]

    def token(self, account: str | None = None, ttl: float | None = None) -> str:
        return self.info["token"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Endpoint]]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("faults: [{action: code, phase: start, code: 50000000, sessions: [2]}]\n")
    process = subprocess.Popen(
        [
            *COMMAND,
            *("--scenario", str(scenario), "--quota", "5", "--token-ttl", "600"),
            *("--realtime-factor", "50"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield process, Endpoint(json.loads(line))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


async def test_simulate_prints_json_serves_and_exits_cleanly(
    running: tuple[subprocess.Popen[str], Endpoint],
) -> None:
    """The first line is JSON with every key; the gateway serves the scenario; SIGINT → exit 0."""
    process, endpoint = running
    assert set(endpoint.info) == KEYS
    speech = speech_like([(800, 440)])
    first = await run_task(endpoint, RECOGNIZER, speech)
    second = await run_task(endpoint, RECOGNIZER, speech)
    assert isinstance(first[-1], Completed)
    assert isinstance(second[-1], Failed)
    assert second[-1].status == 50000000
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        response = await client.post(
            endpoint.info["rest"],
            params={"appkey": endpoint.appkey},
            headers={"X-NLS-Token": endpoint.info["token"]},
            content=speech,
        )
    assert response.json()["status"] == 20000000
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_simulate_sigterm_exits_zero(
    running: tuple[subprocess.Popen[str], Endpoint],
) -> None:
    """SIGTERM stops the simulator with exit status 0 as well."""
    process, _ = running
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--accounts", "accounts: [{name: a, colour: red}]\n", "unknown account keys: colour"),
        ("--accounts", "accounts: [\n", "accounts.yaml"),
        ("--scenario", "faults: [{action: explode}]\n", "faults[0]: action: 'explode'"),
        ("--scenario", "faults: [\n", "not valid YAML"),
    ],
)
def test_simulate_bad_files(tmp_path: Path, option: str, content: str, message: str) -> None:
    """A bad accounts or scenario file: one line on stderr, exit 2, no traceback."""
    path = tmp_path / ("accounts.yaml" if option == "--accounts" else "scenario.yaml")
    path.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [*COMMAND, option, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert str(path) in result.stderr


async def test_simulate_realtime_factor_serves_transcription(
    running: tuple[subprocess.Popen[str], Endpoint],
) -> None:
    """--realtime-factor: real-time transcription is served, its sentences as without it."""
    _, endpoint = running
    events = await run_task(endpoint, TRANSCRIBER, speech_like([(800, 440), (600, 660)]))
    ends = [e for e in events if isinstance(e, SentenceEnded)]
    assert [(e.index, e.begin_time, e.end_time) for e in ends] == [(1, 0, 800), (2, 1800, 2400)]


@pytest.mark.parametrize("value", ["0", "-2", "fast", "inf"])
def test_simulate_bad_realtime_factor(value: str) -> None:
    """--realtime-factor must be a positive number: one line, exit 2."""
    result = subprocess.run(
        [*COMMAND, "--realtime-factor", value],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--realtime-factor" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_missing_file(tmp_path: Path) -> None:
    """A file that does not exist: one line, exit 2."""
    result = subprocess.run(
        [*COMMAND, "--scenario", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("asr-resilience simulate: error: ")
    assert result.stderr.count("\n") == 1


ENV_KEYS = {
    "NLS_GATEWAY_URL",
    "NLS_REST_URL",
    "NLS_META_URL",
    "NLS_APPKEY",
    "NLS_TOKEN",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
}


@pytest.fixture
def env_running() -> Iterator[dict[str, str]]:
    """``simulate --env`` in a subprocess: its export lines as a dict, until the blank line."""
    process = subprocess.Popen(
        [*COMMAND, "--env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        values: dict[str, str] = {}
        for line in iter(process.stdout.readline, "\n"):
            assert line, "the simulator ended before the blank line"
            word, assignment = shlex.split(line)
            assert word == "export"
            name, value = assignment.split("=", 1)
            values[name] = value
        yield values
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr


async def test_simulate_env_exports_serve_a_recognition(
    env_running: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--env`` prints every connection value as an export line; code configured only from the
    environment they set recognises speech on that simulator."""
    assert set(env_running) == ENV_KEYS
    for name, value in env_running.items():
        monkeypatch.setenv(name, value)
    sample = testing.speech(2)
    # Appkey and token from $NLS_APPKEY and $NLS_TOKEN, as against the real service.
    result = await Recognizer(env_running["NLS_GATEWAY_URL"]).recognize(sample.wav)
    assert result.text == sample.text


async def test_simulate_env_accesskey_creates_tokens(
    env_running: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exported AccessKey pair is the simulator account's: CreateToken at $NLS_META_URL
    issues a token the gateway takes."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228")
    from asr_resilience.tokens import AliyunTokenProvider

    for name, value in env_running.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NLS_TOKEN")
    provider = AliyunTokenProvider(endpoint=env_running["NLS_META_URL"])
    async with TokenManager(provider) as tokens:
        recognizer = Recognizer(env_running["NLS_GATEWAY_URL"], tokens=tokens)
        result = await recognizer.recognize(testing.speech_wav(1))
    assert result.text == testing.speech(1).text

"""``asr-resilience simulate``: the first JSON line, serving, a clean exit, and bad files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asr_resilience.protocol import RECOGNIZER, Completed, Failed

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
        [*COMMAND, "--scenario", str(scenario), "--quota", "5", "--token-ttl", "600"],
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

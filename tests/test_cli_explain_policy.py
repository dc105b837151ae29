"""The `explain` and `policy check|show` commands: output, languages, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr_resilience.cli import main

BAD = Path(__file__).parent / "policies_bad"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_explain_text_names_cause_fix_action_and_schedule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """explain 40000005 shows the name, the seed message, cause, fix, rule and waits."""
    monkeypatch.delenv("ASR_RESILIENCE_LANG", raising=False)
    status, out, _ = run(capsys, "explain", "40000005", "--lang", "en")
    assert status == 0
    assert "TOO_MANY_REQUESTS" in out
    assert "Gateway:TOO_MANY_REQUESTS:Too many requests!" in out
    assert "retry (rule 'throttled'" in out
    assert "waits 1s, 2s, 4s" in out


def test_explain_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with code, action, name, message, cause, fix, rule, schedule."""
    status, out, _ = run(capsys, "explain", "50000000", "--json", "--lang", "en")
    assert status == 0
    data = json.loads(out)
    for key in ("code", "action", "name", "message", "cause", "solution", "rule", "schedule"):
        assert key in data
    assert data["action"] == "retry"
    assert data["name"] == "GRPC_ERROR"
    assert data["schedule"]["jitter"] == "full"
    assert data["schedule"]["delays"] == [0.2, 0.4, 0.8]


def test_explain_picks_the_entry_by_message_and_language(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--message selects the row of a multi-message code; --lang zh gives the seed's text."""
    _, out, _ = run(
        capsys,
        "explain",
        "40000009",
        "--message",
        "Too large wav header!",
        "--json",
        "--lang",
        "zh",
    )
    data = json.loads(out)
    assert data["message"] == "Too large wav header!"
    assert data["action"] == "fix-client"
    assert "传输的语音WAV头不合法" in data["cause"]
    _, out, _ = run(capsys, "explain", "40000009", "--json", "--lang", "en")
    data = json.loads(out)
    assert data["name"] is None
    assert data["from_seed"] is False
    assert len(data["variants"]) == 2


def test_explain_unknown_code_answers_from_its_class(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown 5xxxxxxx code still gets an answer: its class and the policy's action."""
    status, out, _ = run(capsys, "explain", "59999999", "--json", "--lang", "en")
    assert status == 0
    data = json.loads(out)
    assert data["action"] == "retry"
    assert data["table"] == "class"
    assert data["name"] is None


def test_explain_success_and_http_status(capsys: pytest.CaptureFixture[str]) -> None:
    """20000000 is success, never a failure; HTTP 429 is a throttled retry."""
    _, out, _ = run(capsys, "explain", "20000000", "--json")
    assert json.loads(out)["action"] is None
    _, out, _ = run(capsys, "explain", "429", "--json")
    data = json.loads(out)
    assert data["action"] == "retry"
    assert data["throttled"] is True


def test_language_from_environment_and_locale(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --lang: ASR_RESILIENCE_LANG, else zh under a Chinese locale, else en."""
    monkeypatch.setenv("ASR_RESILIENCE_LANG", "zh")
    _, out, _ = run(capsys, "explain", "40000010", "--json")
    assert json.loads(out)["language"] == "zh"
    monkeypatch.delenv("ASR_RESILIENCE_LANG")
    for var in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    _, out, _ = run(capsys, "explain", "40000010", "--json")
    assert json.loads(out)["language"] == "zh"
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    _, out, _ = run(capsys, "explain", "40000010", "--json")
    assert json.loads(out)["language"] == "en"


@pytest.mark.parametrize("argv", [["explain", "abc"], ["explain"], ["nonsense"], ["explain", "-5"]])
def test_bad_arguments_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A usage mistake prints the usage and a hint, exit 2, and no traceback."""
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "usage:" in err
    assert "Traceback" not in err


def test_policy_check_good_and_bad(capsys: pytest.CaptureFixture[str]) -> None:
    """check exits 0 for valid files, 2 with one line per issue otherwise."""
    status, out, _ = run(capsys, "policy", "check", "default", "production")
    assert status == 0
    assert out.count("ok") == 2
    status, _, err = run(capsys, "policy", "check", "default", str(BAD / "max_attempts_zero.yaml"))
    assert status == 2
    lines = err.strip().splitlines()
    assert lines
    assert all("max_attempts_zero.yaml:" in line for line in lines)


def test_policy_show_table_json_and_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """show lists every catalog code with its action; warnings name shadowed rules and deadlines."""
    status, out, _ = run(capsys, "policy", "show", "default", "--json")
    assert status == 0
    data = json.loads(out)
    rows = {row["code"]: row for row in data["rows"]}
    assert rows["40000005"]["action"] == "retry"
    assert rows["40000001"]["action"] == "refresh-token"
    assert rows["HTTP 503"]["action"] == "retry"
    assert rows["transport:reset"]["action"] == "retry"
    assert data["warnings"] == []
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        "version: 1\nextends: default\ndefaults: {deadline: 1s}\nrules:\n"
        "  - {name: first, match: {codes: ['5xxxxxxx']}, action: retry}\n"
        "  - {name: never, match: {codes: [50000000]}, action: fail-fast}\n",
        encoding="utf-8",
    )
    status, out, _ = run(capsys, "policy", "show", str(custom))
    assert status == 0
    assert "warning: rule 'never' (rules[1]) is shadowed" in out
    assert "more than the deadline 1s" in out


def test_policy_show_columns_fit_their_longest_value(capsys: pytest.CaptureFixture[str]) -> None:
    """Every row's action starts where the header's does, the longest code included
    (``transport:abnormal_close`` once pushed its row out of line)."""
    status, out, _ = run(capsys, "policy", "show", "default")
    assert status == 0
    header, rule, *rows = out.splitlines()[1:]
    assert set(rule) == {"-"}
    column = header.index("action")
    table = [row for row in rows if not row.startswith("warning:")]
    assert any(row.startswith("transport:abnormal_close ") for row in table)
    for row in table:
        assert row[column - 2 : column] == "  ", row
        assert row[column] != " ", row


def test_policy_show_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing policy file is reported in one line naming it, exit 2."""
    status, _, err = run(capsys, "policy", "show", "no/such/file.yaml")
    assert status == 2
    assert err.strip().count("\n") == 0
    assert "no/such/file.yaml" in err


def test_console_script_runs() -> None:
    """`python -m asr_resilience explain` works as a process, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "asr_resilience", "explain", "403", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "refresh-token"

"""Every ``python`` and ``console`` block of README.md runs as written, against the simulator.

The rules (for whoever adds a block to the README):

- **Which blocks run.** Every fenced block whose info string is ``python`` or ``console``. Other
  languages (``yaml``, ``sh``, ...) are not run. A block that cannot run by nature (a server that
  serves until Ctrl-C, a two-minute benchmark) carries the marker ``<!-- not-run: the reason -->``
  on the line before its fence (blank lines between are allowed); keep them rare.
  ``test_every_runnable_block_is_collected`` counts the fences independently, so no block is
  skipped silently.
- **The service.** Each block gets a fresh simulator (the ``nls_gateway`` fixture) and the
  variables ``asr-resilience simulate --env`` prints: ``NLS_GATEWAY_URL``, ``NLS_REST_URL``,
  ``NLS_META_URL`` (CreateToken), ``NLS_APPKEY``, ``NLS_TOKEN``, ``ALIBABA_CLOUD_ACCESS_KEY_ID``,
  ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``. Examples read the service from them, so the same block
  runs against the real service with the real values. Nothing else is provided: a file a block
  needs is created by the block itself.
- **python blocks** run as ``python example.py`` in an empty temporary directory and must exit
  0. A block that defines ``test_*`` functions is a test file: it runs under ``pytest`` (the
  installed plugin gives it ``nls_gateway``; asyncio mode auto; a connection a test leaves open
  is an error), and every test in it must pass.
- **console blocks** run in one ``bash`` session in an empty temporary directory, with this
  interpreter's ``bin`` first on ``PATH`` (``asr-resilience``, ``python``). A line starting with
  ``$ `` is a command (a heredoc, ``<<'EOF'``, continues it up to its terminator); the lines up
  to the next command are its shown output. Every command must exit 0, except the one right
  before ``$ echo $?``, whose status is then checked by ``echo``'s shown output. The shown
  output, stdout and stderr together, must appear in the real output line by line, in order,
  other lines allowed in between; in a shown line ``…`` or ``...`` stands for any text, and a
  shown line that is only ``…`` stands for any lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from asr_resilience.cli._simulate import ENV_NAMES
from asr_resilience.simulator import SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUNNABLE = ("python", "console")
TIMEOUT = 60
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->$")
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
WILDCARD = re.compile(r"\.\.\.|…")
TEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error::asr_resilience.pytest_plugin.LeakedConnectionWarning
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    """The line of its opening fence (1-based)."""
    language: str
    text: str
    not_run: str | None
    """The reason given by a ``not-run`` marker, or None."""

    def id(self) -> str:
        """The test id: language and line, e.g. ``python-L226``."""
        return f"{self.language}-L{self.line}"


def blocks(text: str) -> list[Block]:
    """The README's fenced blocks, each with the not-run marker before it, if any."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start, language = i, match.group(1)
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = NOT_RUN.match(lines[before].strip()) if before >= 0 else None
        found.append(
            Block(start + 1, language, "\n".join(body) + "\n", marker.group(1) if marker else None)
        )
    return found


ALL = blocks(README.read_text(encoding="utf-8"))
TO_RUN = [b for b in ALL if b.language in RUNNABLE and b.not_run is None]


@pytest.fixture
def service_env(nls_gateway: SimulatorThread) -> dict[str, str]:
    """The environment a block runs in: this one, plus the simulator's ``simulate --env`` values,
    with this checkout importable and this interpreter's scripts first on PATH."""
    info = nls_gateway.info()
    env = {k: v for k, v in os.environ.items() if k not in dict(ENV_NAMES)}
    env.update({name: info[key] for name, key in ENV_NAMES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NO_COLOR"] = "1"
    return env


@pytest.mark.parametrize("block", [b for b in TO_RUN if b.language == "python"], ids=Block.id)
def test_python_block_runs(block: Block, tmp_path: Path, service_env: dict[str, str]) -> None:
    """The python block runs to exit 0 (a block of tests: they all pass under pytest)."""
    is_test = re.search(r"^(async )?def test_", block.text, re.MULTILINE) is not None
    script = tmp_path / ("test_example.py" if is_test else "example.py")
    script.write_text(block.text, encoding="utf-8")
    if is_test:
        (tmp_path / "pytest.ini").write_text(TEST_INI, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    else:
        command = [sys.executable, script.name]
    run = subprocess.run(
        command, cwd=tmp_path, env=service_env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert run.returncode == 0, f"README.md:{block.line}\n{run.stdout}\n{run.stderr}"


@dataclass
class Command:
    """One ``$ `` command of a console block and the output the README shows for it."""

    text: str
    shown: list[str]


def commands(block: Block) -> list[Command]:
    """The block's commands (heredocs joined to theirs) and their shown output lines."""
    found: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            if not found:
                raise ValueError(f"README.md:{block.line}: output before any '$ ' command")
            found[-1].shown.append(line)
            continue
        text = [line[2:]]
        heredoc = HEREDOC.search(line)
        if heredoc is not None:
            while i < len(lines):
                text.append(lines[i])
                i += 1
                if text[-1].strip() == heredoc.group(1):
                    break
        found.append(Command("\n".join(text), []))
    return found


def _matches(shown: str, actual: str) -> bool:
    parts = [re.escape(p) for p in WILDCARD.split(shown.rstrip())]
    return re.fullmatch(".*?".join(parts), actual.rstrip()) is not None


def shown_output_appears(shown: list[str], actual: list[str]) -> str | None:
    """None when the shown lines appear in ``actual`` in order; else the first one that does not."""
    position = 0
    for line in shown:
        if not line.strip() or WILDCARD.fullmatch(line.strip()):
            continue
        while position < len(actual) and not _matches(line, actual[position]):
            position += 1
        if position == len(actual):
            return line
        position += 1
    return None


MARK = "@@readme-command-status"


@pytest.mark.parametrize("block", [b for b in TO_RUN if b.language == "console"], ids=Block.id)
def test_console_block_runs(block: Block, tmp_path: Path, service_env: dict[str, str]) -> None:
    """Each command exits 0 (or as the following ``echo $?`` shows) and prints what is shown."""
    cmds = commands(block)
    # One shell, so exports and files carry over; after each command its status is printed on
    # a line of its own and restored, so that a following `echo $?` still sees it.
    script = ["exec 2>&1"]
    for command in cmds:
        script += [command.text, f"__s=$?; printf '\\n{MARK} %d\\n' $__s; (exit $__s)"]
    run = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        cwd=tmp_path,
        env=service_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    outputs = run.stdout.split(f"\n{MARK} ")
    assert len(outputs) == len(cmds) + 1, f"README.md:{block.line}: the shell ended early\n{run}"
    statuses = [int(part.split("\n", 1)[0]) for part in outputs[1:]]
    texts = [outputs[0]] + [part.split("\n", 1)[1] if "\n" in part else "" for part in outputs[1:]]
    for n, command in enumerate(cmds):
        actual = texts[n].splitlines()
        where = f"README.md:{block.line}: $ {command.text}\n--- output:\n{texts[n]}"
        followed_by_echo = n + 1 < len(cmds) and cmds[n + 1].text.strip() == "echo $?"
        if not followed_by_echo:
            assert statuses[n] == 0, f"exit status {statuses[n]}; {where}"
        missing = shown_output_appears(command.shown, actual)
        assert missing is None, f"shown line not printed: {missing!r}; {where}"


def test_every_runnable_block_is_collected() -> None:
    """Each python/console fence of the README runs or carries a not-run marker with a reason,
    counted by a second, plainer reading of the file; markers stay rare."""
    text = README.read_text(encoding="utf-8")
    fences = re.findall(r"^```(python|console)\s*$", text, re.MULTILINE)
    marked = [b for b in ALL if b.language in RUNNABLE and b.not_run is not None]
    assert len(fences) == len(TO_RUN) + len(marked)
    assert len(marked) <= 4, [f"README.md:{b.line}" for b in marked]
    assert all(b.language in RUNNABLE for b in ALL if b.not_run is not None)
    markers = re.findall(r"^<!--\s*not-run\b", text, re.MULTILINE)
    assert len(markers) == len(marked), "a not-run marker before no python/console block"
    # Indented fences (inside a list) or other spellings would escape the collector.
    assert not re.search(r"^[ \t]+```(python|console|py|pycon)\b", text, re.MULTILINE)
    assert not re.search(r"^```(py|python3|pycon|shell-session)\s*$", text, re.MULTILINE)


def test_shown_output_rule() -> None:
    """The output rule: shown lines in order, other lines between, ``…`` as a wildcard."""
    actual = ["first line", "noise", "value: 42 units", "last"]
    assert shown_output_appears(["first line", "value: … units"], actual) is None
    assert shown_output_appears(["…", "last"], actual) is None
    assert shown_output_appears(["last", "first line"], actual) == "first line"
    assert shown_output_appears(["value: 41 units"], actual) == "value: 41 units"


def test_readme_policy_example_shows_without_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's full policy example (the first yaml block with rules) loads, and
    ``policy show`` prints no warning about it."""
    from asr_resilience.cli import main

    example = next(b for b in ALL if b.language == "yaml" and "rules:" in b.text)
    path = tmp_path / "example.yaml"
    path.write_text(example.text, encoding="utf-8")
    status = main(["policy", "show", str(path)])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "warning" not in (out + err).lower(), out + err

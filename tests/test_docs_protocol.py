"""docs/protocol.md: every citation of it in the code names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
SCANNED = ("asr_resilience", "tests", "bench")
SUFFIXES = (".py", ".yaml", ".yml")
OLD_NAME = "PROTOCOL" + ".md"  # split so this file does not cite it
MENTION = re.compile(r"docs/protocol\.md")
# `docs/protocol.md "A"`, `docs/protocol.md "A" and "B"`, `docs/protocol.md "A", "B" and "C"`.
CITATION = re.compile(r'docs/protocol\.md "[^"\n]+"(?:(?:, | and )"[^"\n]+")*')
SECTION = re.compile(r'"([^"\n]+)"')
UNFINISHED = re.compile(r'(?:,| and)\s+"')


def _code_files() -> list[tuple[Path, str]]:
    """(path relative to the root, text) of every scanned file except this one."""
    me = Path(__file__).resolve()
    files = [
        # errors="replace": the bad-policy fixtures include a file that is not valid UTF-8.
        (path.relative_to(ROOT), path.read_text(encoding="utf-8", errors="replace"))
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*"))
        if path.suffix in SUFFIXES and path.is_file() and path.resolve() != me
    ]
    assert files
    return files


def _headings() -> list[str]:
    return [
        match.group(1).strip()
        for match in re.finditer(r"^#{2,6} (.+)$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    ]


def _citations() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path, text in _code_files():
        for match in CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.extend((f"{path}:{line}", name) for name in SECTION.findall(match.group(0)))
    return found


def test_headings_are_unique() -> None:
    """Each heading of docs/protocol.md names one section only."""
    headings = _headings()
    assert headings
    assert len(headings) == len(set(headings)), headings


def test_every_citation_names_an_existing_section() -> None:
    """Every `docs/protocol.md "Section"` in the code names a heading of docs/protocol.md."""
    headings = set(_headings())
    citations = _citations()
    assert len(citations) >= 60  # the regex still finds the code's citations
    missing = [f'{where}: "{name}"' for where, name in citations if name not in headings]
    assert not missing, missing


def test_every_mention_is_a_whole_citation() -> None:
    """Each docs/protocol.md mention in the code has all its quoted sections on one line."""
    broken: list[str] = []
    for path, text in _code_files():
        whole = {m.start(): m.end() for m in CITATION.finditer(text)}
        for match in MENTION.finditer(text):
            end = whole.get(match.start())
            # Not a citation, or one whose list of sections goes on past a line break.
            if end is None or UNFINISHED.match(text, end):
                broken.append(f"{path}:{text.count(chr(10), 0, match.start()) + 1}")
    assert not broken, broken


@pytest.mark.parametrize("top", SCANNED)
def test_no_code_cites_the_shared_notes(top: str) -> None:
    """No code cites the team's shared notes file, which is outside the repository."""
    offenders = [
        str(path) for path, text in _code_files() if path.parts[0] == top and OLD_NAME in text
    ]
    assert not offenders, offenders


def test_citation_pattern_reads_lists_and_flags_split_ones() -> None:
    """The pattern reads `"A", "B" and "C"` and leaves a list split across lines unfinished."""
    whole = CITATION.search('see docs/protocol.md "Limits", "Events" and "CreateToken": x')
    assert whole is not None
    assert SECTION.findall(whole.group(0)) == ["Limits", "Events", "CreateToken"]
    text = 'see docs/protocol.md "Limits" and "Status\ncodes"'
    split = CITATION.search(text)
    assert split is not None
    assert UNFINISHED.match(text, split.end())

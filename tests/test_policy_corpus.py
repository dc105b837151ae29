"""The corpus of bad policies in tests/policies_bad: each one is refused with a precise issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asr_resilience._errors import PolicyError, PolicyIssue
from asr_resilience.policy import check_policy, load_policy

CORPUS = Path(__file__).parent / "policies_bad"
EXPECTED_FILE = CORPUS / "EXPECTED.yaml"


def _corpus_names() -> list[str]:
    return sorted(
        p.name
        for p in CORPUS.glob("*.yaml")
        if not p.name.startswith("_") and p.name != EXPECTED_FILE.name
    )


def _expected() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load(EXPECTED_FILE.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


CASES = _corpus_names()
EXPECTED = _expected()


def _issues(name: str) -> tuple[PolicyIssue, ...]:
    with pytest.raises(PolicyError) as info:
        load_policy(CORPUS / name)
    assert info.value.issues, f"{name}: PolicyError without issues"
    return info.value.issues


def test_corpus_is_large_enough() -> None:
    """The corpus holds at least 60 bad policies."""
    assert len(CASES) >= 60


def test_every_corpus_file_is_expected_and_vice_versa() -> None:
    """EXPECTED.yaml lists exactly the non-helper files of the corpus."""
    assert set(EXPECTED) == set(CASES)


def test_expected_entries_are_well_formed() -> None:
    """Each EXPECTED.yaml entry has an int line, a str field, a str contains, an optional file."""
    for name, entry in EXPECTED.items():
        assert set(entry) <= {"line", "field", "contains", "file"}, name
        assert isinstance(entry["line"], int), name
        assert isinstance(entry["field"], str), name
        assert isinstance(entry["contains"], str), name
        assert entry["contains"], name
        assert isinstance(entry.get("file", name), str), name


def test_helpers_exist_and_base_is_valid() -> None:
    """The helper _base.yaml other corpus files extend is itself a valid policy."""
    assert check_policy(CORPUS / "_base.yaml") == []


@pytest.mark.parametrize("name", CASES)
def test_bad_policy_is_refused_with_expected_first_issue(name: str) -> None:
    """load_policy raises PolicyError whose first issue has the expected file, line, field, text."""
    expected = EXPECTED[name]
    first = _issues(name)[0]
    assert first.file.endswith(expected.get("file", name)), str(first)
    assert first.line == expected["line"], str(first)
    assert first.field == expected["field"], str(first)
    assert expected["contains"] in first.message, str(first)


@pytest.mark.parametrize("name", CASES)
def test_every_issue_renders_as_one_line(name: str) -> None:
    """Every issue of a bad policy renders as exactly one line starting with its file."""
    for issue in _issues(name):
        text = str(issue)
        assert "\n" not in text, repr(text)
        assert "\r" not in text, repr(text)
        assert text.startswith(issue.file), text


@pytest.mark.parametrize("name", CASES)
def test_issue_messages_show_plain_values(name: str) -> None:
    """Messages quote the user's values, never the loader's internal Located wrappers."""
    for issue in _issues(name):
        assert "Located(" not in str(issue), str(issue)


@pytest.mark.parametrize("name", CASES)
def test_check_policy_agrees_with_load_policy(name: str) -> None:
    """check_policy returns the same issues load_policy raises."""
    assert tuple(check_policy(CORPUS / name)) == _issues(name)


def test_parent_mistake_names_parent_file_not_child() -> None:
    """A mistake in the parent of an extends chain is reported at the parent's file and line."""
    issues = _issues("parent_mistake.yaml")
    assert all(issue.file.endswith("_bad_parent.yaml") for issue in issues)
    assert str(issues[0]).endswith(
        "_bad_parent.yaml:6: defaults.backoff.multiplier: 0 is out of range: must be at least 1"
    )


def test_alias_bomb_is_stopped_by_the_node_budget() -> None:
    """The billion-laughs document is refused for its size, with a single issue."""
    issues = _issues("alias_bomb.yaml")
    assert len(issues) == 1
    assert "aliases nested too deep" in issues[0].message

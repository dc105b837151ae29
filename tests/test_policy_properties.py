"""Properties of the policy engine over random valid policy documents and random codes."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_resilience._failure import SUCCESS, TRANSPORT_KINDS, Failure, TransportKind
from asr_resilience.policy import ACTIONS, Policy, load_policy
from asr_resilience.policy._model import JITTERS

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- documents ------------------------------------------------------------------------------

# How a number of milliseconds may be written in a policy file.
RENDERERS: tuple[Callable[[int], object], ...] = (
    lambda ms: f"{ms}ms",
    lambda ms: f"{ms / 1000}s",
    lambda ms: ms / 1000,
    lambda ms: f"{ms / 60000:.9f}m",
)


@st.composite
def backoff_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A complete, valid backoff mapping (max at least initial)."""
    initial_ms = draw(st.integers(1, 5_000))
    max_ms = initial_ms + draw(st.integers(0, 60_000))
    render = draw(st.sampled_from(RENDERERS))
    return {
        "initial": render(initial_ms),
        "max": render(max_ms),
        "multiplier": draw(st.one_of(st.integers(1, 5), st.floats(1.0, 10.0))),
        "jitter": draw(st.sampled_from(JITTERS)),
    }


@st.composite
def rule_backoff_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A rule's backoff: a complete one, or only the keys that cannot clash with the defaults."""
    if draw(st.booleans()):
        return draw(backoff_docs())
    partial: dict[str, Any] = {}
    if draw(st.booleans()):
        partial["multiplier"] = draw(st.floats(1.0, 4.0))
    if draw(st.booleans()) or not partial:
        partial["jitter"] = draw(st.sampled_from(JITTERS))
    return partial


CODE_PATTERNS = st.one_of(
    st.sampled_from(["5xxxxxxx", "4xxxxxxx", "4000000x", "xxxxxxxx", "4xx", "5xx", "xxx", "x"]),
    st.text(alphabet="0123456789x", min_size=1, max_size=9).filter(lambda s: "x" in s),
)
VENDOR_CODES = st.one_of(
    st.integers(40_000_000, 59_999_999).filter(lambda c: c != SUCCESS),
    st.integers(1, 99_999_999).filter(lambda c: c != SUCCESS),
)
MESSAGES = st.sampled_from(
    ["TOO_MANY_REQUESTS", "GRPC_ERROR", "wav header", "^Gateway:", "(?i)token", r"\(\d+\)", "."]
)


def _one_or_list(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(items, st.lists(items, min_size=1, max_size=5))


@st.composite
def match_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A match with at least one valid criterion."""
    criteria = draw(
        st.sets(st.sampled_from(["codes", "message", "http_status", "transport"]), min_size=1)
    )
    match: dict[str, Any] = {}
    if "codes" in criteria:
        match["codes"] = draw(_one_or_list(st.one_of(VENDOR_CODES, CODE_PATTERNS)))
    if "message" in criteria:
        match["message"] = draw(MESSAGES)
    if "http_status" in criteria:
        match["http_status"] = draw(
            _one_or_list(st.one_of(st.integers(100, 599), st.sampled_from(["4xx", "5xx", "xxx"])))
        )
    if "transport" in criteria:
        match["transport"] = draw(st.booleans())
    return match


@st.composite
def rule_docs(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """A valid rule; named rule-<index> or left unnamed."""
    rule: dict[str, Any] = {"match": draw(match_docs()), "action": draw(st.sampled_from(ACTIONS))}
    if draw(st.booleans()):
        rule["name"] = f"rule-{index}"
    if draw(st.booleans()):
        rule["max_attempts"] = draw(st.integers(1, 12))
    if draw(st.booleans()):
        rule["backoff"] = draw(rule_backoff_docs())
    return rule


@st.composite
def policy_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid policy document."""
    doc: dict[str, Any] = {"version": 1}
    if draw(st.booleans()):
        defaults: dict[str, Any] = {}
        if draw(st.booleans()):
            defaults["max_attempts"] = draw(st.integers(1, 10))
        if draw(st.booleans()):
            defaults["deadline"] = draw(st.sampled_from(RENDERERS))(draw(st.integers(1, 600_000)))
        if draw(st.booleans()):
            defaults["backoff"] = draw(backoff_docs())
        doc["defaults"] = defaults
    if draw(st.booleans()):
        doc["unknown"] = {
            key: draw(st.sampled_from(ACTIONS))
            for key in draw(st.sets(st.sampled_from(["client", "server", "other"])))
        }
    if draw(st.booleans()):
        doc["language"] = draw(st.sampled_from(["en", "zh"]))
    if draw(st.booleans()):
        low = draw(st.integers(1, 50))
        high = draw(st.integers(low, 300))
        doc["concurrency"] = {
            "adaptive": draw(st.booleans()),
            "min": low,
            "max": high,
            "initial": draw(st.integers(low, high)),
        }
    if draw(st.booleans()):
        doc["retry_budget"] = {
            "ratio": draw(st.floats(0.0, 1.0)),
            "min_per_second": draw(st.floats(0.0, 100.0)),
        }
    count = draw(st.integers(0, 6))
    doc["rules"] = [draw(rule_docs(i)) for i in range(count)]
    return doc


def _load(tmp_path: Path, doc: dict[str, Any]) -> Policy:
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_policy(path)


CODES = st.one_of(
    st.integers(40_000_000, 49_999_999),
    st.integers(50_000_000, 59_999_999),
    st.integers(100, 999),
    st.integers(-(10**12), -1),
    st.just(0),
    st.integers(10**9, 10**40),
    st.integers(),
).filter(lambda c: c != SUCCESS)


# -- properties -----------------------------------------------------------------------------


@SETTINGS
@given(doc=policy_docs(), codes=st.lists(CODES, min_size=1, max_size=25))
def test_every_code_gets_one_action_and_a_finite_schedule(
    tmp_path: Path, doc: dict[str, Any], codes: list[int]
) -> None:
    """Any valid policy gives any code one action and a finite schedule of the right length."""
    policy = _load(tmp_path, doc)
    assert len(policy.rules) == len(doc["rules"])
    for code in codes:
        decision = policy.decide_code(code)
        assert decision.action in ACTIONS
        assert decision.max_attempts >= 1
        schedule = decision.schedule()
        if decision.action == "retry":
            assert len(schedule) == decision.max_attempts - 1
        else:
            assert schedule == ()
        if decision.action in ("fail-fast", "fix-client"):
            assert decision.max_attempts == 1
        for value in schedule:
            assert math.isfinite(value)
            assert 0 <= value <= decision.backoff.max
        assert decision.deadline > 0
        assert decision == policy.decide(Failure(code=code))


@SETTINGS
@given(
    doc=policy_docs(),
    status=st.integers(100, 599),
    kind=st.sampled_from(TRANSPORT_KINDS),
    code=VENDOR_CODES,
    message=st.text(max_size=40),
)
def test_every_failure_shape_gets_one_action(
    tmp_path: Path, doc: dict[str, Any], status: int, kind: TransportKind, code: int, message: str
) -> None:
    """HTTP, transport, and code-with-message failures also get exactly one bounded decision."""
    policy = _load(tmp_path, doc)
    failures = [
        Failure(http_status=status),
        Failure(transport=kind),
        Failure(code=code, message=message),
        Failure(code=code, http_status=status),
    ]
    for failure in failures:
        decision = policy.decide(failure)
        assert decision.action in ACTIONS
        assert decision.code == failure.effective_code
        schedule = decision.schedule()
        expected = decision.max_attempts - 1 if decision.action == "retry" else 0
        assert len(schedule) == expected
        assert all(math.isfinite(v) and 0 <= v <= decision.backoff.max for v in schedule)


@SETTINGS
@given(doc=policy_docs())
def test_first_matching_rule_wins(tmp_path: Path, doc: dict[str, Any]) -> None:
    """An exact code of a codes-only rule is decided by that rule or by an earlier one."""
    policy = _load(tmp_path, doc)
    position = {rule.name: i for i, rule in enumerate(policy.rules)}
    for index, rule_doc in enumerate(doc["rules"]):
        match = rule_doc["match"]
        if set(match) != {"codes"}:
            continue
        listed = match["codes"] if isinstance(match["codes"], list) else [match["codes"]]
        for code in listed:
            if isinstance(code, int):
                decision = policy.decide_code(code)
                assert decision.rule in position
                assert position[decision.rule] <= index

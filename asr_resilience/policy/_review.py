"""What a reviewer of a policy wants to see: the effective table, and warnings.

Warnings: a retry schedule whose worst case cannot fit the deadline (the last retries would give up
with DeadlineExceededError before being tried), and a rule shadowed by earlier rules (it can never
be the first match).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._catalog import catalog
from .._durations import format_duration
from .._failure import TRANSPORT_KINDS, Failure
from ._decision import Decision
from ._matchers import AllOf, AnyOf, Codes, HttpStatus, Matcher, Message, Transport
from ._policy import Policy

HTTP_SAMPLES = (400, 401, 403, 404, 429, 500, 502, 503)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the effective table."""

    label: str
    failure: Failure
    decision: Decision


def effective_table(policy: Policy) -> list[Row]:
    """Every catalog code, sample HTTP statuses and every transport kind, with the decision."""
    rows = [
        Row(str(code), Failure(code=code), policy.decide_code(code))
        for code in catalog().codes()
        if code != 20000000
    ]
    rows += [
        Row(f"HTTP {s}", Failure(http_status=s), policy.decide(Failure(http_status=s)))
        for s in HTTP_SAMPLES
    ]
    rows += [
        Row(f"transport:{k}", Failure(transport=k), policy.decide(Failure(transport=k)))
        for k in TRANSPORT_KINDS
    ]
    return rows


def worst_case_wait(decision: Decision) -> float:
    """The longest the retries of a decision can wait in all (jitter at its maximum)."""
    backoff = decision.backoff
    retries = max(0, decision.max_attempts - 1)
    if backoff.jitter == "decorrelated":
        return backoff.max * retries
    return sum(backoff.base_delays(retries))


def warnings(policy: Policy) -> list[str]:
    """Human-readable warnings about a valid policy."""
    found: list[str] = []
    seen: set[str] = set()
    for row in effective_table(policy):
        decision = row.decision
        if decision.action != "retry" or decision.rule in seen:
            continue
        seen.add(decision.rule)
        worst = worst_case_wait(decision)
        if worst > decision.deadline:
            found.append(
                f"rule {decision.rule!r}: {decision.max_attempts} attempts may wait up to "
                f"{format_duration(round(worst, 3))} in all, more than the deadline "
                f"{format_duration(decision.deadline)}: the last retries would give up with "
                "DeadlineExceededError"
            )
    for index, rule in enumerate(policy.rules):
        samples = _samples(rule.match)
        if samples is None or not samples:
            continue
        earlier = policy.rules[:index]
        if all(any(other.match(s) for other in earlier) for s in samples if rule.match(s)):
            found.append(
                f"rule {rule.name!r} (rules[{index}]) is shadowed by earlier rules: "
                "it can never be the first match"
            )
    return found


def _samples(matcher: Matcher) -> list[Failure] | None:
    """Failures that exercise a matcher; None when it depends on text we cannot enumerate."""
    if isinstance(matcher, Message):
        return None
    if isinstance(matcher, AllOf | AnyOf):
        parts = [_samples(part) for part in matcher.parts]
        if any(p is None for p in parts):
            return None
        return [s for p in parts if p is not None for s in p]
    if isinstance(matcher, Codes):
        codes = [*matcher.exact]
        for pattern in matcher.patterns:
            codes += [int(pattern.pattern.replace("x", d)) for d in "059"]
        return [Failure(code=c) for c in codes if c != 20000000 and c > 0]
    if isinstance(matcher, HttpStatus):
        statuses = [*matcher.exact]
        for pattern in matcher.patterns:
            statuses += [int(pattern.pattern.replace("x", d)) for d in "059"]
        return [Failure(http_status=s) for s in statuses]
    if isinstance(matcher, Transport):
        return [Failure(transport=k) for k in TRANSPORT_KINDS] + [Failure(code=50000000)]
    return None

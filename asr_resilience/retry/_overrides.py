"""Per-call and per-process limits that override the policy's: ``deadline`` and ``max_attempts``.

Precedence, highest first (README "Per-call overrides"):

1. the call's own arguments (``Recognizer.recognize(audio, deadline=3, max_attempts=2)``);
2. the decorator's or block's arguments (``@resilient(deadline=...)``, ``fn.retry_with(...)``,
   a client's constructor for a stream);
3. the environment, ``ASR_RESILIENCE_DEADLINE`` and ``ASR_RESILIENCE_MAX_ATTEMPTS``, read when
   the settings are built (never on a call);
4. the policy file (``defaults.deadline``; each rule's ``max_attempts``).

``deadline`` replaces the policy's ``defaults.deadline`` for the call. ``max_attempts`` is a
ceiling on every rule's attempts: it lowers them, never raises them (a rule's backoff was sized
for its own attempts, and more attempts across a fleet amplify an outage; raise them in the
policy, where ``policy check`` reviews the schedule against the deadline). A higher level
replaces a lower one's value: a call's ``max_attempts=5`` lifts an environment's ``2``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping

from .._durations import format_duration, parse_duration
from .._errors import PolicyError, PolicyIssue
from ..policy import Policy
from ..policy._bounds import MAX_ATTEMPTS, MAX_DEADLINE

__all__ = [
    "ENV_DEADLINE",
    "ENV_MAX_ATTEMPTS",
    "call_limits",
    "check_deadline",
    "check_max_attempts",
    "effective_policy",
    "from_environment",
]

ENV_DEADLINE = "ASR_RESILIENCE_DEADLINE"
"""A duration (``5s``, ``500ms``, ``2m`` or plain seconds) replacing ``defaults.deadline``."""
ENV_MAX_ATTEMPTS = "ASR_RESILIENCE_MAX_ATTEMPTS"
"""A whole number of attempts (the first included) capping every rule's ``max_attempts``."""


def check_deadline(value: object, name: str = "deadline") -> float:
    """``value`` as seconds if it is a positive, finite number of them; else ValueError naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    if seconds > MAX_DEADLINE:
        raise ValueError(
            f"{name} must be at most {format_duration(MAX_DEADLINE)} (a policy's ceiling), "
            f"got {value!r}"
        )
    return seconds


def check_max_attempts(value: object, name: str = "max_attempts") -> int:
    """``value`` if it is a whole number of attempts from 1 to the policy ceiling; else
    ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number of attempts, got {value!r}")
    if not 1 <= value <= MAX_ATTEMPTS:
        raise ValueError(
            f"{name} must be from 1 to {MAX_ATTEMPTS} (attempts in all), got {value!r}"
        )
    return value


def from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[float | None, int | None]:
    """``(deadline, max_attempts)`` from the environment (None where a variable is unset or
    empty); a bad value raises :class:`~asr_resilience.PolicyError` naming the variable."""
    env = os.environ if environ is None else environ
    deadline: float | None = None
    max_attempts: int | None = None
    raw = env.get(ENV_DEADLINE, "").strip()
    if raw:
        try:
            deadline = check_deadline(_duration(raw), ENV_DEADLINE)
        except ValueError as exc:
            raise _env_error(ENV_DEADLINE, raw, exc) from None
    raw = env.get(ENV_MAX_ATTEMPTS, "").strip()
    if raw:
        try:
            number = int(raw, 10)
        except ValueError:
            error = ValueError("must be a whole number of attempts (the first included)")
            raise _env_error(ENV_MAX_ATTEMPTS, raw, error) from None
        try:
            max_attempts = check_max_attempts(number, ENV_MAX_ATTEMPTS)
        except ValueError as exc:
            raise _env_error(ENV_MAX_ATTEMPTS, raw, exc) from None
    return deadline, max_attempts


def _duration(text: str) -> float:
    try:
        return float(text)  # plain seconds, as AWS_MAX_ATTEMPTS-style variables are written
    except ValueError:
        return parse_duration(text)


def _env_error(variable: str, raw: str, exc: ValueError) -> PolicyError:
    reason = str(exc).removeprefix(variable).lstrip()
    return PolicyError([PolicyIssue(f"${variable}", 0, "", f"{raw!r}: {reason}")])


def effective_policy(policy: Policy, deadline: float | None, max_attempts: int | None) -> Policy:
    """``policy`` with ``deadline`` as its ``defaults.deadline`` and every rule's attempts capped
    at ``max_attempts``: what a caller with these overrides does, for inspection
    (``fn.policy``); ``policy`` itself when neither changes anything."""
    defaults = policy.defaults
    new_deadline = defaults.deadline if deadline is None else deadline
    cap = MAX_ATTEMPTS if max_attempts is None else max_attempts
    rules = tuple(
        dataclasses.replace(rule, max_attempts=cap)
        if rule.max_attempts is not None and rule.max_attempts > cap
        else rule
        for rule in policy.rules
    )
    attempts = min(defaults.max_attempts, cap)
    if (new_deadline, attempts, rules) == (defaults.deadline, defaults.max_attempts, policy.rules):
        return policy
    new_defaults = dataclasses.replace(defaults, deadline=new_deadline, max_attempts=attempts)
    return dataclasses.replace(policy, defaults=new_defaults, rules=rules)


def call_limits(
    deadline: float | None, max_attempts: int | None
) -> tuple[float | None, int | None]:
    """A call's own ``deadline`` and ``max_attempts`` checked (None: the caller's settings)."""
    return (
        None if deadline is None else check_deadline(deadline),
        None if max_attempts is None else check_max_attempts(max_attempts),
    )

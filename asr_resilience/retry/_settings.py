"""Build the settings of a decorated function or block from what the user passed."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

from .._clock import SYSTEM_CLOCK, Clock
from ..policy import Policy, load_policy
from ._call import CallSettings
from ._overrides import check_deadline, check_max_attempts, from_environment

if TYPE_CHECKING:
    from ..tokens import TokenManager

PolicyLike = Policy | str | os.PathLike[str] | None


def resolve_policy(policy: PolicyLike) -> Policy:
    """A Policy as given, or loaded from a path / shipped name, or the process's default."""
    if isinstance(policy, Policy):
        return policy
    return load_policy(policy)


def make_settings(
    policy: PolicyLike,
    *,
    tokens: TokenManager | None,
    scope: str | None,
    function: str,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    check_result: bool = False,
    deadline: float | None = None,
    max_attempts: int | None = None,
) -> CallSettings:
    """The settings of one caller: the policy resolved, the token manager configured by it.

    ``deadline`` and ``max_attempts`` (validated here) override the policy's for every call of
    this caller; where they are None, ``$ASR_RESILIENCE_DEADLINE`` and
    ``$ASR_RESILIENCE_MAX_ATTEMPTS`` do, read now and not on each call (``retry._overrides``).
    """
    if deadline is not None:
        deadline = check_deadline(deadline)
    if max_attempts is not None:
        max_attempts = check_max_attempts(max_attempts)
    env_deadline, env_attempts = from_environment()
    resolved = resolve_policy(policy)
    if tokens is not None:
        tokens.configure(resolved.tokens)
    if deadline is None:
        deadline = env_deadline
    if max_attempts is None:
        max_attempts = env_attempts
    return CallSettings(
        policy=resolved,
        tokens=tokens,
        scope_name=scope or resolved.name,
        clock=clock or SYSTEM_CLOCK,
        rng=rng,
        function=function,
        check_result=check_result,
        deadline=resolved.defaults.deadline if deadline is None else deadline,
        max_attempts=max_attempts,
    )

"""Build the settings of a decorated function or block from what the user passed."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

from .._clock import SYSTEM_CLOCK, Clock
from ..policy import Policy, load_policy
from ._call import CallSettings

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
) -> CallSettings:
    """The settings of one caller: the policy resolved, the token manager configured by it."""
    resolved = resolve_policy(policy)
    if tokens is not None:
        tokens.configure(resolved.tokens)
    return CallSettings(
        policy=resolved,
        tokens=tokens,
        scope_name=scope or resolved.name,
        clock=clock or SYSTEM_CLOCK,
        rng=rng,
        function=function,
        check_result=check_result,
    )

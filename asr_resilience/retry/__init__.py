"""Resilient calls: the one execution core (attempts, the loop, the decorator, the block form).

See ``docs/architecture.md`` for the path of an attempt.
"""

from .attempt import Attempt, DeadlineTimeout
from .clock import SYSTEM_CLOCK, Clock
from .context import retrying
from .decorator import resilient

__all__ = [
    "SYSTEM_CLOCK",
    "Attempt",
    "Clock",
    "DeadlineTimeout",
    "resilient",
    "retrying",
]

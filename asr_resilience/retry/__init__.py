"""Resilient calls: the one execution core (attempts, the loop, the decorator, the block form).

See ``docs/architecture.md`` for the path of an attempt.
"""

from .._attempts import AttemptRecord
from .._clock import SYSTEM_CLOCK, Clock
from ._attempt import Attempt, DeadlineTimeout
from ._context import retrying
from ._decorator import ResilientFunction, resilient

__all__ = [
    "SYSTEM_CLOCK",
    "Attempt",
    "AttemptRecord",
    "Clock",
    "DeadlineTimeout",
    "ResilientFunction",
    "resilient",
    "retrying",
]

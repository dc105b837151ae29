"""Resilient calls: the decorator, the block form, and the clock they wait on."""

from .clock import SYSTEM_CLOCK, Clock
from .context import Attempt, retrying
from .decorator import resilient

__all__ = ["SYSTEM_CLOCK", "Attempt", "Clock", "resilient", "retrying"]

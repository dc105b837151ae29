"""The history of one resilient call: one frozen record per attempt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What happened on one attempt, as reported in errors, logs and hooks."""

    number: int
    """1-based attempt number within the call."""
    code: int | None
    """The vendor code (or HTTP status) the attempt failed with; None for success or transport."""
    action: str | None
    """The policy's action for that failure; None when the attempt succeeded."""
    delay: float
    """Seconds waited after this attempt before the next one (0 when none followed)."""
    at: float
    """Wall-clock time (unix seconds) when the attempt ended."""
    rule: str | None = None
    """Name of the policy rule that matched."""
    message: str = ""
    """The vendor status text or transport detail (never a token)."""
    transport: str | None = None
    """The transport failure kind, when the attempt failed below the protocol."""

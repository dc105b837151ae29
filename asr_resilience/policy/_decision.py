"""The frozen answer of the policy engine for one failure."""

from __future__ import annotations

from dataclasses import dataclass

from .._catalog import CatalogEntry
from ._model import Action, Backoff


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about a failure, which rule said so, and within which limits."""

    action: Action
    rule: str
    """Name of the matching rule, or ``unknown.client`` / ``unknown.server`` / ``unknown.other``."""
    max_attempts: int
    """Attempts in all for the call once this rule matched the latest failure."""
    backoff: Backoff
    deadline: float
    """Seconds the whole call may take."""
    entry: CatalogEntry
    """What the vendor's table says about the code (cause and fix)."""
    code: int | None
    throttled: bool = False
    """True for the vendor's quota answer (40000005) and HTTP 429: the caller is too fast."""

    def schedule(self) -> tuple[float, ...]:
        """Base delays (before jitter) of the retries this decision allows, 0 for none."""
        if self.action != "retry":
            return ()
        return self.backoff.base_delays(max(0, self.max_attempts - 1))

"""A failure as the policy engine sees it: a vendor code, an HTTP status, or a transport failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SUCCESS = 20000000
"""The vendor's success status: never a failure."""
THROTTLE_CODE = 40000005
"""TOO_MANY_REQUESTS: the account's concurrency quota is used up."""

TransportKind = Literal["refused", "reset", "abnormal_close", "timeout", "other"]
TRANSPORT_KINDS: tuple[TransportKind, ...] = (
    "refused",
    "reset",
    "abnormal_close",
    "timeout",
    "other",
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong on one attempt.

    ``code`` is the vendor status (8 digits, or the seed's 403), ``http_status`` the status of a
    WebSocket handshake or REST response, ``transport`` the kind of a connection-level failure.
    When both a vendor code and an HTTP status are present, the vendor code decides.
    """

    code: int | None = None
    message: str = ""
    http_status: int | None = None
    transport: TransportKind | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.code is None and self.http_status is None and self.transport is None:
            raise ValueError("a Failure needs a code, an http_status or a transport kind")
        if self.code == SUCCESS:
            raise ValueError(f"{SUCCESS} is the vendor's success status, not a failure")
        if self.transport is not None and self.transport not in TRANSPORT_KINDS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORT_KINDS)}")

    @property
    def effective_code(self) -> int | None:
        """The code that classifies this failure: the vendor code, else the HTTP status."""
        return self.code if self.code is not None else self.http_status

    @property
    def throttled(self) -> bool:
        """The vendor's quota answer: 40000005, or HTTP 429 when no vendor code came with it."""
        return self.code == THROTTLE_CODE or (self.code is None and self.http_status == 429)

    @property
    def is_code_only(self) -> bool:
        """True when only a code is known, so a cached per-code decision applies."""
        return (
            self.code is not None
            and not self.message
            and self.http_status is None
            and self.transport is None
        )

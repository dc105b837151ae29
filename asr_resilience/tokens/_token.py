"""An NLS access token, its fingerprint, and the shape of a token provider.

A token value is a bearer credential: nothing here ever prints it. ``repr()`` and ``str()`` show
:func:`fingerprint` instead, which is stable (the same value always gives the same fingerprint,
so two log lines can be matched) and short, and cannot be turned back into the value.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Provider", "StaticToken", "Token", "fingerprint"]


def fingerprint(value: str) -> str:
    """A short, stable, non-reversible stand-in for a token value: ``tok:`` + 8 hex digits."""
    return "tok:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """A token value and when it expires (unix seconds; ``None`` = never)."""

    value: str
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"Token({fingerprint(self.value)}, expires_at={self.expires_at!r})"

    def __str__(self) -> str:
        return fingerprint(self.value)


def expiry_problem(expires_at: object, now: float) -> str | None:
    """Why ``expires_at`` cannot be a token's expiry (unix seconds at ``now``); None if it can.

    The reason completes "a token that ...".

    ``None`` (never expires) is fine; NaN, an infinity or a time already past is not: such a
    token would be renewed on every use, or kept forever.
    """
    if expires_at is None:
        return None
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        return f"has an expiry of type {type(expires_at).__name__}, not unix seconds"
    if not math.isfinite(expires_at):
        return f"expires at {expires_at!r}, which is not a time"
    if expires_at <= now:
        return "has already expired"
    return None


Provider: TypeAlias = Callable[[], "Token | str | Awaitable[Token | str]"]
"""Where fresh tokens come from: a sync or async callable returning a :class:`Token` or a str.

A plain str is a token that never expires. A provider may also have an ``identity``
attribute: a string naming the credentials its tokens belong to, without any secret (for
:class:`AliyunTokenProvider`, a hash of the AccessKey id, region and endpoint). A fleet's shared
token is kept under it (``RedisTokenCache``); a provider without one needs an explicit name there.
"""


class StaticToken:
    """A provider that always returns the same token (e.g. one taken from ``NLS_TOKEN``)."""

    __slots__ = ("_token",)

    def __init__(self, value: str, expires_at: float | None = None) -> None:
        self._token = Token(value, expires_at)

    def __call__(self) -> Token:
        return self._token

    def __repr__(self) -> str:
        return f"StaticToken({self._token!r})"

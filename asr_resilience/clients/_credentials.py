"""A client's appkey and token: where they come from when the caller does not hand them over,
and where the token travels."""

from __future__ import annotations

import os

from ..tokens import StaticToken, TokenManager

__all__ = ["APPKEY_ENV", "TOKEN_ENV", "TOKEN_HEADER", "resolve_appkey", "resolve_tokens"]

TOKEN_ENV = "NLS_TOKEN"
APPKEY_ENV = "NLS_APPKEY"
TOKEN_HEADER = "X-NLS-Token"
"""Where both transports carry the token (PROTOCOL.md "Authentication": every SDK sends it)."""


def resolve_tokens(tokens: TokenManager | str | None) -> TokenManager:
    """A TokenManager as given; a str is a static token; None reads ``$NLS_TOKEN``."""
    if isinstance(tokens, TokenManager):
        return tokens
    value = tokens if tokens is not None else os.environ.get(TOKEN_ENV, "")
    if not value:
        raise ValueError(
            f"no NLS token: pass tokens= (a TokenManager, or a token string) or set {TOKEN_ENV}"
        )
    return TokenManager(StaticToken(value))


def resolve_appkey(appkey: str) -> str:
    """The appkey as given, else ``$NLS_APPKEY``; ``ValueError`` when there is none."""
    value = appkey or os.environ.get(APPKEY_ENV, "")
    if not value:
        raise ValueError(
            f"no appkey: pass appkey= (the project's appkey from the NLS console) or set "
            f"{APPKEY_ENV}"
        )
    return value

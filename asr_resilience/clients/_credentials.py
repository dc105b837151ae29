"""A client's appkey and token: where they come from when the caller does not hand them over,
and where the token travels."""

from __future__ import annotations

import os
import re

from .._errors import InvalidTokenError
from ..tokens import StaticToken, TokenManager

__all__ = [
    "APPKEY_ENV",
    "TOKEN_ENV",
    "TOKEN_HEADER",
    "check_token",
    "resolve_appkey",
    "resolve_tokens",
]

TOKEN_ENV = "NLS_TOKEN"
APPKEY_ENV = "NLS_APPKEY"
TOKEN_HEADER = "X-NLS-Token"
"""Where both transports carry the token (docs/protocol.md "Handshake and token header")."""


def resolve_tokens(tokens: TokenManager | str | None) -> TokenManager:
    """A TokenManager as given; a str is a static token; None reads ``$NLS_TOKEN``.

    A static token with whitespace or control characters raises :class:`InvalidTokenError`
    (a ``ValueError``) here, at construction.
    """
    if isinstance(tokens, TokenManager):
        return tokens
    value = tokens if tokens is not None else os.environ.get(TOKEN_ENV, "")
    if not value:
        raise ValueError(
            f"no NLS token: pass tokens= (a TokenManager, or a token string) or set {TOKEN_ENV}"
        )
    check_token(value, "the token" if tokens is not None else f"${TOKEN_ENV}")
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


def check_token(token: str, where: str = "the token") -> str:
    """``token`` if every character is visible ASCII; else :class:`InvalidTokenError`.

    docs/protocol.md "Handshake and token header": the token travels as an HTTP header value. One
    with spaces or a line break (read from a file without stripping it) would be refused by the
    handshake and retried as a transport failure, or worse, split the header: it is refused here,
    before any I/O, and the error never repeats the value.
    """
    if token and not _TOKEN_CHARS.fullmatch(token):
        raise InvalidTokenError(where)
    return token


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

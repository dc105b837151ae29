"""The token manager: one shared NLS token, refreshed single-flight across tasks and threads."""

from ._aliyun import AliyunTokenProvider, CredentialsError, TokenProviderError
from ._manager import (
    DEFAULT_FAILURE_COOLDOWN,
    DEFAULT_PROVIDER_BACKOFF,
    DEFAULT_REFRESH_AHEAD,
    PROACTIVE_RETRY_PAUSE,
    TokenManager,
)
from ._store import Claim, LocalTokenStore, TokenStore
from ._token import Provider, StaticToken, Token, fingerprint

__all__ = [
    "DEFAULT_FAILURE_COOLDOWN",
    "DEFAULT_PROVIDER_BACKOFF",
    "DEFAULT_REFRESH_AHEAD",
    "PROACTIVE_RETRY_PAUSE",
    "AliyunTokenProvider",
    "Claim",
    "CredentialsError",
    "LocalTokenStore",
    "Provider",
    "StaticToken",
    "Token",
    "TokenManager",
    "TokenProviderError",
    "TokenStore",
    "fingerprint",
]

"""Fleet scale on Redis: one token and one concurrency quota for every worker of an account.

Needs redis-py (``pip install 'asr-resilience[redis]'``); the rest of the package never imports
this subpackage unless a policy enables ``fleet:`` or the code uses it.
"""

from .connection import (
    FleetConnection,
    FleetUnavailable,
    close_shared_connections,
    resolve_url,
    shared_connection,
)
from .limiter import FleetLimiter, FleetPermit
from .tokens import RedisTokenCache

__all__ = [
    "FleetConnection",
    "FleetLimiter",
    "FleetPermit",
    "FleetUnavailable",
    "RedisTokenCache",
    "close_shared_connections",
    "resolve_url",
    "shared_connection",
]

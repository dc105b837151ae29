"""Fleet scale on Redis: one token and one concurrency quota for every worker of an account.

Needs redis-py (``pip install 'asr-resilience[redis]'``); the rest of the package never imports
this subpackage unless a policy enables ``fleet:`` or the code uses it. Importing it registers
the ``"redis"`` limiter backend with :mod:`asr_resilience.limits._backends`, which is how a scope
with ``fleet.enabled`` finds it (the limits layer never imports the fleet).
"""

from .._extras import requires_extra
from .._redis_url import RedisUrlError
from ..limits._backends import register_limiter_backend

with requires_extra("asr_resilience.fleet (RedisTokenCache, the fleet limiter)"):
    import redis  # noqa: F401  (checked here: every module below needs it)

from ._connection import (
    FleetConnection,
    FleetKeyConflict,
    FleetUnavailable,
    close_shared_connections,
    resolve_url,
    shared_connection,
)
from ._limiter import FleetLimiter, FleetPermit
from ._tokens import RedisTokenCache, RedisTokenStore

register_limiter_backend("redis", FleetLimiter.for_scope)

__all__ = [
    "FleetConnection",
    "FleetKeyConflict",
    "FleetLimiter",
    "FleetPermit",
    "FleetUnavailable",
    "RedisTokenCache",
    "RedisTokenStore",
    "RedisUrlError",
    "close_shared_connections",
    "resolve_url",
    "shared_connection",
]

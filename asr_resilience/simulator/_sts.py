"""A credentials source for tests: ``GET /sts/credentials`` mints STS credentials.

docs/protocol.md "Credentials": the vendor's credentials library renews rotating credentials
from a source such as the ECS metadata service or a credentials URI
(``ALIBABA_CLOUD_CREDENTIALS_URI``), whose answer is
``{"Code": "Success", "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}`` with
``Expiration`` as ``YYYY-MM-DDThh:mm:ssZ`` (UTC). This route answers in that form with fresh
credentials of an account of the simulator, so a test can point the library's default chain at
it and watch the credentials rotate. Query: ``account`` (default: the default account) and
``ttl`` (seconds until they expire, default 3600; negative: already expired).
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from ._accounts import AccountStore

__all__ = ["STS_PATH", "add_sts_routes"]

STS_PATH = "/sts/credentials"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def add_sts_routes(app: web.Application, store: AccountStore) -> None:
    """Serve :data:`STS_PATH` on ``app`` from ``store``'s accounts."""

    async def credentials(request: web.Request) -> web.Response:
        name = request.query.get("account")
        try:
            ttl = float(request.query.get("ttl", "3600"))
            if not math.isfinite(ttl):
                raise ValueError
            account = store.get(name) if name else store.default
        except (ValueError, KeyError):
            return web.json_response({"Code": "InvalidParameter"}, status=400)
        issued = store.issue_sts(account, ttl)
        return web.json_response(
            {
                "Code": "Success",
                "AccessKeyId": issued.access_key_id,
                "AccessKeySecret": issued.access_key_secret,
                "SecurityToken": issued.security_token,
                "Expiration": _iso(issued.expires_at),
                "LastUpdated": _iso(store.clock()),
            }
        )

    app.router.add_get(STS_PATH, credentials)

"""May this token start a task with this appkey? The account checks of the start directive.

docs/protocol.md "Handshake and token header" and "Status codes", in the order the simulated gateway
applies them after the directive itself is valid (the order is ours:
docs/protocol.md "Simulator choices"): the token (40000001, expired or invalid), the appkey
(41000002 null, 40020105 unknown, 40020106 another account's, 41000003 no route), the account
(40000010 trial over). The quota (40000005) comes last, from :meth:`AccountStore.acquire_slot`.
"""

from __future__ import annotations

from ..protocol import GatewayReject
from ._accounts import Account, AccountStore, TokenProblem

APPKEY_NULL = (41000002, "Gateway:APPKEY_IS_NULL:Appkey is null!")
"""Beyond the seed (docs/protocol.md "Status codes"): our text, the code users report."""
APPKEY_NOT_EXIST = (40020105, "Meta:APPKEY_NOT_EXIST:Appkey not exist!")
APPKEY_UID_MISMATCH = (40020106, "Meta:APPKEY_UID_MISMATCH:Appkey and user mismatch!")
NO_ROUTE = (41000003, "MetaInfo doesn't have end point info")
FREE_TRIAL_EXPIRED = (40000010, "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!")
TOO_MANY_REQUESTS = (40000005, "Gateway:TOO_MANY_REQUESTS:Too many requests!")
TOKEN_INVALID = 40000001


def token_text(token: str, problem: TokenProblem) -> str:
    """docs/protocol.md "Handshake and token header": the two texts of 40000001."""
    if problem.reason == "expired":
        return f"Gateway:ACCESS_DENIED:The token '{token}' has expired!"
    return f"Meta:ACCESS_DENIED:The token '{token}' is invalid!"


def check_task(store: AccountStore, token: str, appkey: str) -> Account:
    """The account that runs the task; GatewayReject with the vendor's code otherwise."""
    try:
        account = store.check_token(token)
    except TokenProblem as problem:
        raise GatewayReject(TOKEN_INVALID, token_text(token, problem)) from None
    if not appkey:
        raise GatewayReject(*APPKEY_NULL)
    owner = store.appkey_owner(appkey)
    if owner is None:
        raise GatewayReject(*APPKEY_NOT_EXIST)
    if owner.name != account.name:
        raise GatewayReject(*APPKEY_UID_MISMATCH)
    if appkey in owner.unrouted_appkeys:
        raise GatewayReject(*NO_ROUTE)
    if owner.trial_expired:
        raise GatewayReject(*FREE_TRIAL_EXPIRED)
    return account

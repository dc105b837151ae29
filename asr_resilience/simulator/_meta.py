"""The simulated meta service (``nls-meta``): ``CreateToken`` at the root path, GET or POST.

docs/protocol.md "CreateToken": the official clients sign CreateToken one of two ways, and a
faithful endpoint accepts both —

* RPC v1 (``aliyun-python-sdk-core``, used by ``nls.token.getToken``): ``Action``, ``Version``,
  ``AccessKeyId``, ``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``, ``SignatureNonce``,
  ``Timestamp``, ``Format``, ``RegionId`` and ``Signature`` in the query string (also for POST;
  form-encoded body parameters of a POST are signed too, as the SDK signs them);
* V3 ``ACS3-HMAC-SHA256`` (``alibabacloud-nls-cloud-meta20190228``): ``x-acs-action``,
  ``x-acs-version``, ``x-acs-date``, ``x-acs-signature-nonce``, ``x-acs-content-sha256`` headers
  and ``Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``.

The request is told apart by its ``Authorization`` header. Checks, in order, each refusal
answered with the usual POP error body ``{"RequestId", "HostId", "Code", "Message"}``:

* a mandatory parameter or header is missing: 400 ``MissingParameter``;
* a parameter is malformed or repeated, or the signature method/version is not RPC v1's:
  400 ``InvalidParameter``;
* the Authorization header is malformed, or ``host`` / an ``x-acs-*`` header is not signed:
  400 ``IncompleteSignature``;
* ``Action`` is not CreateToken: 404 ``InvalidAction.NotFound``; ``Version`` is not
  2019-02-28: 400 ``InvalidVersion``;
* the timestamp is not ``YYYY-MM-DDThh:mm:ssZ``: 400 ``InvalidTimeStamp.Format``; it is more
  than :data:`MAX_CLOCK_SKEW` (15 min) off: 400 ``InvalidTimeStamp.Expired``;
* no account has the AccessKeyId: 404 ``InvalidAccessKeyId.NotFound``;
* STS credentials (docs/protocol.md "Credentials"; the security token in ``SecurityToken`` for
  RPC v1, ``x-acs-security-token`` for V3): none sent with an STS AccessKeyId, 400
  ``MissingSecurityToken``; one that is not the AccessKeyId's, 400
  ``InvalidSecurityToken.MismatchWithAccessKey``; an expired one, 403
  ``InvalidSecurityToken.Expired`` (``Specified SecurityToken is expired.``), checked before the
  signature;
* the signature is wrong (a wrong secret, a parameter changed after signing), or
  ``x-acs-content-sha256`` does not match the body: 400 ``SignatureDoesNotMatch``;
* the nonce was used in the last 15 min (a replay): 400 ``SignatureNonceUsed``;
* the AccessKeyId's last successful call was less than ``throttle_interval`` seconds ago:
  400 ``Throttling.User`` (``Request was denied due to user flow control.``).

Like the real service, ``SignatureDoesNotMatch`` carries the server's string to sign
(``... server string to sign is:<text>``), which never holds a secret. aliyun-python-sdk-core
compares it with its own and, when they are equal (so the secret must be wrong), reports
``InvalidAccessKeySecret`` to its caller — for its typed ``RpcRequest`` only: the
``CommonRequest`` that ``nls.token.getToken`` sends keeps ``SignatureDoesNotMatch``.

The timestamp is checked against the wall clock (``time.time``), not the store's clock: clients
stamp requests with real time even when a test fakes the store's clock. ``ExpireTime`` of the
issued token comes from the store (``store.clock() + store.token_ttl``). Only calls that pass
authentication count toward throttling. Responses are always JSON (the real service answers XML
when ``Format`` is absent). Bearer tokens are not simulated.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from aiohttp import web

from ..tokens._token import fingerprint
from ._accounts import Account, AccountStore
from ._signing import (
    RPC_SIGNATURE_METHOD,
    RPC_SIGNATURE_VERSION,
    V3_ALGORITHM,
    parse_timestamp,
    parse_v3_authorization,
    rpc_signature,
    rpc_string_to_sign,
    sha256_hex,
    signatures_equal,
    v3_canonical_request,
    v3_signature,
    v3_string_to_sign,
)

__all__ = ["MAX_CLOCK_SKEW", "META_VERSION", "PopError", "add_meta_routes"]

META_VERSION = "2019-02-28"
MAX_CLOCK_SKEW = 900.0
"""Seconds a request's timestamp may be off the server's clock; also how long nonces are kept."""

_ACTION = "CreateToken"
_MAX_FIELDS = 200
_MAX_NONCES = 100_000
_RPC_REQUIRED = (
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)
_V3_REQUIRED = (
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)
_FORM = "application/x-www-form-urlencoded"

logger = logging.getLogger(__name__)


class PopError(Exception):
    """A refusal in POP form: HTTP status, ``Code`` and ``Message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status
        self.code = code
        self.message = message


def _missing(name: str) -> NoReturn:
    raise PopError(
        400,
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request '
        "is not supplied.",
    )


def _invalid(message: str) -> NoReturn:
    raise PopError(400, "InvalidParameter", message)


def _incomplete(detail: str) -> NoReturn:
    raise PopError(
        400,
        "IncompleteSignature",
        f"The request signature does not conform to Aliyun standards: {detail}",
    )


def _mismatch(string_to_sign: str) -> NoReturn:
    raise PopError(
        400,
        "SignatureDoesNotMatch",
        "Specified signature does not match our calculation. "
        f"server string to sign is:{string_to_sign}",
    )


def _parse_pairs(text: str, where: str) -> dict[str, str]:
    """``name=value&...`` decoded; a repeated or undecodable name is refused."""
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (ValueError, UnicodeDecodeError):
        _invalid(f"The {where} is malformed.")
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            _invalid(f'The parameter "{name}" is given more than once.')
        out[name] = value
    return out


class _Meta:
    """The CreateToken handler and its state: nonces seen, last call per AccessKeyId."""

    def __init__(self, store: AccountStore, throttle_interval: float) -> None:
        if throttle_interval < 0:
            raise ValueError("throttle_interval must be >= 0")
        self.store = store
        self.throttle_interval = throttle_interval
        self._nonces: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self._last_call: dict[str, float] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        scheme = "v3" if "Authorization" in request.headers else "rpc"
        try:
            if scheme == "v3":
                account = self._verify_v3(request, body)
            else:
                account = self._verify_rpc(request, body)
            self._throttle(account)
        except PopError as error:
            logger.debug(
                "meta CreateToken refused: scheme=%s code=%s status=%s",
                scheme,
                error.code,
                error.status,
            )
            return self._error(request, error)
        issued = self.store.issue_token(account)
        logger.debug(
            "meta CreateToken: scheme=%s account=%s token=%s",
            scheme,
            account.name,
            fingerprint(issued.value),
        )
        return web.json_response(
            {
                "RequestId": _request_id(),
                "NlsRequestId": uuid.uuid4().hex,
                "Token": {
                    "Id": issued.value,
                    "ExpireTime": int(issued.expires_at),
                    "UserId": account.uid,
                },
            }
        )

    @staticmethod
    def _error(request: web.Request, error: PopError) -> web.Response:
        body: dict[str, Any] = {
            "RequestId": _request_id(),
            "HostId": request.host,
            "Code": error.code,
            "Message": error.message,
        }
        return web.json_response(body, status=error.status)

    # -- RPC v1 ----------------------------------------------------------------------------

    def _verify_rpc(self, request: web.Request, body: bytes) -> Account:
        params = _parse_pairs(request.rel_url.raw_query_string, "query string")
        if request.method == "POST" and body and request.content_type == _FORM:
            # aliyun-python-sdk-core signs form body parameters together with the query.
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                _invalid("The request body is not UTF-8.")
            for name, value in _parse_pairs(text, "request body").items():
                if name in params:
                    _invalid(f'The parameter "{name}" is given more than once.')
                params[name] = value
        for name in _RPC_REQUIRED:
            if not params.get(name):
                _missing(name)
        if params["SignatureMethod"] != RPC_SIGNATURE_METHOD:
            _invalid(f'The SignatureMethod "{params["SignatureMethod"]}" is not supported.')
        if params["SignatureVersion"] != RPC_SIGNATURE_VERSION:
            _invalid(f'The SignatureVersion "{params["SignatureVersion"]}" is not supported.')
        self._check_action(params["Action"], params["Version"])
        self._check_timestamp(params["Timestamp"])
        account, secret = self._signer(params["AccessKeyId"], params.get("SecurityToken"))
        expected = rpc_signature(request.method, params, secret)
        if not signatures_equal(expected, params["Signature"]):
            _mismatch(rpc_string_to_sign(request.method, params))
        self._check_nonce(account, params["SignatureNonce"])
        return account

    # -- V3 --------------------------------------------------------------------------------

    def _verify_v3(self, request: web.Request, body: bytes) -> Account:
        try:
            auth = parse_v3_authorization(request.headers["Authorization"])
        except ValueError as exc:
            _incomplete(str(exc))
        if auth.algorithm != V3_ALGORITHM:
            _incomplete(f"the algorithm {auth.algorithm} is not supported, use {V3_ALGORITHM}")
        headers = request.headers
        for name in _V3_REQUIRED:
            if not headers.get(name):
                _missing(name)
        for name in headers:
            lower = name.lower()
            if (lower == "host" or lower.startswith("x-acs-")) and lower not in auth.signed_headers:
                _incomplete(f'the header "{lower}" must be signed')
        if "host" not in auth.signed_headers:
            _incomplete('the header "host" must be signed')
        self._check_action(headers["x-acs-action"], headers["x-acs-version"])
        self._check_timestamp(headers["x-acs-date"])
        payload_hash = sha256_hex(body)
        if not signatures_equal(payload_hash, headers["x-acs-content-sha256"].lower()):
            raise PopError(
                400,
                "SignatureDoesNotMatch",
                "The x-acs-content-sha256 header does not match the request body.",
            )
        account, secret = self._signer(auth.access_key_id, headers.get("x-acs-security-token"))
        query = _parse_pairs(request.rel_url.raw_query_string, "query string")
        canonical = v3_canonical_request(
            request.method,
            request.path,
            query,
            headers.items(),
            auth.signed_headers,
            payload_hash,
        )
        string_to_sign = v3_string_to_sign(canonical)
        expected = v3_signature(string_to_sign, secret)
        if not signatures_equal(expected, auth.signature.lower()):
            _mismatch(string_to_sign)
        self._check_nonce(account, headers["x-acs-signature-nonce"])
        return account

    # -- shared checks ---------------------------------------------------------------------

    @staticmethod
    def _check_action(action: str, version: str) -> None:
        if action != _ACTION:
            raise PopError(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            )
        if version != META_VERSION:
            raise PopError(400, "InvalidVersion", "Specified parameter Version is not valid.")

    @staticmethod
    def _check_timestamp(text: str) -> None:
        try:
            stamped = parse_timestamp(text)
        except ValueError:
            raise PopError(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            ) from None
        if abs(time.time() - stamped) > MAX_CLOCK_SKEW:
            raise PopError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )

    def _signer(self, access_key_id: str, security_token: str | None) -> tuple[Account, str]:
        """The account behind ``access_key_id`` and the secret its requests are signed with."""
        account = self.store.by_access_key(access_key_id)
        if account is not None:
            return account, account.access_key_secret
        sts = self.store.sts_credentials(access_key_id)
        if sts is None:
            raise PopError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        # docs/protocol.md "Credentials": the security token must come with its STS pair.
        if not security_token:
            raise PopError(
                400, "MissingSecurityToken", "SecurityToken is mandatory for this action."
            )
        if not signatures_equal(security_token, sts.security_token):
            raise PopError(
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            )
        if self.store.clock() >= sts.expires_at:
            raise PopError(
                403, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."
            )
        return self.store.get(sts.account), sts.access_key_secret

    def _check_nonce(self, account: Account, nonce: str) -> None:
        # Called after the signature is verified: a forged request cannot burn a nonce.
        now = time.monotonic()
        nonces = self._nonces
        while nonces and (next(iter(nonces.values())) <= now or len(nonces) >= _MAX_NONCES):
            nonces.popitem(last=False)
        key = (account.access_key_id, nonce)
        if key in nonces:
            raise PopError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        nonces[key] = now + MAX_CLOCK_SKEW

    def _throttle(self, account: Account) -> None:
        if self.throttle_interval <= 0:
            return
        now = time.monotonic()
        last = self._last_call.get(account.access_key_id)
        if last is not None and now - last < self.throttle_interval:
            raise PopError(400, "Throttling.User", "Request was denied due to user flow control.")
        self._last_call[account.access_key_id] = now


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def add_meta_routes(
    app: web.Application, store: AccountStore, *, throttle_interval: float = 0.0
) -> None:
    """Serve CreateToken at ``/`` of ``app`` (GET and POST), issuing tokens from ``store``.

    ``throttle_interval``: an AccessKeyId that calls again sooner than this many seconds after
    its last successful call gets ``Throttling.User`` (0 = never throttled).
    """
    meta = _Meta(store, throttle_interval)
    app.router.add_route("GET", "/", meta.handle)
    app.router.add_route("POST", "/", meta.handle)

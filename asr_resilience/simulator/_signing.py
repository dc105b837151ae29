"""Alibaba Cloud POP request signatures, sans I/O: RPC v1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256).

docs/protocol.md "CreateToken": the meta service's CreateToken is signed one of two ways, depending
on the official client that calls it. The functions here compute both, for the simulated meta
endpoint (which verifies) and for tests (which sign requests by hand to tamper with them).

RPC v1 (``aliyun-python-sdk-core``, used by ``nls.token.getToken``)
    Every parameter (query string, plus form body parameters on POST) except ``Signature``,
    sorted by name; names and values RFC 3986 percent-encoded (UTF-8, only ``A-Za-z0-9-_.~``
    left as is), joined ``name=value`` with ``&``; string to sign
    ``METHOD&%2F&`` + the percent-encoded canonical query; signature = base64 HMAC-SHA1 keyed
    with ``AccessKeySecret + "&"``.

V3 ``ACS3-HMAC-SHA256`` (``alibabacloud-nls-cloud-meta20190228`` through
``alibabacloud_tea_openapi.utils.Utils.get_authorization``)
    canonical request = method, path (as sent, not re-encoded), canonical query, canonical
    headers, signed header names, hex SHA-256 of the body, joined by newlines. The canonical
    query sorts by name and percent-encodes the *values only* (the Python client leaves names
    as they are). Canonical headers: every signed header as ``name:value\\n`` with the name
    lower-cased and sorted, each value stripped, several values of one header sorted and joined
    with ``,``. The Python client signs *every* header it sends (``host``, ``user-agent``,
    ``accept``, ``x-acs-*``), so the verifier must take the names from ``SignedHeaders`` rather
    than assume a fixed set. String to sign = ``ACS3-HMAC-SHA256\\n`` + hex SHA-256 of the
    canonical request; signature = hex HMAC-SHA256 keyed with the AccessKeySecret (no ``&``).

Nothing here logs or returns a secret; compare signatures with :func:`signatures_equal`.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "RPC_SIGNATURE_METHOD",
    "RPC_SIGNATURE_VERSION",
    "TIMESTAMP_FORMAT",
    "V3_ALGORITHM",
    "V3Authorization",
    "format_timestamp",
    "new_nonce",
    "parse_timestamp",
    "parse_v3_authorization",
    "percent_encode",
    "rpc_canonical_query",
    "rpc_signature",
    "rpc_string_to_sign",
    "sha256_hex",
    "sign_rpc",
    "sign_v3",
    "signatures_equal",
    "v3_canonical_headers",
    "v3_canonical_query",
    "v3_canonical_request",
    "v3_signature",
    "v3_string_to_sign",
]

RPC_SIGNATURE_METHOD = "HMAC-SHA1"
RPC_SIGNATURE_VERSION = "1.0"
V3_ALGORITHM = "ACS3-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""``Timestamp`` (RPC) and ``x-acs-date`` (V3): UTC, second precision."""

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of UTF-8 ``text``: only ``A-Za-z0-9-_.~`` stay as they are.

    The same as the vendor's ``quote(.., safe="~")`` and aliyun-python-sdk-core's ``urlencode``
    followed by ``+`` → ``%20``, ``*`` → ``%2A``, ``%7E`` → ``~``.
    """
    return quote(text, safe="~", encoding="utf-8")


def format_timestamp(when: float | None = None) -> str:
    """``when`` (unix seconds; default now) as ``YYYY-MM-DDThh:mm:ssZ``."""
    return time.strftime(TIMESTAMP_FORMAT, time.gmtime(time.time() if when is None else when))


def parse_timestamp(text: str) -> float:
    """Unix seconds of a ``YYYY-MM-DDThh:mm:ssZ`` timestamp; ValueError for any other form."""
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"not a YYYY-MM-DDThh:mm:ssZ timestamp: {text!r}")
    return float(calendar.timegm(time.strptime(text, TIMESTAMP_FORMAT)))


def new_nonce() -> str:
    """A fresh ``SignatureNonce`` / ``x-acs-signature-nonce``: 32 random hex digits."""
    return secrets.token_hex(16)


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


# -- RPC v1 -------------------------------------------------------------------------------------


def rpc_canonical_query(params: Mapping[str, str]) -> str:
    """The sorted, percent-encoded ``name=value&...`` of every parameter but ``Signature``."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(params[name])}"
        for name in sorted(params)
        if name != "Signature"
    )


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` + the percent-encoded canonical query."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(rpc_canonical_query(params))}"


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed with ``secret + "&"``."""
    digest = hmac.new(
        (secret + "&").encode("utf-8"),
        rpc_string_to_sign(method, params).encode("utf-8"),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_rpc(
    method: str,
    params: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    timestamp: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """``params`` plus the common signing parameters and ``Signature``, ready for a query string.

    Adds ``AccessKeyId``, ``SignatureMethod``, ``SignatureVersion``, ``SignatureNonce``,
    ``Timestamp`` and ``Format=JSON`` unless ``params`` already holds them.
    """
    signed = {
        "Format": "JSON",
        "AccessKeyId": access_key_id,
        "SignatureMethod": RPC_SIGNATURE_METHOD,
        "SignatureVersion": RPC_SIGNATURE_VERSION,
        "SignatureNonce": nonce if nonce is not None else new_nonce(),
        "Timestamp": format_timestamp(timestamp),
    }
    signed.update(params)
    signed.pop("Signature", None)
    signed["Signature"] = rpc_signature(method, signed, secret)
    return signed


# -- V3 ACS3-HMAC-SHA256 ------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (``x-acs-content-sha256`` of a body)."""
    return hashlib.sha256(data).hexdigest()


def v3_canonical_query(query: Mapping[str, str]) -> str:
    """Sorted ``name=value&...``; values percent-encoded, names as they are (as the vendor does)."""
    return "&".join(f"{name}={percent_encode(query[name])}" for name in sorted(query))


def v3_canonical_headers(headers: Iterable[tuple[str, str]], signed: Sequence[str]) -> str:
    """``name:value\\n`` for each signed header name, in the order of ``signed``.

    ``headers`` are the request's (name, value) pairs, a name may repeat; names match without
    regard to case; values are stripped, and several values of one name sorted and joined
    with ``,``. A signed header the request lacks contributes ``name:``.
    """
    wanted = {name.lower() for name in signed}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            values.setdefault(key, []).append(value.strip())
    return "".join(f"{name}:{','.join(sorted(values.get(name, [])))}\n" for name in signed)


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Iterable[tuple[str, str]],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    """Method, path, canonical query, canonical headers, signed names, payload hash."""
    return "\n".join(
        (
            method.upper(),
            path or "/",
            v3_canonical_query(query),
            v3_canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        )
    )


def v3_string_to_sign(canonical_request: str) -> str:
    """``ACS3-HMAC-SHA256\\n`` + hex SHA-256 of the canonical request."""
    return f"{V3_ALGORITHM}\n{sha256_hex(canonical_request.encode('utf-8'))}"


def v3_signature(string_to_sign: str, secret: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the secret."""
    return hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class V3Authorization:
    """``Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``, parsed."""

    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str

    def __str__(self) -> str:
        return (
            f"{self.algorithm} Credential={self.access_key_id},"
            f"SignedHeaders={';'.join(self.signed_headers)},Signature={self.signature}"
        )


def parse_v3_authorization(value: str) -> V3Authorization:
    """The parts of an ``ACS3-*`` Authorization header; ValueError when it is malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if not algorithm.startswith("ACS3-") or not rest:
        raise ValueError("the Authorization header is not 'ACS3-<algorithm> Credential=...'")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep or name in fields:
            raise ValueError(f"malformed Authorization field {part.strip()!r}")
        fields[name] = field_value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise ValueError(f"the Authorization header lacks {', '.join(missing)}")
    unknown = sorted(set(fields) - {"Credential", "SignedHeaders", "Signature"})
    if unknown:
        raise ValueError(f"unknown Authorization fields: {', '.join(unknown)}")
    signed = tuple(fields["SignedHeaders"].split(";"))
    if any(not name or name != name.lower() for name in signed):
        raise ValueError("SignedHeaders must be lower-case names separated by ';'")
    return V3Authorization(algorithm, fields["Credential"], signed, fields["Signature"])


def sign_v3(
    method: str,
    path: str,
    headers: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    timestamp: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """``headers`` plus ``x-acs-date``, ``x-acs-signature-nonce``, ``x-acs-content-sha256`` and
    ``Authorization``, signing every header given (as the vendor's Python client does).

    ``headers`` should hold ``host``, ``x-acs-action`` and ``x-acs-version``; names are used
    lower-cased.
    """
    out = {name.lower(): value for name, value in headers.items()}
    out.setdefault("x-acs-date", format_timestamp(timestamp))
    out.setdefault("x-acs-signature-nonce", nonce if nonce is not None else new_nonce())
    out["x-acs-content-sha256"] = sha256_hex(body)
    out.pop("authorization", None)
    signed = tuple(sorted(out))
    canonical = v3_canonical_request(
        method, path, query or {}, out.items(), signed, out["x-acs-content-sha256"]
    )
    signature = v3_signature(v3_string_to_sign(canonical), secret)
    out["Authorization"] = str(V3Authorization(V3_ALGORITHM, access_key_id, signed, signature))
    return out

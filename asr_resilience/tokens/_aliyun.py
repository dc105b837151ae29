"""A token provider that calls the meta service's CreateToken with Alibaba Cloud credentials.

docs/protocol.md "CreateToken": tokens come from ``CreateToken`` of
``nls-meta.<region>.aliyuncs.com`` (``Version=2019-02-28``), and the answer's ``Token.ExpireTime``
(unix seconds) says when the token dies. :class:`AliyunTokenProvider` uses the vendor's own
clients, an optional extra (``pip install 'asr-resilience[aliyun]'``) imported when a provider is
created, never when this module is:

* ``alibabacloud-nls-cloud-meta20190228`` calls CreateToken (V3 ``ACS3-HMAC-SHA256``
  signatures; an STS ``SecurityToken`` travels in ``x-acs-security-token``);
* ``alibabacloud-credentials`` finds the credentials: an explicit AccessKey pair, the pair in
  the environment, or else the vendor's default chain (environment, the CLI's config, the
  profile file, OIDC, the ECS RAM role, a credentials URI). The chain is asked for the
  credentials at every CreateToken: it caches them and renews rotating (STS) ones before they
  expire (docs/protocol.md "Credentials").

Neither the vendor's client nor this provider retries: a failure is raised once as
:class:`TokenProviderError` (the vendor's ``Code`` such as ``SignatureDoesNotMatch``,
``InvalidSecurityToken.Expired`` or ``Throttling.User``, the service's message, the HTTP status),
and the :class:`~asr_resilience.tokens.TokenManager` around the provider decides about retrying
(it reads ``retryable`` and honours ``retry_after``: no new CreateToken before that time). The
AccessKey secret and the STS security token never appear in an error's text: they are scrubbed
from the service's message and registered with the log redaction as soon as they are known.

Network settings follow the clients' (``asr_resilience/_network.py``): ``proxy`` and a CA bundle
are resolved here and handed to the vendor's client explicitly, with its connect and read
timeouts; the vendor's client has no total timeout, so the awaited call is bounded here. It
reads ``HTTP(S)_PROXY`` itself when given no proxy and knows no ``NO_PROXY``
(docs/protocol.md "Proxies and TLS"), so a provider that must connect directly while such a
variable is set is refused when it is built rather than sent through that proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import ssl as ssl_module
from typing import Any
from urllib.parse import urlsplit

from .._endpoints import resolve_url, signing_region
from .._errors import AsrResilienceError
from .._network import Network, ProxySetting, resolve_network
from .._secrets import REDACTED, raise_scrubbed, redact_text, register_secret
from ..observe._stdlib import redacting_logger
from ._token import Token

__all__ = [
    "ACCESS_KEY_ID_ENV",
    "ACCESS_KEY_SECRET_ENV",
    "SECURITY_TOKEN_ENV",
    "AliyunTokenProvider",
    "CredentialsError",
    "TokenProviderError",
]

ACCESS_KEY_ID_ENV = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ACCESS_KEY_SECRET_ENV = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
SECURITY_TOKEN_ENV = "ALIBABA_CLOUD_SECURITY_TOKEN"

_VENDOR_CLIENT = "alibabacloud_nls_cloud_meta20190228.client"
_VENDOR_MODELS = "alibabacloud_tea_openapi.models"
_CREDENTIALS_CLIENT = "alibabacloud_credentials.client"
_CREDENTIALS_MODELS = "alibabacloud_credentials.models"
_INSTALL_HINT = (
    "AliyunTokenProvider needs the vendor's CreateToken and credentials clients "
    "(alibabacloud-nls-cloud-meta20190228, alibabacloud-credentials): "
    "pip install 'asr-resilience[aliyun]'"
)
_NO_CREDENTIALS_HINT = (
    f"pass access_key_id= and access_key_secret=, set {ACCESS_KEY_ID_ENV} and "
    f"{ACCESS_KEY_SECRET_ENV} (and {SECURITY_TOKEN_ENV} for STS), or configure the vendor's "
    "credentials chain (~/.alibabacloud/credentials.ini, the aliyun CLI, an ECS RAM role, "
    "OIDC, ALIBABA_CLOUD_CREDENTIALS_URI)"
)
# What the vendor's client says when the body is not JSON (it then quotes the whole body).
_NOT_JSON = "Failed to parse the value as json"
_MAX_MESSAGE = 300


def _pair(
    access_key_id: str | None, access_key_secret: str | None, security_token: str | None
) -> tuple[str, str, str | None] | None:
    """(id, secret, STS token) from the arguments, else the environment; None when neither
    names any part of a pair (the credentials chain decides); ValueError for half a pair."""
    key_id = access_key_id if access_key_id is not None else os.environ.get(ACCESS_KEY_ID_ENV)
    secret = (
        access_key_secret
        if access_key_secret is not None
        else os.environ.get(ACCESS_KEY_SECRET_ENV)
    )
    if access_key_id is None and access_key_secret is None and not key_id and not secret:
        if security_token:
            raise ValueError("security_token= needs its STS AccessKey pair (access_key_id=, ...)")
        return None
    missing = [
        name
        for name, value in ((ACCESS_KEY_ID_ENV, key_id), (ACCESS_KEY_SECRET_ENV, secret))
        if not value
    ]
    if not key_id or not secret:
        raise ValueError(
            f"AliyunTokenProvider got half an AccessKey pair: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: pass access_key_id= and "
            f"access_key_secret=, or set {ACCESS_KEY_ID_ENV} and {ACCESS_KEY_SECRET_ENV}"
        )
    # The environment's STS token goes with the environment's pair only.
    from_env = access_key_id is None and access_key_secret is None
    token = security_token if not from_env else os.environ.get(SECURITY_TOKEN_ENV)
    return key_id, secret, token or None


def _looks_like_html(text: str) -> bool:
    lowered = text.lower()
    return "<html" in lowered or "<!doctype html" in lowered


def _short(text: str) -> str:
    """One line of at most _MAX_MESSAGE characters."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


# Codes after which the same call may well succeed later.
_RETRYABLE_CODES = frozenset({"ServiceUnavailable", "InternalError", "UnknownError"})


class TokenProviderError(AsrResilienceError):
    """CreateToken failed: ``code`` is the vendor's (``SignatureDoesNotMatch``,
    ``InvalidAccessKeyId.NotFound``, ``Throttling.User``, ...), or ``None`` when no answer came
    (connection refused, timeout, a body that is not the expected JSON).

    ``http_status``, ``request_id`` and ``retry_after`` (seconds, when the service sent one) are
    ``None`` when unknown. ``str()`` is ``"<code>: <message>"`` and never holds the AccessKey
    secret.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        message = redact_text(message)
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Whether calling again later may succeed (throttling, server errors, no answer)."""
        if self._retryable is not None:
            return self._retryable
        if self.code is None:
            return True
        if self.code.startswith("Throttling") or self.code in _RETRYABLE_CODES:
            return True
        return self.http_status is not None and self.http_status >= 500

    def __str__(self) -> str:
        head = self.code if self.code is not None else "no answer from the meta service"
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        return f"{head}{status}: {self.message}" if self.message else f"{head}{status}"


class CredentialsError(TokenProviderError):
    """No credentials to sign CreateToken with: none given, none in the environment, and the
    vendor's credentials chain found none (or its source failed). Not retryable; ``code`` is
    None; ``str()`` says where credentials may come from and never holds a secret."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message, retryable=False)

    def __str__(self) -> str:
        return self.message


def _load_vendor() -> tuple[Any, Any, Any, Any]:
    """The vendor's meta ``Client`` and ``Config`` classes, then its credentials ``Client`` and
    ``Config`` classes; ImportError with the install hint."""
    try:
        client_module = importlib.import_module(_VENDOR_CLIENT)
        models_module = importlib.import_module(_VENDOR_MODELS)
        credentials_module = importlib.import_module(_CREDENTIALS_CLIENT)
        credentials_models = importlib.import_module(_CREDENTIALS_MODELS)
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return (
        client_module.Client,
        models_module.Config,
        credentials_module.Client,
        credentials_models.Config,
    )


def _parse_endpoint(endpoint: str) -> tuple[str, str]:
    """(host[:port], "http" | "https") from ``endpoint``, a URL or ``host[:port]``."""
    text = endpoint.strip()
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"endpoint {endpoint!r}: the scheme must be http or https")
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise ValueError(f"endpoint {endpoint!r}: expected http(s)://host[:port]/")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"endpoint {endpoint!r}: CreateToken lives at the root path '/'")
        return parts.netloc, scheme
    host = text.rstrip("/")
    if not host or "/" in host or "?" in host or "@" in host:
        raise ValueError(f"endpoint {endpoint!r}: expected host[:port] or http(s)://host[:port]/")
    return host, "https"


def _vendor_network(
    url: str, proxy: ProxySetting, ssl: str | os.PathLike[str] | None
) -> tuple[Network, str | None]:
    """The resolved proxy for ``url`` and the CA bundle path, as the vendor's client takes them."""
    if isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(
            "AliyunTokenProvider takes a CA bundle path for ssl=, not an SSLContext: the "
            "vendor's client builds its own TLS context from the file"
        )
    network = resolve_network(url, proxy, ssl)
    if network.proxy is None:
        # darabonba-core reads these itself when given no proxy, and knows no NO_PROXY.
        https = url.startswith("https:")
        names = ("HTTPS_PROXY", "https_proxy") if https else ("HTTP_PROXY", "http_proxy")
        found = [name for name in names if os.environ.get(name)]
        if found:
            raise ValueError(
                f"CreateToken at {url} must be reached directly (proxy=None, or no_proxy), but "
                f"{found[0]} is set and the vendor's client would use it regardless: unset "
                f"{' and '.join(names)} for this process, or pass proxy= the proxy to use"
            )
    return network, os.fspath(ssl) if ssl is not None else None


class AliyunTokenProvider:
    """Fresh NLS tokens from CreateToken, through the vendor's official clients.

    Credentials, the first that applies (README "Credentials"):

    * ``access_key_id`` / ``access_key_secret`` (and ``security_token`` for an STS pair);
    * the environment's ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (and
      ``ALIBABA_CLOUD_SECURITY_TOKEN``), read when the provider is built (an argument fills in
      for a missing variable); half a pair is a ``ValueError``;
    * ``credentials``: any object with the vendor credentials client's ``get_credential()`` /
      ``get_credential_async()`` (e.g. ``alibabacloud_credentials.client.Client(config)`` for a
      RAM role ARN);
    * else the vendor's default chain, ``alibabacloud_credentials.client.Client()``.

    The credentials are asked for at each CreateToken, so rotating ones (STS from a RAM role,
    OIDC or a credentials URI) are renewed by the vendor's client, not frozen here; no
    credentials anywhere is a non-retryable :class:`TokenProviderError` at the first fetch.

    Where CreateToken is called: ``endpoint`` (``host[:port]`` over HTTPS, or a URL such as the
    simulator's ``http://127.0.0.1:8080/``), else ``region``'s meta host (``cn-beijing``,
    ``ap-southeast-1``, ...), else ``$NLS_META_URL``, else ``$NLS_REGION``'s, else
    cn-shanghai's (README "Regions and endpoints"); an unknown region is a ``ValueError``
    listing the known ones. The request is signed for ``region`` (else ``$NLS_REGION``, else
    cn-shanghai).

    ``proxy`` is the clients' (True: the environment, with ``no_proxy``; a URL; None: none) and
    ``ssl`` a CA bundle path for an ``https://`` endpoint. ``connect_timeout`` and
    ``read_timeout`` (seconds) go to the vendor's client; ``timeout`` bounds a whole awaited
    CreateToken (None: unbounded). README "Proxies and TLS".

    Awaiting the provider (``await provider()``) calls ``create_token_async``; :meth:`sync`
    calls the blocking ``create_token``. Both return a :class:`Token` with ``Token.Id`` as the
    value and ``Token.ExpireTime`` as ``expires_at``, or raise :class:`TokenProviderError`. The
    secret and the security token are registered with the redaction: no error or log event
    repeats them.
    """

    __slots__ = (
        "_access_key_id",
        "_ca",
        "_client_class",
        "_config_class",
        "_credentials",
        "_host",
        "_network",
        "_protocol",
        "_region",
        "_secrets",
        "_timeout",
        "_timeouts",
    )

    def __init__(
        self,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        security_token: str | None = None,
        credentials: Any = None,
        proxy: ProxySetting = True,
        ssl: str | os.PathLike[str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        timeout: float | None = 15.0,
    ) -> None:
        if region is not None and not region.strip():
            raise ValueError("region must not be empty")
        host, protocol = _parse_endpoint(resolve_url("meta", endpoint, region))
        network, ca = _vendor_network(f"{protocol}://{host}/", proxy, ssl)
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive (seconds), not {value!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive (seconds) or None, not {timeout!r}")
        signed_for = signing_region(region)
        pair = _pair(access_key_id, access_key_secret, security_token)
        if pair is not None and credentials is not None:
            raise ValueError("pass either an AccessKey pair or credentials=, not both")
        client_class, config_class, credentials_class, credentials_config = _load_vendor()
        # The vendor's credentials library logs on its own logger ("credentials"), failures
        # with their causes included: nothing it logs may repeat a secret.
        redacting_logger("credentials")
        self._secrets: tuple[str, ...] = ()
        if pair is not None:
            key_id, secret, sts = pair
            self._remember(secret, sts)
            self._access_key_id: str | None = key_id
            credentials = credentials_class(
                credentials_config(
                    type="sts" if sts else "access_key",
                    access_key_id=key_id,
                    access_key_secret=secret,
                    security_token=sts,
                )
            )
        else:
            self._access_key_id = None
            if credentials is None:
                credentials = credentials_class()  # the vendor's default chain
            elif not callable(getattr(credentials, "get_credential_async", None)):
                raise TypeError(
                    "credentials must be a credentials client with get_credential() and "
                    "get_credential_async(), e.g. alibabacloud_credentials.client.Client(...)"
                )
        self._credentials: Any = credentials
        self._client_class: Any = client_class
        self._config_class: Any = config_class
        self._region = signed_for
        self._host = host
        self._protocol = protocol
        self._network = network
        self._ca = ca
        # The vendor's client counts in milliseconds.
        self._timeouts = (max(1, round(connect_timeout * 1000)), max(1, round(read_timeout * 1000)))
        self._timeout = timeout

    @property
    def access_key_id(self) -> str | None:
        """The AccessKey id given or read from the environment; None for a credentials chain
        (its id may change as it rotates)."""
        return self._access_key_id

    @property
    def identity(self) -> str | None:
        """Who the tokens belong to, without the secret: a hash of the AccessKey id, the region
        and the endpoint. ``RedisTokenCache`` keys the fleet's shared token by it. None for a
        credentials chain, whose identity is known only when asked (give the cache a name=)."""
        if self._access_key_id is None:
            return None
        text = f"{self._access_key_id}\n{self._region}\n{self.url}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]

    @property
    def region(self) -> str:
        """The ``RegionId`` CreateToken is signed for."""
        return self._region

    @property
    def endpoint(self) -> str:
        """``host[:port]`` of the meta service."""
        return self._host

    @property
    def protocol(self) -> str:
        """``http`` or ``https``."""
        return self._protocol

    @property
    def url(self) -> str:
        return f"{self._protocol}://{self._host}/"

    def __repr__(self) -> str:
        who = (
            f"access_key_id={self._access_key_id!r}"
            if self._access_key_id is not None
            else "credentials=chain"
        )
        return f"AliyunTokenProvider({who}, region={self._region!r}, url={self.url!r})"

    @property
    def proxy(self) -> str | None:
        """The proxy CreateToken goes through (password redacted), or None."""
        return self._network.shown if self._network.proxy else None

    async def __call__(self) -> Token:
        """A fresh token from ``create_token_async``, within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._fetch(), self._timeout)
        except asyncio.TimeoutError:
            raise TokenProviderError(
                None, f"no answer from {self.url} within {self._timeout:g} s"
            ) from None

    async def _fetch(self) -> Token:
        try:
            found = await self._credentials.get_credential_async()
        except Exception as exc:
            raise_scrubbed(self._no_credentials(exc), None)
        client = self._client(found)
        try:
            response = await client.create_token_async()
        except Exception as exc:
            raise_scrubbed(self._error(exc), self._cause(exc))
        return self._token(response)

    def sync(self) -> Token:
        """A fresh token from the blocking ``create_token``, bounded by the connect and read
        timeouts (a blocking call cannot be cut short; the ``TokenManager``'s waiters are)."""
        try:
            found = self._credentials.get_credential()
        except Exception as exc:
            raise_scrubbed(self._no_credentials(exc), None)
        client = self._client(found)
        try:
            response = client.create_token()
        except Exception as exc:
            raise_scrubbed(self._error(exc), self._cause(exc))
        return self._token(response)

    def find_credentials(self) -> str:
        """Ask for the credentials now, without calling CreateToken; returns where they come
        from (the vendor's provider name, e.g. ``default/profile/static_ak``) or raises
        :class:`CredentialsError`. For a check at start-up: tokens ask again when fetched."""
        try:
            found = self._credentials.get_credential()
        except Exception as exc:
            raise_scrubbed(self._no_credentials(exc), None)
        self._client(found)  # checks the pair and registers its secrets
        return str(getattr(found, "provider_name", None) or getattr(found, "type", None) or "")

    # -- credentials -----------------------------------------------------------------------------

    def _remember(self, secret: str, security_token: str | None) -> None:
        """Scrub the secret and the security token from every log event and error from now on."""
        register_secret(secret)
        if security_token:
            register_secret(security_token)
        self._secrets = tuple(v for v in (secret, security_token) if v)

    def _client(self, found: Any) -> Any:
        """The vendor's meta client signing with the credentials the chain just gave."""
        key_id = getattr(found, "access_key_id", None)
        secret = getattr(found, "access_key_secret", None)
        sts = getattr(found, "security_token", None) or None
        if not isinstance(key_id, str) or not key_id or not isinstance(secret, str) or not secret:
            raise CredentialsError(
                f"the credentials hold no AccessKey pair: {_NO_CREDENTIALS_HINT}"
            )
        self._remember(secret, sts if isinstance(sts, str) else None)
        return self._client_class(
            self._config_class(
                access_key_id=key_id,
                access_key_secret=secret,
                security_token=sts,
                endpoint=self._host,
                protocol=self._protocol,
                region_id=self._region,
                http_proxy=self._network.proxy,
                https_proxy=self._network.proxy,
                ca=self._ca,
                connect_timeout=self._timeouts[0],
                read_timeout=self._timeouts[1],
            )
        )

    def _no_credentials(self, exc: Exception) -> CredentialsError:
        """The chain found nothing (or its source failed): say what it said, scrubbed."""
        text = self._scrub(_short(f"{type(exc).__name__}: {exc}"))
        return CredentialsError(f"no Alibaba Cloud credentials ({text}): {_NO_CREDENTIALS_HINT}")

    # -- mapping the vendor's answers ----------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact_text(text)

    def _cause(self, exc: Exception) -> Exception | None:
        # Keep the vendor's exception as the cause for debugging, unless its text, its
        # arguments or the response it holds mention a secret: tracebacks print causes.
        try:
            texts = (str(exc), repr(exc), repr(exc.args), repr(getattr(exc, "data", None)))
            leaks = any(s in t for s in self._secrets for t in texts) or any(
                redact_text(t) != t for t in texts
            )
        except Exception:
            leaks = True
        return None if leaks else exc

    def _error(self, exc: Exception) -> TokenProviderError:
        inner = getattr(exc, "inner_exception", None)
        if inner is not None:
            # The vendor's UnretryableException: no usable answer (connection refused, timeout,
            # a body that is not JSON); the underlying error is in inner_exception.
            text = str(getattr(inner, "message", None) or inner)
            if _NOT_JSON in text:
                # The vendor's client quotes the whole body: a web page would fill the screen.
                what = "an HTML page" if _looks_like_html(text) else "a body that is not JSON"
                return TokenProviderError(
                    None,
                    f"{self.url} answered with {what}: it is not a CreateToken service "
                    "(check the meta endpoint, e.g. --meta)",
                )
            return TokenProviderError(None, self._scrub(_short(f"{type(inner).__name__}: {text}")))
        code = getattr(exc, "code", None)
        if code is None:
            return TokenProviderError(None, self._scrub(f"{type(exc).__name__}: {exc}"))
        data = getattr(exc, "data", None)
        body: dict[str, Any] = data if isinstance(data, dict) else {}
        message = body.get("Message") or getattr(exc, "message", None) or str(exc)
        status = getattr(exc, "status_code", None) or body.get("statusCode")
        request_id = body.get("RequestId") or getattr(exc, "request_id", None)
        retry_after_ms = getattr(exc, "retry_after", None)
        return TokenProviderError(
            str(code),
            self._scrub(str(message)),
            http_status=status if isinstance(status, int) else None,
            request_id=str(request_id) if request_id else None,
            retry_after=(
                retry_after_ms / 1000.0 if isinstance(retry_after_ms, (int, float)) else None
            ),
        )

    def _token(self, response: Any) -> Token:
        body = getattr(response, "body", None)
        token = getattr(body, "token", None)
        value = getattr(token, "id", None)
        expire_time: object = getattr(token, "expire_time", None)
        if not isinstance(value, str) or not value:
            code = getattr(body, "err_code", None)
            message = getattr(body, "err_msg", None)
            raise TokenProviderError(
                str(code) if code else None,
                self._scrub(str(message)) if message else "the answer holds no Token.Id",
                http_status=getattr(response, "status_code", None),
            )
        try:
            if isinstance(expire_time, bool) or not isinstance(expire_time, (int, float, str)):
                raise TypeError
            expires_at = float(expire_time)
        except (TypeError, ValueError):
            raise TokenProviderError(
                None,
                "the answer holds no numeric Token.ExpireTime",
                http_status=getattr(response, "status_code", None),
            ) from None
        return Token(value, expires_at)

"""How a client reaches its URL: through which HTTP(S) proxy, with which TLS context.

Every client (the WebSocket ones, the REST one, the CreateToken provider) takes the same two
keywords and resolves them here once, when it is built (docs/architecture.md "Proxies and TLS"):

``proxy``
    ``True`` (the default): the environment. ``https_proxy`` for ``wss://`` and ``https://``,
    ``http_proxy`` for ``ws://`` and ``http://``, else ``all_proxy``; a lower-case variable wins
    over its upper-case twin, and a host listed in ``no_proxy`` is reached directly (both as
    Python's ``urllib.request`` reads them). A URL string: that proxy for every connection,
    whatever the environment says. ``None`` or ``False``: no proxy, whatever the environment
    says.
``ssl``
    ``None`` (the default): the library's own verification (the system's CAs for the
    WebSocket, httpx's for HTTPS). An :class:`ssl.SSLContext`: used as it is. A path: a CA
    bundle (PEM) that the server's certificate must chain to.

The resolved proxy is handed to websockets and httpx explicitly (their own reading of the
environment is turned off), so all clients follow one rule, whatever each library would read
(docs/protocol.md "Proxies and TLS"). A proxy URL's password is registered with the redaction:
it never shows in an error or a log event.
"""

from __future__ import annotations

import os
import ssl as ssl_module
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

from ._errors import TransportError
from ._secrets import REDACTED, register_secret

__all__ = [
    "Network",
    "ProxySetting",
    "SslSetting",
    "resolve_network",
    "shown_proxy",
    "transport_error",
]

ProxySetting: TypeAlias = str | bool | None
SslSetting: TypeAlias = ssl_module.SSLContext | str | os.PathLike[str] | None

_PROXY_SCHEMES = ("http", "https")
# The environment variable (as urllib.request.getproxies_environment names it) per URL scheme.
_ENV_KEY = {"ws": "http", "http": "http", "wss": "https", "https": "https"}


@dataclass(frozen=True, slots=True, repr=False)
class Network:
    """A client's resolved settings: ``proxy`` is a URL or None (direct); ``ssl`` a context or
    None (the library's default verification)."""

    proxy: str | None = None
    ssl: ssl_module.SSLContext | None = None

    def __repr__(self) -> str:
        proxy = shown_proxy(self.proxy) if self.proxy else None
        return f"Network(proxy={proxy!r}, ssl={self.ssl!r})"

    @property
    def shown(self) -> str:
        """The proxy for messages, its password replaced: ``http://user:<redacted>@host:3128``."""
        return shown_proxy(self.proxy) if self.proxy else "no proxy"


def resolve_network(url: str, proxy: ProxySetting = True, ssl: SslSetting = None) -> Network:
    """The proxy and TLS context for connections to ``url`` (see the module's rules).

    Raises ``ValueError`` for a proxy that is not an ``http://`` or ``https://`` URL (from the
    argument or the environment), ``TypeError`` for an ``ssl`` of another type, and ``OSError``
    / ``ssl.SSLError`` for a CA bundle that cannot be read.
    """
    return Network(_resolve_proxy(url, proxy), _tls_context(ssl))


def _resolve_proxy(url: str, proxy: ProxySetting) -> str | None:
    if proxy is None or proxy is False:
        return None
    if isinstance(proxy, str):
        return _checked(proxy, "proxy")
    if proxy is not True:
        raise TypeError(f"proxy must be a URL, True (the environment) or None, not {proxy!r}")
    parts = urlsplit(url)
    key = _ENV_KEY.get(parts.scheme.lower())
    if key is None or not parts.hostname:
        return None  # not a URL this module routes; the client reports it when it connects
    proxies = urllib.request.getproxies_environment()
    found = proxies.get(key) or proxies.get("all")
    if not found:
        return None
    # With proxy variables set, proxy_bypass() consults no_proxy (websockets does the same).
    if urllib.request.proxy_bypass(parts.netloc.rpartition("@")[2]):
        return None
    variable = f"{key}_proxy" if proxies.get(key) else "all_proxy"
    return _checked(found if "://" in found else f"http://{found}", variable)


def _checked(proxy: str, source: str) -> str:
    try:
        parts = urlsplit(proxy)
        parts.port  # noqa: B018  (raises ValueError for a port outside 0..65535)
    except ValueError as exc:
        raise ValueError(f"{source}: {shown_proxy(proxy)} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in _PROXY_SCHEMES or not parts.hostname:
        raise ValueError(
            f"{source}: {shown_proxy(proxy)} is not an http:// or https:// proxy URL "
            "(pass proxy= such a URL, or proxy=None for no proxy)"
        )
    if parts.password:
        register_secret(parts.password)
        register_secret(unquote(parts.password))
    return proxy


def shown_proxy(proxy: str) -> str:
    """``proxy`` with the password of its user information replaced by ``<redacted>``."""
    head, at, host = proxy.rpartition("@")
    if not at:
        return proxy
    scheme, sep, userinfo = head.rpartition("://")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:{REDACTED}@{host}"


def _tls_context(value: SslSetting) -> ssl_module.SSLContext | None:
    if value is None or isinstance(value, ssl_module.SSLContext):
        return value
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise ValueError(f"ssl: the CA bundle {path!r} is not a file")
        return ssl_module.create_default_context(cafile=path)
    raise TypeError(f"ssl must be an ssl.SSLContext or a CA bundle path, not {type(value)!r}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transport_error(exc: BaseException, network: Network, url: str) -> TransportError | None:
    """What a failure to connect means when it is the TLS verification or the proxy:

    - a certificate that does not verify: ``TransportError("tls", ...)`` naming the host and
      what to pass (a configuration to fix; the policies do not retry it);
    - with a proxy, an ``OSError`` before any answer: the proxy is unreachable,
      ``TransportError("refused", ...)`` naming the proxy (password redacted).

    None for anything else (the caller's own mapping applies).
    """
    for link in _chain(exc):
        if isinstance(link, ssl_module.SSLCertVerificationError):
            host = urlsplit(url).hostname or url
            reason = link.verify_message or link.reason or str(link)
            return TransportError(
                "tls",
                f"the certificate of {host} does not verify ({reason}): pass ssl= an "
                "ssl.SSLContext or a CA bundle that trusts it",
            )
    if network.proxy is not None and isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        return TransportError(
            "refused", f"cannot reach the proxy {network.shown}: {exc.strerror or exc}"
        )
    return None

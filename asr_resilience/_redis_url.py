"""Which Redis a fleet URL names: one server, a Redis Cluster, or a master behind Sentinel.

redis-py parses the standalone forms (``redis://``, ``rediss://``, ``unix://``) itself but has no
URL for a cluster's or a Sentinel's list of nodes. The two added forms follow the convention of
the libraries that have one (Prefect's and docket's ``redis+sentinel://``, RedisVL,
Redis-Sentinel-Url; ``redis-cluster://`` of redis-url-plus)::

    redis+cluster://[[user]:password@]host[:port][,host[:port]...]
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]
        [?sentinel_username=...&sentinel_password=...]

``rediss+cluster://`` and ``rediss+sentinel://`` use TLS. A cluster node's port defaults to 6379,
a sentinel's to 26379; a cluster has only database 0. The user and password are the data
nodes'; the Sentinel daemons' own credentials are the two query options.

No redis import here: the policy validator checks a URL without the ``redis`` extra. Nothing
here ever repeats the URL in an error: it may carry a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote

from ._errors import AsrResilienceError

__all__ = [
    "CLUSTER_SCHEMES",
    "REDIS_SCHEMES",
    "SENTINEL_SCHEMES",
    "STANDALONE_SCHEMES",
    "RedisTarget",
    "RedisUrlError",
    "parse_redis_url",
]

STANDALONE_SCHEMES = ("redis://", "rediss://", "unix://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
REDIS_SCHEMES = STANDALONE_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES
"""Every URL scheme the fleet accepts."""

_CLUSTER_PORT = 6379
_SENTINEL_PORT = 26379
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
# host, [IPv6], an optional :port
_NODE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
_SERVICE = re.compile(r"[A-Za-z0-9._-]{1,200}")

_CLUSTER_FORM = "redis+cluster://[user:password@]host:port[,host:port...]"
_SENTINEL_FORM = "redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]"


class RedisUrlError(AsrResilienceError, ValueError):
    """A fleet Redis URL that cannot be used; the message says what is wrong, never the URL."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed fleet URL. ``kind`` "standalone" keeps the URL for redis-py to parse."""

    kind: Literal["standalone", "cluster", "sentinel"]
    nodes: tuple[tuple[str, int], ...] = ()
    """Cluster startup nodes, or the sentinels."""
    service: str = ""
    """The master's name at the sentinels."""
    db: int = 0
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    url: str = field(default="", repr=False)
    """The standalone URL, as given (it may carry a password)."""

    @property
    def label(self) -> str:
        """Where the target is, without credentials (for logs)."""
        nodes = ",".join(f"{host}:{port}" for host, port in self.nodes)
        if self.kind == "cluster":
            return f"cluster:{nodes}"
        if self.kind == "sentinel":
            return f"sentinel:{nodes}/{self.service}/{self.db}"
        return "standalone"


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a fleet URL; :class:`RedisUrlError` names what is wrong (never echoing the URL)."""
    lowered = url.lower()
    if lowered.startswith(STANDALONE_SCHEMES):
        return RedisTarget("standalone", url=url)
    if lowered.startswith(CLUSTER_SCHEMES):
        kind: Literal["cluster", "sentinel"] = "cluster"
        form, default_port = _CLUSTER_FORM, _CLUSTER_PORT
    elif lowered.startswith(SENTINEL_SCHEMES):
        kind, form, default_port = "sentinel", _SENTINEL_FORM, _SENTINEL_PORT
    else:
        raise RedisUrlError(f"a Redis URL starts with one of {', '.join(REDIS_SCHEMES)}")
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise RedisUrlError(f"a {scheme} URL has no #fragment; expected {form}")
    userinfo, at, rest = rest.rpartition("@")
    netloc, slash, path = rest.partition("/")
    username, password = _credentials(userinfo) if at else (None, None)
    nodes = _nodes(netloc, default_port, scheme, form)
    options = _options(query, kind, scheme)
    if kind == "cluster":
        if path.strip("/") not in ("", "0"):
            raise RedisUrlError(f"a Redis Cluster has only database 0; expected {form}")
        return RedisTarget(
            "cluster",
            nodes=nodes,
            tls=scheme.lower().startswith("rediss"),
            username=username,
            password=password,
        )
    parts = path.split("/") if slash else []
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or not 1 <= len(parts) <= 2 or not _SERVICE.fullmatch(unquote(parts[0])):
        raise RedisUrlError(f"a {scheme} URL names the master's service; expected {form}")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit() or len(parts[1]) > 5:
            raise RedisUrlError(f"the database of a {scheme} URL is a number; expected {form}")
        db = int(parts[1])
    return RedisTarget(
        "sentinel",
        nodes=nodes,
        service=unquote(parts[0]),
        db=db,
        tls=scheme.lower().startswith("rediss"),
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if colon else None)


def _nodes(netloc: str, default_port: int, scheme: str, form: str) -> tuple[tuple[str, int], ...]:
    nodes: list[tuple[str, int]] = []
    for number, item in enumerate(netloc.split(","), start=1):
        match = _NODE.fullmatch(item)
        if match is None:
            what = "is empty" if not item else "is not host[:port]"
            raise RedisUrlError(f"node {number} of the {scheme} URL {what}; expected {form}")
        port = int(match["port"]) if match["port"] else default_port
        if not 0 < port < 65536:
            raise RedisUrlError(f"node {number} of the {scheme} URL has port {port}: not 1..65535")
        nodes.append((match["host"].strip("[]"), port))
    return tuple(nodes)


def _options(query: str, kind: str, scheme: str) -> dict[str, str]:
    allowed = _SENTINEL_OPTIONS if kind == "sentinel" else ()
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise RedisUrlError(f"the query of the {scheme} URL is not name=value&...") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            accepted = ", ".join(allowed) if allowed else "none"
            raise RedisUrlError(
                f"unknown option {name!r} in the {scheme} URL (accepted: {accepted})"
            )
        options[name] = value
    return options

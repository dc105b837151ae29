"""Where the service lives: the regions NLS serves and the three addresses of each.

docs/protocol.md "Regions and endpoints": every region has a WebSocket gateway
(``wss://nls-gateway-<region>.aliyuncs.com/ws/v1``), RESTful one-sentence recognition on the same
host (``/stream/v1/asr``) and the meta service's CreateToken (``nls-meta.<region>.aliyuncs.com``).
Inside a VPC the ``<region>-internal`` names reach the gateway over plain ``ws://`` / ``http://``
on port 80; CreateToken keeps the region's public host.

One address is chosen, for each of the three, by the first of:

1. an explicit URL (``url=`` / ``endpoint=`` / ``--gateway`` / ``--meta``);
2. an explicit region (``region=`` / ``--region``);
3. the environment's URL: ``NLS_GATEWAY_URL``, ``NLS_REST_URL``, ``NLS_META_URL``;
4. the environment's region: ``NLS_REGION``;
5. ``cn-shanghai``.

Pure: the environment is read from the mapping handed in (``os.environ`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_REGION",
    "ENDPOINT_ENV",
    "REGIONS",
    "REGION_ENV",
    "Endpoint",
    "Region",
    "UnknownRegionError",
    "get_region",
    "resolve_url",
    "signing_region",
]

Endpoint = Literal["gateway", "rest", "meta"]

REGION_ENV = "NLS_REGION"
ENDPOINT_ENV: Mapping[Endpoint, str] = {
    "gateway": "NLS_GATEWAY_URL",
    "rest": "NLS_REST_URL",
    "meta": "NLS_META_URL",
}
DEFAULT_REGION = "cn-shanghai"


@dataclass(frozen=True, slots=True)
class Region:
    """One region's addresses; ``meta_region`` is the ``RegionId`` CreateToken is signed for."""

    name: str
    gateway: str
    rest: str
    meta: str
    meta_region: str
    internal: bool = False

    def url(self, endpoint: Endpoint) -> str:
        return {"gateway": self.gateway, "rest": self.rest, "meta": self.meta}[endpoint]


def _public(name: str) -> Region:
    host = f"nls-gateway-{name}.aliyuncs.com"
    return Region(
        name=name,
        gateway=f"wss://{host}/ws/v1",
        rest=f"https://{host}/stream/v1/asr",
        meta=f"https://nls-meta.{name}.aliyuncs.com/",
        meta_region=name,
    )


def _internal(name: str) -> Region:
    # docs/protocol.md "Regions and endpoints": VPC access is plain ws:// on port 80.
    host = f"nls-gateway-{name}-internal.aliyuncs.com"
    return Region(
        name=f"{name}-internal",
        gateway=f"ws://{host}:80/ws/v1",
        rest=f"http://{host}/stream/v1/asr",
        meta=f"https://nls-meta.{name}.aliyuncs.com/",
        meta_region=name,
        internal=True,
    )


_SERVED = ("cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1")
REGIONS: Mapping[str, Region] = {
    region.name: region for name in _SERVED for region in (_public(name), _internal(name))
}
"""Every region by name: the mainland ones, ``ap-southeast-1`` (Singapore, the international
site), and each one's ``-internal`` VPC variant."""


class UnknownRegionError(ValueError):
    """A region NLS does not serve; the message lists the ones it does."""

    def __init__(self, name: str, where: str = "region") -> None:
        shown = name if len(name) <= 60 else name[:57] + "..."
        super().__init__(
            f"{where} {shown!r} is not a region NLS serves; use one of: {', '.join(REGIONS)}"
        )


def get_region(name: str, where: str = "region") -> Region:
    """The region called ``name`` (case and surrounding spaces ignored); else
    :class:`UnknownRegionError` naming ``where`` the value came from."""
    region = REGIONS.get(name.strip().lower())
    if region is None:
        raise UnknownRegionError(name, where)
    return region


def _chosen_region(region: str | None, environ: Mapping[str, str]) -> Region | None:
    if region is not None:
        return get_region(region)
    from_env = environ.get(REGION_ENV, "")
    return get_region(from_env, f"${REGION_ENV}") if from_env.strip() else None


def resolve_url(
    endpoint: Endpoint,
    url: str | None = None,
    region: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The address of ``endpoint`` by the precedence in this module's docstring.

    An explicit ``region`` must be known even when ``url`` wins (a typo is never silent); an
    unknown ``$NLS_REGION`` is an error only when it is the one that decides.
    """
    env = os.environ if environ is None else environ
    if region is not None:
        chosen = get_region(region)
        return url if url else chosen.url(endpoint)
    if url:
        return url
    from_env = env.get(ENDPOINT_ENV[endpoint], "").strip()
    if from_env:
        return from_env
    picked = _chosen_region(None, env)
    return (picked or REGIONS[DEFAULT_REGION]).url(endpoint)


def signing_region(region: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The ``RegionId`` CreateToken is signed for: the explicit region's, else ``$NLS_REGION``'s,
    else cn-shanghai (an explicit meta URL says where to go, not which region to sign for)."""
    env = os.environ if environ is None else environ
    picked = _chosen_region(region, env)
    return (picked or REGIONS[DEFAULT_REGION]).meta_region

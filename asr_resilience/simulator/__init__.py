"""A protocol-faithful, fault-injecting NLS gateway simulator (needs the ``simulator`` extra).

WebSocket gateway (``/ws/v1``: one-sentence recognition and real-time transcription), RESTful
one-sentence recognition (``/stream/v1/asr``) and the meta service's CreateToken, on loopback
ports; faults from a :class:`Scenario`::

    faults = Scenario([Fault("code", "start", code=40000005, every=2)])
    async with Simulator(scenario=faults) as sim:
        ...  # connect to sim.gateway_url with sim.token() and sim.appkey

The names below load on first use (PEP 562), so importing a submodule such as
``asr_resilience.simulator._fixtures`` does not pull in numpy and aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._extras import requires_extra

if TYPE_CHECKING:
    from ._accounts import Account, AccountStore, StsCredentials, TokenProblem
    from ._config import SimulatorConfig
    from ._scenario import Fault, Scenario
    from ._server import Simulator, SimulatorThread
    from ._stats import SimulatorStats

_HOMES = {
    "Account": "accounts",
    "AccountStore": "accounts",
    "Fault": "scenario",
    "Scenario": "scenario",
    "Simulator": "server",
    "SimulatorConfig": "config",
    "SimulatorStats": "stats",
    "SimulatorThread": "server",
    "StsCredentials": "accounts",
    "TokenProblem": "accounts",
}

__all__ = [
    "Account",
    "AccountStore",
    "Fault",
    "Scenario",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SimulatorThread",
    "StsCredentials",
    "TokenProblem",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with requires_extra(f"asr_resilience.simulator.{name}"):
        value = getattr(importlib.import_module(f"{__name__}._{home}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

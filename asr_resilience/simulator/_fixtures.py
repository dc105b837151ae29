"""pytest fixtures: a simulated NLS gateway per test, for code that calls NLS.

``nls_gateway`` (sync and async tests alike) is a started :class:`SimulatorThread` on free
loopback ports; ``nls_simulator`` (async tests, needs pytest-asyncio) is a :class:`Simulator` in
the test's own loop. Both offer ``gateway_url``, ``rest_url``, ``meta_url``, ``appkey``,
``token()``, ``info()``, ``stats``, and the helpers ``set_scenario(...)``, ``configure(**fields)``
and ``add_account(...)``::

    def test_retries_on_overload(nls_gateway):
        nls_gateway.set_scenario([Fault("code", "start", code=50000000, sessions=[1])])
        nls_gateway.configure(idle_timeout=0.5)
        text = my_code(nls_gateway.gateway_url, nls_gateway.token(), nls_gateway.appkey)
        assert nls_gateway.stats.failed == {50000000: 1}

Importing this module is cheap and needs no optional dependency: the simulator (numpy, aiohttp)
is imported only when a fixture runs, so the pytest plugin may import it unconditionally.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from .._extras import requires_extra

if TYPE_CHECKING:
    from ._server import Simulator, SimulatorThread

__all__ = ["nls_gateway"]


@pytest.fixture
def nls_gateway() -> Iterator[SimulatorThread]:
    """A simulated NLS gateway in a background thread, on free ports; stopped after the test."""
    with requires_extra("the nls_gateway fixture"):
        from ._server import SimulatorThread

    with SimulatorThread() as simulator:
        yield simulator


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def nls_simulator() -> AsyncIterator[Simulator]:
        """A simulated NLS gateway in the test's event loop, on free ports."""
        with requires_extra("the nls_simulator fixture"):
            from ._server import Simulator

        async with Simulator() as simulator:
            yield simulator

    __all__ += ["nls_simulator"]

"""pytest fixtures: a simulated NLS gateway per test, for code that calls NLS.

``nls_gateway`` (sync and async tests alike) is a started :class:`SimulatorThread` on free
loopback ports; ``nls_simulator`` (async tests, needs pytest-asyncio) is a :class:`Simulator` in
the test's own loop. Both offer ``gateway_url``, ``rest_url``, ``meta_url``, ``appkey``,
``info()``, ``stats`` and::

    def test_retries_on_overload(nls_gateway):
        nls_gateway.set_scenario([Fault("code", "start", code=50000000, sessions=[1])])
        nls_gateway.configure(idle_timeout=0.5)
        text = my_code(nls_gateway.gateway_url, nls_gateway.token(), nls_gateway.appkey)
        assert nls_gateway.stats.failed == {50000000: 1}

- ``token(account=None, ttl=None)``: a new valid token of an account (default: the default
  account), living ``ttl`` seconds (default: ``configure(token_ttl=...)``, else a day).
- ``configure(**fields)``: change :class:`SimulatorConfig` fields in place while it runs
  (``idle_timeout``, ``transcripts``, ``service_time``, ...); the next decision reads them. An
  unknown field is a ``TypeError``.
- ``add_account(account=None, **fields)``: add an :class:`Account` (``name``, ``appkeys``,
  ``quota``, ``kind``, ...); ``token(name)`` then issues its tokens.
- ``set_scenario(faults)``: replace the fault plan (a Scenario, a list of Fault, a mapping).
- Revoking: ``store.revoke(token)`` (or ``account=``) and the scenario action ``revoke_token``
  take effect at the next start directive or REST request presenting the token, answered with
  40000001 (the ``revoke_token`` action at phase handshake or start: that session's own start);
  the handshake only checks that the token was ever issued (an unknown one is a 403), and a task
  already started runs to its end.

``nls_simulator`` without pytest-asyncio (not installed, or ``-p no:asyncio``) fails the test at
setup with a message saying so, rather than leaving the fixture undefined.

A test that leaves a WebSocket connection open (a client not closed, an SDK object not shut
down) gets a :class:`LeakedConnectionWarning` at teardown naming each connection — session
number, task, client address, age — and the connection is dropped at once, instead of the
simulator waiting for a close handshake that does not come. Connections already closing get
``LEAK_GRACE`` seconds first. ``filterwarnings = error`` turns the warning into a test error.

Importing this module is cheap and needs no optional dependency: the simulator (numpy, aiohttp)
is imported only when a fixture runs, so the pytest plugin may import it unconditionally.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from .._extras import requires_extra

if TYPE_CHECKING:
    from ._server import Simulator, SimulatorThread

__all__ = ["LEAK_GRACE", "LeakedConnectionWarning", "nls_gateway"]

LEAK_GRACE = 0.5
"""Seconds a connection that is closing when the test ends gets to finish before it counts as
left open."""


class LeakedConnectionWarning(UserWarning):
    """A test ended with connections to the simulator still open."""


def warn_leftover(fixture: str, leftover: list[str]) -> None:
    """One warning naming every connection the test left open (nothing when there is none)."""
    if not leftover:
        return
    count = f"{len(leftover)} connection{'s' if len(leftover) > 1 else ''}"
    warnings.warn(
        LeakedConnectionWarning(
            f"{fixture}: the test left {count} to the simulator open: {'; '.join(leftover)}. "
            "Close what the test opens (async with / close() / the SDK's shutdown()); "
            "dropped now."
        ),
        stacklevel=2,
    )


@pytest.fixture
def nls_gateway() -> Iterator[SimulatorThread]:
    """A simulated NLS gateway in a background thread, on free ports; stopped after the test.

    Connections the test leaves open are reported (:class:`LeakedConnectionWarning`) and dropped.
    """
    with requires_extra("the nls_gateway fixture"):
        from ._server import SimulatorThread

    with SimulatorThread() as simulator:
        yield simulator
        warn_leftover("nls_gateway", simulator.close_leftover_connections(LEAK_GRACE))


ASYNCIO_MISSING = (
    "the nls_simulator fixture runs the simulator in the test's event loop and needs the "
    "pytest-asyncio plugin, which is {why}. Install it (pip install pytest-asyncio) and mark the "
    "test async (asyncio_mode = auto, or @pytest.mark.asyncio), or use the nls_gateway fixture, "
    "which works in sync and async tests without it."
)


@pytest.fixture
def nls_simulator(request: pytest.FixtureRequest) -> Simulator:
    """A simulated NLS gateway in the test's own event loop, on free ports; stopped after the test.

    For ``async def`` tests; needs pytest-asyncio (without it, the test fails at setup saying
    so). Connections left open are reported and dropped, as with ``nls_gateway``. The same
    helpers as ``nls_gateway``, called directly (it lives in the test's loop)::

        async def test_refresh(nls_simulator):
            nls_simulator.configure(idle_timeout=0.5)
            recognizer = Recognizer(nls_simulator.gateway_url, nls_simulator.appkey, ...)
    """
    if importlib.util.find_spec("pytest_asyncio") is None:
        pytest.fail(ASYNCIO_MISSING.format(why="not installed"), pytrace=False)
    if not request.config.pluginmanager.has_plugin("asyncio"):
        pytest.fail(ASYNCIO_MISSING.format(why="disabled (-p no:asyncio)"), pytrace=False)
    simulator: Simulator = request.getfixturevalue("_nls_simulator_in_loop")
    return simulator


__all__ += ["nls_simulator"]

if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def _nls_simulator_in_loop() -> AsyncIterator[Simulator]:
        """The simulator of ``nls_simulator``, started and stopped in the test's event loop."""
        with requires_extra("the nls_simulator fixture"):
            from ._server import Simulator

        async with Simulator() as simulator:
            yield simulator
            leftover = await simulator.close_leftover_connections(LEAK_GRACE)
            warn_leftover("nls_simulator", leftover)

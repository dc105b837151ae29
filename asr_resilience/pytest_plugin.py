"""pytest plugin of asr_resilience (entry point ``pytest11``): fixtures for testing NLS code.

Installing asr_resilience registers it; the fixtures:

- ``nls_gateway``: a started simulator (:class:`~asr_resilience.simulator.SimulatorThread`) in a
  background thread on free loopback ports, for sync and async tests alike.
- ``nls_simulator``: the same in the test's own event loop, for ``async def`` tests; it needs
  pytest-asyncio, and without it the test fails at setup saying so.
- ``resilience_no_wait``: every retry decision as usual, no sleeping.

Both simulators offer ``gateway_url``, ``rest_url``, ``meta_url``, ``appkey``, ``info()``,
``stats``, ``store`` and ``token(account=None, ttl=None)`` (a new valid token of an account),
``configure(**fields)`` (change :class:`~asr_resilience.simulator.SimulatorConfig` fields while
it runs; an unknown field is a ``TypeError``), ``add_account(...)`` (``token(name)`` then issues
its tokens) and ``set_scenario(faults)``. A revoked token (``store.revoke(token)`` or the scenario
action ``revoke_token``) is refused with 40000001 at the next start directive or REST request
presenting it; the handshake only checks that it was ever issued, and a task already started
runs to its end. See ``asr_resilience.simulator._fixtures`` for the details.

A test that leaves a connection to the simulator open gets a :class:`LeakedConnectionWarning`
at teardown naming each connection (session, task, client address, age); the connection is
dropped at once instead of the simulator waiting for a close handshake.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from .simulator._fixtures import LeakedConnectionWarning, nls_gateway, nls_simulator
from .testing import no_wait

with contextlib.suppress(ImportError):  # exists only with pytest-asyncio
    # nls_simulator asks for it by name: pytest finds fixtures among the plugin's attributes.
    from .simulator._fixtures import _nls_simulator_in_loop  # noqa: F401

__all__ = ["LeakedConnectionWarning", "nls_gateway", "nls_simulator", "resilience_no_wait"]


@pytest.fixture
def resilience_no_wait() -> Iterator[None]:
    """Every retry decision as usual, but no waiting: ``asr_resilience.testing.no_wait()``."""
    with no_wait():
        yield

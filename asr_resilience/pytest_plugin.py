"""pytest plugin of asr_resilience (entry point ``pytest11``): fixtures for testing NLS code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from .simulator._fixtures import nls_gateway, nls_simulator
from .testing import no_wait

with contextlib.suppress(ImportError):  # exists only with pytest-asyncio
    # nls_simulator asks for it by name: pytest finds fixtures among the plugin's attributes.
    from .simulator._fixtures import _nls_simulator_in_loop  # noqa: F401

__all__ = ["nls_gateway", "nls_simulator", "resilience_no_wait"]


@pytest.fixture
def resilience_no_wait() -> Iterator[None]:
    """Every retry decision as usual, but no waiting: ``asr_resilience.testing.no_wait()``."""
    with no_wait():
        yield

"""pytest plugin of asr_resilience (entry point ``pytest11``): fixtures for testing NLS code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import no_wait


@pytest.fixture
def resilience_no_wait() -> Iterator[None]:
    """Every retry decision as usual, but no waiting: ``asr_resilience.testing.no_wait()``."""
    with no_wait():
        yield

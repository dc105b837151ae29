"""Delay schedules: exponential growth with jitter, as plain generators.

Pure: a schedule never sleeps and takes its random source as an argument, so tests and the
benchmark can replay it. Jitter kinds follow the AWS Architecture Blog's "Exponential Backoff
and Jitter": ``full`` = U(0, base), ``equal`` = base/2 + U(0, base/2), ``decorrelated`` =
min(max, U(initial, 3 × previous)), ``none`` = base.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Protocol

from .policy._model import Backoff


class RandomSource(Protocol):
    """What a schedule needs from a random generator (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


_DEFAULT_RANDOM = random.Random()


def delay(
    backoff: Backoff,
    retry_index: int,
    previous: float | None = None,
    rng: RandomSource | None = None,
) -> float:
    """The jittered delay before retry ``retry_index`` (0-based).

    ``previous`` is the last delay, which the decorrelated kind grows from.
    """
    source = rng or _DEFAULT_RANDOM
    base = backoff.base_delay(retry_index)
    if backoff.jitter == "none":
        return base
    if backoff.jitter == "full":
        return source.uniform(0.0, base)
    if backoff.jitter == "equal":
        return base / 2 + source.uniform(0.0, base / 2)
    last = backoff.initial if previous is None else max(previous, backoff.initial)
    return min(backoff.max, source.uniform(backoff.initial, last * 3))


def delays(backoff: Backoff, rng: RandomSource | None = None) -> Iterator[float]:
    """An endless schedule of jittered delays."""
    previous: float | None = None
    index = 0
    while True:
        previous = delay(backoff, index, previous, rng)
        yield previous
        index += 1

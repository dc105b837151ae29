"""Durations in policy files: a number of seconds, or a string with a unit (``250ms``, ``1.5m``)."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(ms|s|m|h)\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for ``value``; raise ValueError with a reason a user can act on."""
    if isinstance(value, bool):
        raise ValueError(
            f"expected a duration like 250ms, 2s, 1.5m or a number of seconds, got {value!r}"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration: use a number of seconds or a unit ms, s, m, h "
                "(e.g. 250ms, 2s, 1.5m)"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            f"expected a duration like 250ms, 2s, 1.5m or a number of seconds, got {value!r}"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a policy file would write them."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds < 3600 or seconds % 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"

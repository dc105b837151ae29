"""The building blocks of policy validation: typed checks that report, not raise.

Each check reports a mistake as a PolicyIssue (file, line, field) and raises :class:`Invalid`
so the caller can fall back to a default and go on: one run reports every mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from .._durations import format_duration, parse_duration
from .._errors import PolicyIssue
from ._located import Located

T = TypeVar("T")

MAX_MESSAGE = 240
"""Characters of one issue's message; longer ones (quoting a huge value) are cut."""


class Invalid(Exception):
    """A value was reported as an issue; the caller falls back to its default."""


class Checks:
    """Scalar and mapping checks that collect issues in ``self.issues``."""

    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    def fail(self, loc: Located, field: str, message: str) -> Invalid:
        if len(message) > MAX_MESSAGE:
            # A message quotes the user's value: a huge value must not make a huge line.
            message = message[: MAX_MESSAGE - 3] + "..."
        self.issues.append(loc.issue(field, message))
        return Invalid()

    def mapping(self, loc: Located, field: str, allowed: tuple[str, ...]) -> dict[str, Located]:
        if not isinstance(loc.value, dict):
            raise self.fail(loc, field, f"expected a mapping, got {kind(loc.value)}")
        value = cast(dict[str, Located], loc.value)
        for key, child in value.items():
            if key not in allowed:
                self.fail(
                    child,
                    join(field, key),
                    f"unknown key; expected one of {', '.join(allowed)}",
                )
        return value

    def integer(self, loc: Located, field: str, minimum: int, maximum: int) -> int:
        value = loc.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(loc, field, f"expected an integer, got {kind(value)} {value!r}")
        if value < minimum:
            raise self.fail(loc, field, f"{value} is below the minimum {minimum}")
        if value > maximum:
            raise self.fail(loc, field, f"{value} is above the maximum {maximum}")
        return value

    def number(
        self,
        loc: Located,
        field: str,
        minimum: float,
        maximum: float,
        *,
        exclusive_min: bool = False,
    ) -> float:
        value = loc.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(loc, field, f"expected a number, got {kind(value)} {value!r}")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise self.fail(loc, field, f"{value!r} is not a finite number")
        if number < minimum or (exclusive_min and number == minimum):
            bound = f"above {minimum:g}" if exclusive_min else f"at least {minimum:g}"
            raise self.fail(loc, field, f"{value!r} is out of range: must be {bound}")
        if number > maximum:
            raise self.fail(loc, field, f"{value!r} is out of range: must be at most {maximum:g}")
        return number

    def duration(
        self, loc: Located, field: str, maximum: float, *, allow_zero: bool = False
    ) -> float:
        try:
            seconds = parse_duration(loc.value)
        except ValueError as exc:
            raise self.fail(loc, field, str(exc)) from None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            bound = "at least 0" if allow_zero else "greater than 0"
            raise self.fail(loc, field, f"{loc.value!r} is out of range: must be {bound}")
        if seconds > maximum:
            raise self.fail(
                loc,
                field,
                f"{loc.value!r} is out of range: must be at most {format_duration(maximum)}",
            )
        return seconds

    def choice(self, loc: Located, field: str, choices: tuple[T, ...]) -> T:
        if loc.value not in choices:
            options = ", ".join(str(c) for c in choices)
            raise self.fail(loc, field, f"{loc.value!r} is not one of {options}")
        return cast(T, loc.value)

    def boolean(self, loc: Located, field: str) -> bool:
        if not isinstance(loc.value, bool):
            raise self.fail(loc, field, f"expected true or false, got {loc.value!r}")
        return loc.value

    def text(self, loc: Located, field: str) -> str:
        if not isinstance(loc.value, str) or not loc.value:
            raise self.fail(loc, field, f"expected a non-empty string, got {loc.value!r}")
        return loc.value

    def optional(
        self,
        items: dict[str, Located],
        key: str,
        field: str,
        parse: Callable[[Located, str], T],
        default: T,
    ) -> T:
        """Parse ``items[key]`` if present; on a mistake keep the default (the issue is kept)."""
        loc = items.get(key)
        if loc is None:
            return default
        try:
            return parse(loc, join(field, key))
        except Invalid:
            return default


def join(field: str, key: str) -> str:
    key = key.replace("\r", "\\r").replace("\n", "\\n")  # a field path stays on one line
    return f"{field}.{key}" if field else key


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__

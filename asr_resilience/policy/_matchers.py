"""Composable rule matchers: small callables on a Failure, combined with ``&`` and ``|``.

YAML rules compile to the same objects Python users build by hand::

    codes(40000005) & message("TOO_MANY_REQUESTS") | http_status(429)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._failure import Failure
from ._regex import LinearRegex, compile_linear


@runtime_checkable
class Matcher(Protocol):
    """Anything that tells whether a rule applies to a failure."""

    def __call__(self, failure: Failure) -> bool: ...


class _Combinable:
    __slots__ = ()

    def __and__(self, other: Matcher) -> AllOf:
        return AllOf((self, other))  # type: ignore[arg-type]

    def __or__(self, other: Matcher) -> AnyOf:
        return AnyOf((self, other))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CodePattern:
    """A class pattern such as ``5xxxxxxx`` or ``4xx``: digits, with ``x`` for any digit."""

    pattern: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]*x[0-9x]*", self.pattern):
            raise ValueError(
                f"{self.pattern!r} is not a code pattern: use digits and x, e.g. 5xxxxxxx or 4xx"
            )

    def matches(self, code: int) -> bool:
        if code < 0:
            return False
        text = str(code)
        if len(text) != len(self.pattern):
            return False
        return all(p in ("x", c) for p, c in zip(self.pattern, text, strict=True))


@dataclass(frozen=True, slots=True)
class Codes(_Combinable):
    """The failure's code (vendor code, else HTTP status) is listed or fits a class pattern."""

    exact: frozenset[int]
    patterns: tuple[CodePattern, ...] = ()

    def __call__(self, failure: Failure) -> bool:
        code = failure.effective_code
        if code is None:
            return False
        return code in self.exact or any(p.matches(code) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Message(_Combinable):
    """A regular expression searched in the status text, in linear time (RE2)."""

    regex: LinearRegex

    def __call__(self, failure: Failure) -> bool:
        return self.regex.search(failure.message)


@dataclass(frozen=True, slots=True)
class HttpStatus(_Combinable):
    """The HTTP status of a handshake or REST response is listed or fits a class pattern.

    Only failures without a vendor code match: when a REST body carries a ``status`` under an
    HTTP error, the vendor code decides (match it with :class:`Codes`).
    """

    exact: frozenset[int]
    patterns: tuple[CodePattern, ...] = ()

    def __call__(self, failure: Failure) -> bool:
        status = failure.http_status
        if status is None or failure.code is not None:
            return False
        return status in self.exact or any(p.matches(status) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Transport(_Combinable):
    """A connection-level failure (``True``), or explicitly not one (``False``)."""

    expected: bool = True

    def __call__(self, failure: Failure) -> bool:
        return (failure.transport is not None) is self.expected


@dataclass(frozen=True, slots=True)
class AllOf(_Combinable):
    """Every part must match."""

    parts: tuple[Matcher, ...]

    def __call__(self, failure: Failure) -> bool:
        return all(part(failure) for part in self.parts)


@dataclass(frozen=True, slots=True)
class AnyOf(_Combinable):
    """At least one part must match."""

    parts: tuple[Matcher, ...]

    def __call__(self, failure: Failure) -> bool:
        return any(part(failure) for part in self.parts)


def codes(*items: int | str) -> Codes:
    """Match vendor codes (``40000005``) or class patterns (``"5xxxxxxx"``)."""
    exact = frozenset(i for i in items if isinstance(i, int))
    patterns = tuple(CodePattern(i) for i in items if isinstance(i, str))
    return Codes(exact, patterns)


def message(regex: str) -> Message:
    """Match a regular expression searched in the status text.

    The pattern runs on RE2 (linear time, no backreferences or lookaround); a pattern it cannot
    compile raises :class:`ValueError`.
    """
    return Message(compile_linear(regex))


def http_status(*items: int | str) -> HttpStatus:
    """Match HTTP statuses (``403``) or patterns (``"5xx"``)."""
    exact = frozenset(i for i in items if isinstance(i, int))
    patterns = tuple(CodePattern(i) for i in items if isinstance(i, str))
    return HttpStatus(exact, patterns)


def transport(expected: bool = True) -> Transport:
    """Match connection-level failures."""
    return Transport(expected)

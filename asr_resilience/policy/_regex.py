"""``message:`` patterns on a linear-time engine (RE2), so a pattern cannot stall the loop.

Python's ``re`` backtracks: ``^(a+)+$`` against 26 characters of status text costs seconds of
CPU inside the event loop. RE2 (``google-re2``) matches in time linear in the text whatever the
pattern. It has no backreferences or lookaround; a pattern that needs them is refused when the
policy is checked, with a one-line reason.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["LinearRegex", "RegexError", "compile_linear"]

MAX_PATTERN_LENGTH = 1000
"""Characters in one ``message:`` pattern; status texts are short, real patterns shorter."""

_OPTIONS: Any = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own copy of the error to stderr
_OPTIONS.max_mem = 8 << 20  # a pattern that compiles to more is refused, not built


class RegexError(ValueError):
    """The pattern cannot be used: a syntax error, or a feature RE2 does not have."""


class LinearRegex:
    """A compiled pattern searched in linear time; ``pattern`` is the source text."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise RegexError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
        try:
            self._compiled: Any = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid pattern"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise RegexError(str(reason)) from None
        self.pattern = pattern

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``."""
        return self._compiled.search(text) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinearRegex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"


def compile_linear(pattern: str) -> LinearRegex:
    """Compile ``pattern`` for linear-time search; raises :class:`RegexError` with a reason."""
    return LinearRegex(pattern)

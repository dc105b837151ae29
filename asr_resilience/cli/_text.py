"""Messages the command line prints: one line, no object reprs, bounded length."""

from __future__ import annotations

import re

__all__ = ["MAX_LINE", "one_line"]

MAX_LINE = 600
"""Characters of one message; a page someone's server sent back is cut, not printed."""

# `<ssl.SSLContext object at 0x7f...>` and the like: noise to a user, and different every run.
_OBJECT_REPR = re.compile(r"<([A-Za-z_][\w.]*) object at 0x[0-9a-fA-F]+>")


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line: object reprs named by their class, whitespace runs as one space,
    cut at ``limit`` characters."""
    text = _OBJECT_REPR.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

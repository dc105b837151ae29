"""Aligned text tables for terminal output: each column as wide as its longest value."""

from __future__ import annotations

from collections.abc import Sequence, Set

__all__ = ["columns"]


def columns(
    header: Sequence[str], rows: Sequence[Sequence[object]], right: Set[int] = frozenset()
) -> list[str]:
    """``header`` then ``rows``, each column padded to its longest value (the ``right`` ones
    right-aligned), two spaces between columns, no trailing blanks."""
    cells = [[str(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]

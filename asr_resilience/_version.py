"""The package's version, read once from its installed metadata (pyproject.toml is the source)."""

from __future__ import annotations

import importlib.metadata

__all__ = ["VERSION"]

try:
    VERSION = importlib.metadata.version("asr-resilience")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"

"""Optional parts of the package and the extra that installs each, for one-line refusals.

A module of an extra that is not installed must not end in a bare ``No module named 'numpy'``
several frames deep: :func:`requires_extra` turns it into :class:`MissingExtraError`, whose text
names what needed it and the ``pip install`` line that fixes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["EXTRAS", "MissingExtraError", "requires_extra"]

EXTRAS: dict[str, str] = {
    "numpy": "simulator",
    "aiohttp": "simulator",
    "matplotlib": "plot",
    "redis": "redis",
    "alibabacloud_nls_cloud_meta20190228": "aliyun",
    "alibabacloud_tea_openapi": "aliyun",
    "alibabacloud_credentials": "aliyun",
    "nls": "sdk",
    "prometheus_client": "prometheus",
    "opentelemetry": "otel",
}
"""Top-level module asr_resilience imports -> the extra of ``pyproject.toml`` that installs it
(each extra names only distributions providing these: tests/test_packaging.py checks it)."""


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install."""


@contextmanager
def requires_extra(what: str) -> Iterator[None]:
    """Inside: a missing module of an extra raises MissingExtraError saying ``what`` needs it."""
    try:
        yield
    except MissingExtraError:
        raise
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        extra = EXTRAS.get(top)
        if extra is None:
            raise
        raise MissingExtraError(
            f"{what} needs {top}, which is not installed: pip install 'asr-resilience[{extra}]'",
            name=exc.name,
        ) from None

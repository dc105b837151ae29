"""Where a scope's limiter comes from when a policy asks for more than the local one.

The limits layer never imports a layer above it. A backend (the Redis fleet) registers a
factory under a name when its package is imported (:func:`register_limiter_backend`);
:func:`limiter_backend` looks it up. For the backends this package ships, the registry knows the
module that registers each one and imports it on first use, so ``import asr_resilience`` stays
free of redis-py and a policy with ``fleet: {enabled: true}`` still just works once the extra is
installed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Protocol

from ..policy._policy import Policy
from ._limiter import Limiter

__all__ = ["LimiterFactory", "limiter_backend", "register_limiter_backend"]


class LimiterFactory(Protocol):
    """Builds the limiter of scope ``name`` from ``policy``."""

    def __call__(
        self,
        name: str,
        policy: Policy,
        *,
        clock: Callable[[], float],
        on_change: Callable[[float, float], None] | None,
    ) -> Limiter: ...


# Backends shipped with the package: the module whose import registers each, and its extra.
_PROVIDERS: dict[str, tuple[str, str]] = {"redis": ("asr_resilience.fleet", "redis")}

_backends: dict[str, LimiterFactory] = {}
_lock = threading.Lock()


def register_limiter_backend(name: str, factory: LimiterFactory) -> None:
    """Make ``factory`` the limiter backend called ``name`` (a later call replaces it)."""
    with _lock:
        _backends[name] = factory


def limiter_backend(name: str) -> LimiterFactory:
    """The factory registered as ``name``, importing the package that provides it if needed.

    Raises ImportError naming the extra to install when the provider's dependencies are
    missing, and LookupError for a name nobody registered.
    """
    factory = _backends.get(name)
    if factory is not None:
        return factory
    provider = _PROVIDERS.get(name)
    if provider is not None:
        module, extra = provider
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"the {name!r} limiter backend needs the {extra!r} extra: "
                f"pip install 'asr-resilience[{extra}]' ({exc})"
            ) from exc
        factory = _backends.get(name)
    if factory is None:
        known = sorted(set(_backends) | set(_PROVIDERS))
        raise LookupError(f"no limiter backend called {name!r} (known: {', '.join(known)})")
    return factory

"""One structlog event per decision, and hooks that metrics backends subscribe to.

Event names are namespaced (``asr_resilience.retry_scheduled``); fields are key-value, never
pre-formatted text, and pass through redaction before anyone sees them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog

from ._redact import redact_value

PREFIX = "asr_resilience."

_logger = structlog.get_logger("asr_resilience")


@dataclass(frozen=True, slots=True)
class Event:
    """What a hook receives: the event's full name and its (redacted) fields."""

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)


Hook = Callable[[Event], None]
_hooks: tuple[Hook, ...] = ()
_hooks_lock = threading.Lock()


def add_hook(hook: Hook) -> Callable[[], None]:
    """Subscribe ``hook`` to every event; returns a function that unsubscribes it."""
    global _hooks
    with _hooks_lock:
        _hooks = (*_hooks, hook)

    def remove() -> None:
        global _hooks
        with _hooks_lock:
            _hooks = tuple(h for h in _hooks if h is not hook)

    return remove


def emit(name: str, level: str = "info", **fields: Any) -> None:
    """Log ``asr_resilience.<name>`` with redacted fields and hand it to every hook."""
    clean = {key: redact_value(key, value) for key, value in fields.items() if value is not None}
    full = PREFIX + name
    getattr(_logger, level)(full, **clean)
    hooks = _hooks
    if hooks:
        event = Event(full, MappingProxyType(clean))
        for hook in hooks:
            try:
                hook(event)
            except Exception:  # a broken metrics backend must not break the call
                _logger.warning(PREFIX + "hook_failed", hook=repr(hook))

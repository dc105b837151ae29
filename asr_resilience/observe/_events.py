"""One structlog event per decision, and hooks that metrics backends subscribe to.

Event names are namespaced (``asr_resilience.retry_scheduled``); fields are key-value, never
pre-formatted text, and pass through redaction before anyone sees them.

Where the events go (a library prints nothing of its own accord):

* structlog configured by the application (``structlog.is_configured()``): the application's
  pipeline, through ``structlog.get_logger("asr_resilience")`` (with
  ``structlog.stdlib.LoggerFactory`` that is the standard logger of that name);
* otherwise: the standard ``logging`` logger ``asr_resilience`` (a ``NullHandler`` is its only
  handler), through a structlog logger whose pipeline redacts and renders ``name key=value``;
  the record carries ``record.event`` and ``record.fields`` for structured formatters.

A level set on ``logging.getLogger("asr_resilience")`` is honoured on both routes. Repeated
warnings of one kind on one scope are logged once per interval, then summarised
(``asr_resilience.warnings_suppressed``); hooks receive every event.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog

from .._clock import SYSTEM_CLOCK, Clock
from ._redact import redact_processor, redact_value

PREFIX = "asr_resilience."
LOGGER_NAME = "asr_resilience"

_stdlib = logging.getLogger(LOGGER_NAME)
# The logging HOWTO's rule for libraries: no output unless the application configures some.
if not any(isinstance(h, logging.NullHandler) for h in _stdlib.handlers):
    _stdlib.addHandler(logging.NullHandler())

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _render_value(value: Any) -> str:
    text = str(value)
    return repr(text) if isinstance(value, str) and (not text or " " in text) else text


def _to_record(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """The last processor of the default pipeline: keyword arguments of a ``logging`` call."""
    name = str(event_dict.pop("event", ""))
    fields = dict(event_dict)
    text = " ".join([name, *(f"{k}={_render_value(v)}" for k, v in fields.items())])
    return {"msg": text, "extra": {"event": name, "fields": fields}}


_default = structlog.stdlib.BoundLogger(_stdlib, [redact_processor, _to_record], {})
"""The route when the application has not configured structlog: standard logging."""
_configured = structlog.get_logger(LOGGER_NAME)
"""The route when it has: its pipeline (read at each event, so later configuration counts)."""


@dataclass(frozen=True, slots=True)
class Event:
    """What a hook receives: the event's full name and its (redacted) fields."""

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)


Hook = Callable[[Event], None]
_hooks: tuple[Hook, ...] = ()
_hooks_lock = threading.Lock()

observed = False
"""True while a hook is subscribed: the drivers then report calls and attempts to the hooks
(``call_started``, ``attempt_started``, ``attempt_ended``, ``call_ended``; :func:`notify`, not
logged); a call nobody observes pays one flag check for them."""

call_ids = itertools.count(1)
"""Numbers that tie a call's and its attempts' events together (the ``call`` field)."""


def add_hook(hook: Hook) -> Callable[[], None]:
    """Subscribe ``hook`` to every event; returns a function that unsubscribes it."""
    global _hooks, observed
    with _hooks_lock:
        _hooks = (*_hooks, hook)
        observed = True

    def remove() -> None:
        global _hooks, observed
        with _hooks_lock:
            _hooks = tuple(h for h in _hooks if h is not hook)
            observed = bool(_hooks)

    return remove


class _Repeats:
    """Repeated warnings of one kind on one scope: the first is logged, then one summary.

    A kind is (event, scope, error, code); its first warning opens a window of
    :attr:`interval` seconds (read through the Clock) during which the same kind is only
    counted. The next event of any kind after the window closes it: if any were held back, a
    ``warnings_suppressed`` summary with their count is logged; the next one is logged again.
    """

    def __init__(self) -> None:
        self.clock: Clock = SYSTEM_CLOCK
        self.interval = 60.0
        self._open: dict[tuple[Any, ...], list[Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(name: str, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        where = fields.get("scope") or fields.get("key") or fields.get("redis")
        return (name, where, fields.get("error"), fields.get("code"))

    def admit(self, name: str, fields: Mapping[str, Any]) -> bool:
        """True: log this warning; False: it repeats one logged less than an interval ago."""
        kind = self.kind(name, fields)
        with self._lock:
            window = self._open.get(kind)
            if window is None:
                self._open[kind] = [self.clock.monotonic(), 0]
                return True
            window[1] += 1
            return False

    def closed(self) -> list[tuple[tuple[Any, ...], int, float]]:
        """The windows that have ended and held something back: (kind, count, seconds)."""
        if not self._open:
            return []
        now = self.clock.monotonic()
        done = []
        with self._lock:
            for kind, (start, count) in list(self._open.items()):
                if now - start >= self.interval:
                    del self._open[kind]
                    if count:
                        done.append((kind, count, round(now - start, 3)))
        return done

    def reset(self) -> None:
        """Forget every window (tests)."""
        with self._lock:
            self._open.clear()


repeats = _Repeats()


def _log(full: str, level: str, fields: Mapping[str, Any]) -> None:
    levelno = _LEVELS[level]
    for (name, where, error, code), count, seconds in repeats.closed():
        _write(
            PREFIX + "warnings_suppressed",
            "warning",
            logging.WARNING,
            {
                "suppressed": name,
                "scope": where,
                "error": error,
                "code": code,
                "count": count,
                "seconds": seconds,
            },
        )
    if levelno >= logging.WARNING and not repeats.admit(full, fields):
        return
    _write(full, level, levelno, fields)


def _write(full: str, level: str, levelno: int, fields: Mapping[str, Any]) -> None:
    if structlog.is_configured():
        # The application's pipeline decides, and a level set on our logger too.
        if _stdlib.level and not _stdlib.isEnabledFor(levelno):
            return
        getattr(_configured, level)(full, **{k: v for k, v in fields.items() if v is not None})
    elif _stdlib.isEnabledFor(levelno):
        getattr(_default, level)(full, **{k: v for k, v in fields.items() if v is not None})


def emit(name: str, level: str = "info", **fields: Any) -> None:
    """Log ``asr_resilience.<name>`` with redacted fields and hand it to every hook."""
    clean = {key: redact_value(key, value) for key, value in fields.items() if value is not None}
    full = PREFIX + name
    _log(full, level, clean)
    _dispatch(full, clean)


def notify(name: str, **fields: Any) -> None:
    """Hand ``asr_resilience.<name>`` to the hooks only: the drivers' call and attempt
    boundaries, which exist for backends (and are emitted only while one is subscribed), so
    subscribing one does not change the logs."""
    clean = {key: redact_value(key, value) for key, value in fields.items() if value is not None}
    _dispatch(PREFIX + name, clean)


def _dispatch(full: str, clean: dict[str, Any]) -> None:
    hooks = _hooks
    if hooks:
        event = Event(full, MappingProxyType(clean))
        for hook in hooks:
            try:
                hook(event)
            except Exception:  # a broken metrics backend must not break the call
                _log(PREFIX + "hook_failed", "warning", {"hook": repr(hook)})

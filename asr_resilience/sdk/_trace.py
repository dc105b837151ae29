"""Read what the official SDK logs about a failed connection, and keep its logs quiet.

The SDK hides why a connection ended: a handshake 403, a refused connection and a drop all reach
the user as a bare ``on_close`` (docs/protocol.md "Official SDKs"). The one
place the reason shows is its own logging: when websocket-client's ``run_forever`` fails, the
SDK's ``nls.core.core_on_error`` logs ``core_on_error:<exception>`` at DEBUG on the ``nls``
logger, e.g. ``core_on_error:Handshake status 403 Forbidden``, in the SDK's websocket thread —
the thread that calls ``on_close`` right after. :class:`SdkLogTap` is a :class:`logging.Filter`
on the ``nls`` and ``websocket`` loggers that notes that text (and the HTTP status in it) per
thread, for the attempt's ``on_close`` to look up.

Why a filter and not a handler: a logger's filters see every record the logger lets through
before any handler does, whatever handlers and propagation the application set up, and they can
also veto a record. That lets one object both read the records it needs and keep everything
below WARNING from reaching any handler (``quiet``): the ``nls`` logger has to be enabled for
DEBUG for the record to exist at all, and without the veto that would pour the SDK's debug
chatter — TaskFailed bodies with ``The token '…' has expired`` in them — into the application's
logs. The vendored websocket client (logger ``websocket``, shared with the websocket-client
package) dumps the handshake request, ``X-NLS-Token`` header included, at DEBUG; quiet drops
that too, and otherwise the tap scrubs tokens from whatever it lets through. The tap never
emits anything itself.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from ..observe import redact_text

__all__ = ["SDK_LOGGERS", "ConnectionNote", "SdkLogTap", "install_log_tap"]

SDK_LOGGERS = ("nls", "websocket")
"""The official SDK's logger and its vendored websocket client's."""

_ERROR_PREFIX = "core_on_error:"
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")
# One below DEBUG: the level the tap sets on the ``nls`` logger, so that a later
# ``setLevel(logging.DEBUG)`` by the application is told apart from the tap's own.
_TAP_LEVEL = logging.DEBUG - 1


@dataclass(frozen=True, slots=True)
class ConnectionNote:
    """What the SDK logged about one websocket thread's failure."""

    error: str
    """The exception text after ``core_on_error:`` (tokens scrubbed)."""
    handshake_status: int | None
    """The HTTP status of a refused handshake (``Handshake status 403 Forbidden``), if any."""


class SdkLogTap(logging.Filter):
    """A filter on the SDK's loggers: notes connection failures per thread; quiets the rest.

    ``capture_from``: the logger whose ``core_on_error`` records are read (``nls``).
    ``quiet``: let only WARNING and above out of the SDK's loggers. Otherwise the records the
    application's own level would have let through still go out (the tap had to lower the
    ``nls`` logger's level to see DEBUG), with tokens scrubbed.
    """

    def __init__(self, *, capture_from: str = "nls", quiet: bool = True) -> None:
        super().__init__()
        self.capture_from = capture_from
        self.quiet = quiet
        self._lock = threading.Lock()
        # Keyed by the Thread object, not its ident alone: idents are reused once a thread ends,
        # and a note left by a thread that never reached on_close must not reach a newer one.
        self._notes: weakref.WeakKeyDictionary[threading.Thread, ConnectionNote] = (
            weakref.WeakKeyDictionary()
        )
        self._floors: dict[str, int] = {}
        self._loggers: list[logging.Logger] = []

    # -- installing ----------------------------------------------------------------------------

    def attach(self, names: Iterable[str] = SDK_LOGGERS) -> None:
        """Add the tap to these loggers (once each) and make it see the capture logger's DEBUG."""
        with self._lock:
            for name in names:
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)
                    self._loggers.append(logger)
        self.ensure_enabled()

    def detach(self) -> None:
        """Remove the tap from every logger it was added to (the capture logger's level stays)."""
        with self._lock:
            for logger in self._loggers:
                logger.removeFilter(self)
            self._loggers.clear()

    def ensure_enabled(self) -> None:
        """Let the capture logger's DEBUG records through to the tap (cheap; call per attempt).

        The application may have set the ``nls`` logger's level since (or the SDK's
        ``nls.enableTrace``): its choice becomes the floor below which the tap drops records,
        and the logger goes back to the tap's level.
        """
        logger = logging.getLogger(self.capture_from)
        if logger.level == _TAP_LEVEL:
            return
        with self._lock:
            if logger.level != _TAP_LEVEL:
                self._floors[logger.name] = logger.getEffectiveLevel()
                logger.setLevel(_TAP_LEVEL)

    # -- reading -------------------------------------------------------------------------------

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == self.capture_from and record.levelno <= logging.DEBUG:
            self._note(record)
        if record.levelno < self._floor(record.name):
            return False
        if not self.quiet:
            _scrub(record)
        return True

    def _floor(self, name: str) -> int:
        chosen = self._floors.get(name, logging.NOTSET)
        return max(chosen, logging.WARNING) if self.quiet else chosen

    def _note(self, record: logging.LogRecord) -> None:
        # The SDK formats its messages before logging them: skip the rest without formatting.
        if not (isinstance(record.msg, str) and record.msg.startswith(_ERROR_PREFIX)):
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the SDK's problem, not the attempt's
            return
        error = text[len(_ERROR_PREFIX) :].strip()
        match = _HANDSHAKE.search(error)
        note = ConnectionNote(redact_text(error), int(match.group(1)) if match else None)
        # Filters run in the thread that logs: record.thread is this thread's ident.
        thread = threading.current_thread()
        if record.thread is not None and record.thread != thread.ident:  # pragma: no cover
            return  # re-logged from elsewhere (a queue listener): not this thread's failure
        with self._lock:
            self._notes[thread] = note

    def take(self, thread: threading.Thread | None = None) -> ConnectionNote | None:
        """The note the given thread (default: this one) left, removed; None if none."""
        thread = thread or threading.current_thread()
        with self._lock:
            return self._notes.pop(thread, None)


def _scrub(record: logging.LogRecord) -> None:
    try:
        text = record.getMessage()
    except Exception:
        return
    clean = redact_text(text)
    if clean != text:
        record.msg, record.args = clean, ()


_tap: SdkLogTap | None = None
_tap_lock = threading.Lock()


def install_log_tap(*, quiet: bool = True) -> SdkLogTap:
    """The process's tap on the SDK's loggers, attached on first use.

    Loggers are process-wide, so is ``quiet``: once any caller asks for quiet SDK logs they stay
    quiet (pass ``quiet=False`` everywhere, or set ``install_log_tap().quiet = False``, to keep
    the SDK's own output).
    """
    global _tap
    with _tap_lock:
        tap = _tap
        if tap is None:
            tap = _tap = SdkLogTap(quiet=quiet)
            tap.attach()
        elif quiet:
            tap.quiet = True
    tap.ensure_enabled()
    return tap

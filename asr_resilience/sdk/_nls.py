"""Import the official SDK (``nls``) on first use, and reach the few internals the adapter needs.

``nls`` is an optional dependency (the ``sdk`` extra): importing ``asr_resilience.sdk`` must not
need it, so the adapters call :func:`load` when they are built.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
import warnings
from types import ModuleType
from typing import Any

__all__ = [
    "close_socket",
    "connection_thread",
    "duplicate",
    "load",
    "open_hook_name",
    "wake",
    "websocket_of",
]

_module: ModuleType | None = None
_lock = threading.Lock()


def load() -> ModuleType:
    """The ``nls`` package; ImportError naming the extra when it is missing."""
    global _module
    module = _module
    if module is not None:
        return module
    with _lock:
        if _module is None:
            with warnings.catch_warnings():
                # nls 1.0.2's core.py compares with `is 'on_close'`: CPython warns when it
                # compiles the file (no cached bytecode), an error under `-W error`.
                warnings.filterwarnings(
                    "ignore", message=r'"is" with a literal', category=SyntaxWarning
                )
                try:
                    import nls  # type: ignore[import-untyped,import-not-found,unused-ignore]

                    for submodule in ("nls.exception", "nls.websocket"):
                        importlib.import_module(submodule)
                except ImportError as exc:
                    raise ImportError(
                        "asr_resilience.sdk wraps the official SDK: pip install "
                        "'asr-resilience[sdk]' (alibabacloud-nls-python-sdk)"
                    ) from exc
            _module = nls
        return _module


# The SDK keeps its connection in name-mangled attributes (nls 1.0.2): the SDK object's
# `__nls` (NlsCore), whose `__ws` is the websocket-client WebSocketApp, whose `sock` is the
# WebSocket while run_forever runs. Every access below tolerates their absence.
def _private(obj: object, owner: str, name: str) -> Any:
    return getattr(obj, f"_{owner}__{name}", None)


def open_hook_name(sdk: object) -> str | None:
    """The SDK object's private on_open callback (``__sr_core_on_open`` / ``__tr_core_on_open``).

    ``start()`` reads it through ``self``, so an instance attribute of that name replaces it
    for this object alone. None when the SDK version has no such method.
    """
    cls = type(sdk).__name__
    for short in ("sr", "tr"):
        name = f"_{cls}__{short}_core_on_open"
        if hasattr(type(sdk), name):
            return name
    return None


def websocket_of(sdk: object) -> Any:
    """The websocket-client ``WebSocket`` of the SDK object's connection, or None."""
    core = _private(sdk, type(sdk).__name__, "nls")
    app = _private(core, "NlsCore", "ws") if core is not None else None
    return getattr(app, "sock", None) if app is not None else None


def connection_thread(sdk: object) -> threading.Thread | None:
    """The thread running the SDK object's websocket (NlsCore's ``__th``), once it started."""
    core = _private(sdk, type(sdk).__name__, "nls")
    thread = _private(core, "NlsCore", "th") if core is not None else None
    return thread if isinstance(thread, threading.Thread) else None


def duplicate(websocket: Any) -> socket.socket | None:
    """A second descriptor of the WebSocket's TCP socket, or None.

    The SDK's ``send_audio`` closes its socket itself on ``ConnectionResetError``, under the
    reader thread's ``select``: closing the last descriptor drops it from the poll set, and the
    reader sleeps out its 10 s poll timeout before it reports the close. While another
    descriptor of the same socket stays open the reader still sees the reset at once, and
    ``shutdown`` on it wakes the reader whatever the SDK did with its own.
    """
    raw = getattr(websocket, "sock", None)
    if not isinstance(raw, socket.socket):
        return None
    try:
        return raw.dup()
    except OSError:
        return None


def wake(handle: socket.socket) -> None:
    """Shut the socket down in both directions: a reader blocked on it returns at once."""
    with contextlib.suppress(OSError):
        handle.shutdown(socket.SHUT_RDWR)


def close_socket(websocket: Any) -> None:
    """Close a WebSocket's TCP socket now, waking a thread blocked reading it.

    websocket-client marks a connection closed when the *gateway* sends the close frame and then
    never closes its own socket (it is freed by the garbage collector, with a ResourceWarning).
    ``shutdown(SHUT_RDWR)`` first: ``close()`` alone does not wake a ``recv`` in another thread.
    """
    raw = getattr(websocket, "sock", None)
    if raw is None:
        return
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        websocket.shutdown()

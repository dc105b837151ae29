"""OpenTelemetry traces from the event hooks: a span per call, a child span per attempt.

The drivers report a call between ``call_started`` and ``call_ended`` and each attempt's body
between ``attempt_started`` and ``attempt_ended`` (``observe._events``), always in the task or
thread that runs the call, so the call's span and then the attempt's are made current while
they run: spans the application's own instrumentation opens inside an attempt (an HTTP client,
a WebSocket) become its children.
"""

from __future__ import annotations

import threading
from typing import Any

from ._events import PREFIX, Event
from ._metrics import _Subscriber

_ATTRIBUTE = "asr_resilience."


class OpenTelemetryTracing(_Subscriber):
    """Spans on an OpenTelemetry ``Tracer`` (default: the global provider's).

    ``asr_resilience.call`` has the scope, function, outcome and number of attempts;
    ``asr_resilience.attempt`` its number, outcome and the failure's vendor code, HTTP status
    or transport kind. A failed call or attempt has status ERROR.
    """

    def __init__(self, tracer: Any = None) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("install the extra: pip install 'asr-resilience[otel]'") from exc
        self._trace = trace
        self._context = context
        self.tracer = tracer or trace.get_tracer("asr_resilience")
        self._open: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._subscribe()

    def handle(self, event: Event) -> None:
        """Open or end the span an event stands for."""
        name, f = event.name, event.fields
        if name == PREFIX + "call_started":
            attributes = {_ATTRIBUTE + k: f[k] for k in ("scope", "function") if k in f}
            self._start((f["call"], 0), "asr_resilience.call", None, attributes)
        elif name == PREFIX + "attempt_started":
            with self._lock:
                parent = self._open.get((f["call"], 0))
            attributes = {_ATTRIBUTE + "attempt": f["attempt"]}
            self._start((f["call"], f["attempt"]), "asr_resilience.attempt", parent, attributes)
        elif name == PREFIX + "attempt_ended":
            keys = ("outcome", "error", "vendor_code", "http_status", "transport")
            self._end((f["call"], f["attempt"]), f, keys)
        elif name == PREFIX + "call_ended":
            self._end((f["call"], 0), f, ("outcome", "attempts", "duration"))

    def _start(
        self, key: tuple[int, int], name: str, parent: tuple[Any, Any] | None, attrs: Any
    ) -> None:
        """Open a span (key: (call, 0) for a call, (call, attempt) for an attempt), current."""
        trace = self._trace
        context = trace.set_span_in_context(parent[0]) if parent is not None else None
        span = self.tracer.start_span(name, context=context, attributes=attrs)
        token = self._context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._open[key] = (span, token)

    def _end(self, key: tuple[int, int], fields: Any, keys: tuple[str, ...]) -> None:
        with self._lock:
            entry = self._open.pop(key, None)
        if entry is None:
            return  # started before this backend subscribed
        span, token = entry
        self._context.detach(token)
        for k in keys:
            if fields.get(k) is not None:
                span.set_attribute(_ATTRIBUTE + k, fields[k])
        outcome = fields.get("outcome")
        if outcome not in (None, "success"):
            status = self._trace.Status(self._trace.StatusCode.ERROR, str(outcome))
            span.set_status(status)
        span.end()

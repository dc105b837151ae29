"""Observability: structlog events with redaction, and hooks for metrics and trace backends."""

from ._events import PREFIX, Event, Hook, add_hook, emit
from ._metrics import OpenTelemetryMetrics, PrometheusMetrics
from ._redact import REDACTED, redact_processor, redact_text, register_secret
from ._tracing import OpenTelemetryTracing

__all__ = [
    "PREFIX",
    "REDACTED",
    "Event",
    "Hook",
    "OpenTelemetryMetrics",
    "OpenTelemetryTracing",
    "PrometheusMetrics",
    "add_hook",
    "emit",
    "redact_processor",
    "redact_text",
    "register_secret",
]

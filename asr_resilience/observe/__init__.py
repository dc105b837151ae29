"""Observability: structlog events with redaction, and hooks for metrics backends."""

from ._events import PREFIX, Event, Hook, add_hook, emit
from ._metrics import OpenTelemetryMetrics, PrometheusMetrics
from ._redact import REDACTED, redact_processor, redact_text, register_secret

__all__ = [
    "PREFIX",
    "REDACTED",
    "Event",
    "Hook",
    "OpenTelemetryMetrics",
    "PrometheusMetrics",
    "add_hook",
    "emit",
    "redact_processor",
    "redact_text",
    "register_secret",
]

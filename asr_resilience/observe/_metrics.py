"""Metrics backends subscribed to the event hooks: Prometheus and OpenTelemetry.

Every failed attempt emits exactly one of ``retry_scheduled``, ``token_invalidated`` or
``gave_up``, so counting those events by code and action counts failed attempts. Both backends
are optional (extras ``prometheus`` and ``otel``) and imported only when constructed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._events import PREFIX, Event, add_hook

_ATTEMPT_EVENTS = {
    PREFIX + "retry_scheduled": "retry",
    PREFIX + "token_invalidated": "refresh-token",
    PREFIX + "gave_up": None,  # the action is in the event
}
_BREAKER_STATES = {
    PREFIX + "circuit_opened": "open",
    PREFIX + "circuit_closed": "closed",
    PREFIX + "circuit_half_open": "half_open",
}
DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _code(event: Event) -> str:
    code = event.fields.get("code")
    if code is not None:
        return str(code)
    transport = event.fields.get("transport")
    return f"transport:{transport}" if transport else "none"


class _Subscriber:
    """Shared plumbing: subscribe on construction, ``close()`` unsubscribes."""

    _remove: Callable[[], None]

    def _subscribe(self) -> None:
        self._remove = add_hook(self.handle)

    def close(self) -> None:
        """Stop receiving events."""
        self._remove()

    def handle(self, event: Event) -> None:
        name = event.name
        if name in _ATTEMPT_EVENTS:
            action = _ATTEMPT_EVENTS[name] or str(event.fields.get("action", ""))
            # A give-up without a failed attempt (breaker open, no slot) made no attempt.
            if name != PREFIX + "gave_up" or event.fields.get("failed_attempt"):
                self.attempt(_code(event), action)
            if name == PREFIX + "retry_scheduled":
                self.retry(float(event.fields.get("delay", 0.0)))
            elif name == PREFIX + "gave_up":
                self.gave_up(str(event.fields.get("error", "")))
        elif name == PREFIX + "token_refreshed":
            self.token_refreshed()
        elif name == PREFIX + "budget_exhausted":
            self.budget_exhausted(str(event.fields.get("scope", "")))
        elif name in _BREAKER_STATES:
            self.breaker(str(event.fields.get("scope", "")), _BREAKER_STATES[name])
        elif name == PREFIX + "concurrency_limit_changed":
            self.limit(str(event.fields.get("scope", "")), float(event.fields.get("new", 0)))

    def attempt(self, code: str, action: str) -> None: ...
    def retry(self, delay: float) -> None: ...
    def gave_up(self, error: str) -> None: ...
    def token_refreshed(self) -> None: ...
    def budget_exhausted(self, scope: str) -> None: ...
    def breaker(self, scope: str, state: str) -> None: ...
    def limit(self, scope: str, value: float) -> None: ...


class PrometheusMetrics(_Subscriber):
    """Counters, a gauge and a histogram in a ``prometheus_client`` registry."""

    def __init__(self, registry: Any = None, *, namespace: str = "asr_resilience") -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "install the extra: pip install 'asr-resilience[prometheus]'"
            ) from exc
        kw: dict[str, Any] = {"namespace": namespace}
        if registry is not None:
            kw["registry"] = registry
        self.attempts = prom.Counter(
            "failed_attempts", "Failed attempts by vendor code and action", ["code", "action"], **kw
        )
        self.retries = prom.Counter("retries", "Retries scheduled", **kw)
        self.refreshes = prom.Counter("token_refreshes", "Tokens obtained from the provider", **kw)
        self.give_ups = prom.Counter("give_ups", "Calls that ended in an error", ["error"], **kw)
        self.budget = prom.Counter(
            "retry_budget_exhausted", "Retries refused by the budget", ["scope"], **kw
        )
        self.breaker_changes = prom.Counter(
            "circuit_breaker_transitions", "Breaker state changes", ["scope", "state"], **kw
        )
        self.concurrency = prom.Gauge(
            "concurrency_limit", "Adaptive concurrency limit", ["scope"], **kw
        )
        self.delays = prom.Histogram(
            "retry_delay_seconds", "Waits before retries", buckets=DELAY_BUCKETS, **kw
        )
        self._subscribe()

    def attempt(self, code: str, action: str) -> None:
        self.attempts.labels(code=code, action=action).inc()

    def retry(self, delay: float) -> None:
        self.retries.inc()
        self.delays.observe(delay)

    def gave_up(self, error: str) -> None:
        self.give_ups.labels(error=error).inc()

    def token_refreshed(self) -> None:
        self.refreshes.inc()

    def budget_exhausted(self, scope: str) -> None:
        self.budget.labels(scope=scope).inc()

    def breaker(self, scope: str, state: str) -> None:
        self.breaker_changes.labels(scope=scope, state=state).inc()

    def limit(self, scope: str, value: float) -> None:
        self.concurrency.labels(scope=scope).set(value)


class OpenTelemetryMetrics(_Subscriber):
    """The same instruments on an OpenTelemetry ``Meter`` (default: the global provider's)."""

    def __init__(self, meter: Any = None) -> None:
        try:
            from opentelemetry import metrics as otel
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("install the extra: pip install 'asr-resilience[otel]'") from exc
        self.meter = meter or otel.get_meter("asr_resilience")
        m = self.meter
        self.attempts = m.create_counter("asr_resilience.failed_attempts", unit="1")
        self.retries = m.create_counter("asr_resilience.retries", unit="1")
        self.refreshes = m.create_counter("asr_resilience.token_refreshes", unit="1")
        self.give_ups = m.create_counter("asr_resilience.give_ups", unit="1")
        self.budget = m.create_counter("asr_resilience.retry_budget_exhausted", unit="1")
        self.breaker_changes = m.create_counter("asr_resilience.circuit_breaker_transitions")
        self.delays = m.create_histogram("asr_resilience.retry_delay", unit="s")
        self._limits: dict[str, float] = {}
        m.create_observable_gauge(
            "asr_resilience.concurrency_limit", callbacks=[self._observe_limits]
        )
        self._subscribe()

    def _observe_limits(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(v, {"scope": s}) for s, v in self._limits.items()]

    def attempt(self, code: str, action: str) -> None:
        self.attempts.add(1, {"code": code, "action": action})

    def retry(self, delay: float) -> None:
        self.retries.add(1)
        self.delays.record(delay)

    def gave_up(self, error: str) -> None:
        self.give_ups.add(1, {"error": error})

    def token_refreshed(self) -> None:
        self.refreshes.add(1)

    def budget_exhausted(self, scope: str) -> None:
        self.budget.add(1, {"scope": scope})

    def breaker(self, scope: str, state: str) -> None:
        self.breaker_changes.add(1, {"scope": scope, "state": state})

    def limit(self, scope: str, value: float) -> None:
        self._limits[scope] = value

"""Metrics and traces from the event hooks: Prometheus and OpenTelemetry.

Every failed attempt emits exactly one of ``retry_scheduled``, ``token_invalidated`` or
``gave_up``, so counting those events counts failed attempts; the failure's vendor code, HTTP
status and transport kind are separate labels (empty when absent). A call's end
(``call_ended``, emitted while a hook is subscribed) gives ``calls{scope,outcome}`` and the
call duration. The first token a manager obtains is a fetch, not a refresh, and is not counted.
The backends are optional (extras ``prometheus`` and ``otel``) and imported only when
constructed; ``close()`` unsubscribes and (Prometheus) unregisters the collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_FAILURE_LABELS = ("vendor_code", "http_status", "transport")


def _text(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    return "" if value is None else str(value)


class _Subscriber:
    """Shared plumbing: subscribe on construction, ``close()`` unsubscribes."""

    _remove: Callable[[], None] | None = None

    def _subscribe(self) -> None:
        self._remove = add_hook(self.handle)

    def close(self) -> None:
        """Stop receiving events (a second close does nothing)."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def handle(self, event: Event) -> None:
        """Turn one event into metric updates."""
        name, f = event.name, event.fields
        scope = _text(f, "scope")
        if name in _ATTEMPT_EVENTS:
            action = _ATTEMPT_EVENTS[name] or _text(f, "action")
            # A give-up without a failed attempt (breaker open, no slot) made no attempt.
            if name != PREFIX + "gave_up" or f.get("failed_attempt"):
                failure = {key: _text(f, key) for key in _FAILURE_LABELS}
                self.attempt(scope, action, failure)
            if name == PREFIX + "retry_scheduled":
                self.retry(scope, float(f.get("delay", 0.0)))
            elif name == PREFIX + "gave_up":
                self.gave_up(scope, _text(f, "error"))
        elif name == PREFIX + "call_ended":
            self.call(scope, _text(f, "outcome"), float(f.get("duration", 0.0)))
        elif name == PREFIX + "token_refreshed":
            if not f.get("initial"):
                self.token_refreshed()
        elif name == PREFIX + "budget_exhausted":
            self.budget_exhausted(scope)
        elif name in _BREAKER_STATES:
            self.breaker(scope, _BREAKER_STATES[name])
        elif name == PREFIX + "concurrency_limit_changed":
            self.limit(scope, float(f.get("new", 0)))

    def call(self, scope: str, outcome: str, duration: float) -> None: ...
    def attempt(self, scope: str, action: str, failure: dict[str, str]) -> None: ...
    def retry(self, scope: str, delay: float) -> None: ...
    def gave_up(self, scope: str, error: str) -> None: ...
    def token_refreshed(self) -> None: ...
    def budget_exhausted(self, scope: str) -> None: ...
    def breaker(self, scope: str, state: str) -> None: ...
    def limit(self, scope: str, value: float) -> None: ...


class PrometheusMetrics(_Subscriber):
    """Counters, a gauge and histograms in a ``prometheus_client`` registry (default: the
    global one); ``close()`` unregisters them, so a new instance can register again."""

    def __init__(self, registry: Any = None, *, namespace: str = "asr_resilience") -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "install the extra: pip install 'asr-resilience[prometheus]'"
            ) from exc
        self.registry = prom.REGISTRY if registry is None else registry
        kw: dict[str, Any] = {"namespace": namespace, "registry": None}
        failed = ["scope", "action", *_FAILURE_LABELS]
        self.calls = prom.Counter("calls", "Calls by scope and outcome", ["scope", "outcome"], **kw)
        self.durations = prom.Histogram(
            "call_duration_seconds",
            "Call durations, waits and retries included",
            ["scope", "outcome"],
            buckets=DURATION_BUCKETS,
            **kw,
        )
        self.attempts = prom.Counter(
            "failed_attempts",
            "Failed attempts by action, vendor code, HTTP status and transport failure",
            failed,
            **kw,
        )
        self.retries = prom.Counter("retries", "Retries scheduled", ["scope"], **kw)
        self.refreshes = prom.Counter(
            "token_refreshes", "Tokens obtained again from the provider (not the first)", **kw
        )
        self.give_ups = prom.Counter(
            "give_ups", "Calls that ended in an error", ["scope", "error"], **kw
        )
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
            "retry_delay_seconds", "Waits before retries", ["scope"], buckets=DELAY_BUCKETS, **kw
        )
        self._collectors = [
            self.calls,
            self.durations,
            self.attempts,
            self.retries,
            self.refreshes,
            self.give_ups,
            self.budget,
            self.breaker_changes,
            self.concurrency,
            self.delays,
        ]
        registered: list[Any] = []
        try:
            for collector in self._collectors:
                self.registry.register(collector)
                registered.append(collector)
        except Exception:
            for collector in registered:  # all or nothing: a failed construction leaves none
                self.registry.unregister(collector)
            raise
        self._subscribe()

    def close(self) -> None:
        """Unsubscribe and unregister the collectors (a second close does nothing)."""
        if self._remove is None:
            return
        super().close()
        for collector in self._collectors:
            self.registry.unregister(collector)

    def call(self, scope: str, outcome: str, duration: float) -> None:
        self.calls.labels(scope=scope, outcome=outcome).inc()
        self.durations.labels(scope=scope, outcome=outcome).observe(duration)

    def attempt(self, scope: str, action: str, failure: dict[str, str]) -> None:
        self.attempts.labels(scope=scope, action=action, **failure).inc()

    def retry(self, scope: str, delay: float) -> None:
        self.retries.labels(scope=scope).inc()
        self.delays.labels(scope=scope).observe(delay)

    def gave_up(self, scope: str, error: str) -> None:
        self.give_ups.labels(scope=scope, error=error).inc()

    def token_refreshed(self) -> None:
        self.refreshes.inc()

    def budget_exhausted(self, scope: str) -> None:
        self.budget.labels(scope=scope).inc()

    def breaker(self, scope: str, state: str) -> None:
        self.breaker_changes.labels(scope=scope, state=state).inc()

    def limit(self, scope: str, value: float) -> None:
        self.concurrency.labels(scope=scope).set(value)


class OpenTelemetryMetrics(_Subscriber):
    """The same instruments on an OpenTelemetry ``Meter`` (default: the global provider's).

    Attributes absent from a failure (no HTTP status, no transport failure) are left out.
    """

    def __init__(self, meter: Any = None) -> None:
        try:
            from opentelemetry import metrics as otel
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("install the extra: pip install 'asr-resilience[otel]'") from exc
        self.meter = meter or otel.get_meter("asr_resilience")
        m = self.meter
        self.calls = m.create_counter(
            "asr_resilience.calls", unit="{call}", description="Calls by scope and outcome"
        )
        self.durations = m.create_histogram(
            "asr_resilience.call.duration",
            unit="s",
            description="Call durations, waits and retries included",
        )
        self.attempts = m.create_counter(
            "asr_resilience.failed_attempts",
            unit="{attempt}",
            description="Failed attempts by action, vendor code, HTTP status and transport failure",
        )
        self.retries = m.create_counter(
            "asr_resilience.retries", unit="{retry}", description="Retries scheduled"
        )
        self.refreshes = m.create_counter(
            "asr_resilience.token_refreshes",
            unit="{token}",
            description="Tokens obtained again from the provider (not the first)",
        )
        self.give_ups = m.create_counter(
            "asr_resilience.give_ups", unit="{call}", description="Calls that ended in an error"
        )
        self.budget = m.create_counter(
            "asr_resilience.retry_budget_exhausted",
            unit="{retry}",
            description="Retries refused by the budget",
        )
        self.breaker_changes = m.create_counter(
            "asr_resilience.circuit_breaker_transitions",
            unit="{transition}",
            description="Breaker state changes",
        )
        self.delays = m.create_histogram(
            "asr_resilience.retry_delay", unit="s", description="Waits before retries"
        )
        self._limits: dict[str, float] = {}
        m.create_observable_gauge(
            "asr_resilience.concurrency_limit",
            callbacks=[self._observe_limits],
            unit="{call}",
            description="Adaptive concurrency limit",
        )
        self._subscribe()

    def _observe_limits(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(v, {"scope": s}) for s, v in self._limits.items()]

    def call(self, scope: str, outcome: str, duration: float) -> None:
        self.calls.add(1, {"scope": scope, "outcome": outcome})
        self.durations.record(duration, {"scope": scope, "outcome": outcome})

    def attempt(self, scope: str, action: str, failure: dict[str, str]) -> None:
        attributes = {"scope": scope, "action": action}
        attributes.update((k, v) for k, v in failure.items() if v)
        self.attempts.add(1, attributes)

    def retry(self, scope: str, delay: float) -> None:
        self.retries.add(1, {"scope": scope})
        self.delays.record(delay, {"scope": scope})

    def gave_up(self, scope: str, error: str) -> None:
        self.give_ups.add(1, {"scope": scope, "error": error})

    def token_refreshed(self) -> None:
        self.refreshes.add(1)

    def budget_exhausted(self, scope: str) -> None:
        self.budget.add(1, {"scope": scope})

    def breaker(self, scope: str, state: str) -> None:
        self.breaker_changes.add(1, {"scope": scope, "state": state})

    def limit(self, scope: str, value: float) -> None:
        self._limits[scope] = value

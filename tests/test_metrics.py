"""Metrics hooks: Prometheus registry and OpenTelemetry in-memory reader after a run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import asr_resilience as ar
from asr_resilience.observe import (
    OpenTelemetryMetrics,
    OpenTelemetryTracing,
    PrometheusMetrics,
)
from asr_resilience.observe import _events as observe_events
from asr_resilience.testing import no_wait
from asr_resilience.tokens import TokenManager

from .helpers import CountingProvider, write_policy


def run_workload(tmp_path: Path) -> None:
    """A small run: retries, a refresh, a give-up, a budget refusal, a breaker that opens."""
    policy = write_policy(
        tmp_path,
        "retry_budget: {ratio: 0.0, min_per_second: 0.2, window: 10s}\n"
        "circuit_breaker: {failure_ratio: 0.5, min_calls: 5, window: 30s, open_for: 60s}\n"
        "concurrency: {adaptive: true, initial: 2, min: 1, max: 8}\n",
    )
    tokens = TokenManager(CountingProvider())
    outcomes: list[Any] = [
        ar.NlsError(40000001, "The token 'x' has expired"),
        ar.NlsError(50000000, "GRPC_ERROR:Grpc error!"),
        "ok",
    ]

    @ar.resilient(policy, tokens=tokens, scope="metrics")
    async def call(*, token: str = "") -> str:
        outcome = outcomes.pop(0) if outcomes else ar.NlsError(50000001, "GRPC_ERROR:Grpc error!")
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    async def main() -> None:
        assert await call() == "ok"
        for _ in range(7):
            with pytest.raises(ar.ResilienceError):
                await call()

    with no_wait():
        asyncio.run(main())


@pytest.fixture
def registry() -> Iterator[prometheus_client.CollectorRegistry]:
    """A private Prometheus registry and a subscribed backend, unsubscribed afterwards."""
    reg = prometheus_client.CollectorRegistry()
    backend = PrometheusMetrics(reg)
    yield reg
    backend.close()


def test_prometheus_counts_a_run(
    registry: prometheus_client.CollectorRegistry, tmp_path: Path
) -> None:
    """Calls by outcome, failed attempts by label, retries, refreshes, give-ups, breaker, budget."""
    run_workload(tmp_path)

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    failed = "asr_resilience_failed_attempts_total"
    none = {"http_status": "", "transport": "", "scope": "metrics"}
    assert value(failed, vendor_code="40000001", action="refresh-token", **none) == 1
    assert value(failed, vendor_code="50000000", action="retry", **none) == 1
    assert value("asr_resilience_retries_total", scope="metrics") >= 1
    assert value("asr_resilience_token_refreshes_total") == 1  # the first fetch is not one
    assert value(
        "asr_resilience_give_ups_total", scope="metrics", error="RetryBudgetExhaustedError"
    )
    assert value("asr_resilience_give_ups_total", scope="metrics", error="CircuitOpenError") >= 1
    assert value("asr_resilience_retry_budget_exhausted_total", scope="metrics") >= 1
    assert (
        value("asr_resilience_circuit_breaker_transitions_total", scope="metrics", state="open")
        == 1
    )
    assert value("asr_resilience_retry_delay_seconds_count", scope="metrics") == value(
        "asr_resilience_retries_total", scope="metrics"
    )
    assert value("asr_resilience_calls_total", scope="metrics", outcome="success") == 1
    ended = sum(
        s.value
        for m in registry.collect()
        if m.name == "asr_resilience_calls"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert ended == 8
    assert (
        value("asr_resilience_call_duration_seconds_count", scope="metrics", outcome="success") == 1
    )


def test_prometheus_keeps_code_status_and_transport_apart(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    """A vendor code, an HTTP status and a transport failure land in three separate labels."""
    request = httpx.Request("POST", "https://nls.example/stream/v1/asr")
    outcomes: list[Exception] = [
        ar.NlsError(40000005, "Too many requests"),
        httpx.HTTPStatusError("503", request=request, response=httpx.Response(503)),
        ar.TransportError("abnormal_close", "1006"),
    ]

    @ar.resilient("default", scope="labels")
    def call() -> str:
        if outcomes:
            raise outcomes.pop(0)
        return "ok"

    with no_wait():
        assert call() == "ok"
    samples = {
        (s.labels["vendor_code"], s.labels["http_status"], s.labels["transport"])
        for m in registry.collect()
        if m.name == "asr_resilience_failed_attempts"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["scope"] == "labels"
    }
    assert samples == {("40000005", "", ""), ("", "503", ""), ("", "", "abnormal_close")}


def test_prometheus_default_registry_create_close_create() -> None:
    """close() unregisters: a second backend on the default registry registers again."""
    first = PrometheusMetrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusMetrics()
    first.close()
    first.close()  # a second close does nothing
    with PrometheusMetrics() as second:
        assert second.registry is prometheus_client.REGISTRY
    assert prometheus_client.REGISTRY.get_sample_value("asr_resilience_retries_total") is None


def _otel_run(tmp_path: Path) -> dict[str, Any]:
    """The workload through an OpenTelemetry in-memory reader: metric name -> metric."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with OpenTelemetryMetrics(provider.get_meter("test")):
        run_workload(tmp_path)
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_opentelemetry_counts_a_run(tmp_path: Path) -> None:
    """The same run seen through an OpenTelemetry in-memory reader."""
    metrics = _otel_run(tmp_path)

    def points(name: str) -> list[Any]:
        return list(metrics[name].data.data_points)

    assert sum(p.value for p in points("asr_resilience.token_refreshes")) == 1
    attempts = {
        (p.attributes.get("vendor_code"), p.attributes["action"], p.attributes["scope"]): p.value
        for p in points("asr_resilience.failed_attempts")
    }
    assert attempts[("40000001", "refresh-token", "metrics")] == 1
    assert all("http_status" not in p.attributes for p in points("asr_resilience.failed_attempts"))
    assert sum(p.value for p in points("asr_resilience.give_ups")) == 7
    calls = {p.attributes["outcome"]: p.value for p in points("asr_resilience.calls")}
    assert (calls["success"], sum(calls.values())) == (1, 8)
    assert sum(p.count for p in points("asr_resilience.call.duration")) == 8
    assert "asr_resilience.retry_delay" in metrics
    states = {p.attributes["state"] for p in points("asr_resilience.circuit_breaker_transitions")}
    assert "open" in states


def test_opentelemetry_instruments_have_descriptions_and_units(tmp_path: Path) -> None:
    """Every instrument the run reports carries a description and a unit."""
    metrics = _otel_run(tmp_path)
    assert {m.unit for m in metrics.values()} >= {"s", "{call}", "{attempt}"}
    assert all(m.description and m.unit for m in metrics.values())
    assert metrics["asr_resilience.call.duration"].unit == "s"


def observed() -> bool:
    """The flag the drivers check before reporting calls and attempts."""
    return observe_events.observed


def attributes(span: Any) -> dict[str, Any]:
    """A finished span's attributes."""
    return dict(span.attributes or {})


def test_call_events_only_while_observed() -> None:
    """call_started/attempt_*/call_ended reach hooks only while one is subscribed (opt-in)."""
    assert not observed()
    seen: list[ar.observe.Event] = []

    @ar.resilient("default", scope="observed")
    def call() -> str:
        return "ok"

    assert call() == "ok"
    remove = ar.observe.add_hook(seen.append)
    try:
        assert observed()
        assert call() == "ok"
    finally:
        remove()
    assert not observed()
    assert call() == "ok"
    names = [e.name.removeprefix("asr_resilience.") for e in seen]
    assert names == ["call_started", "attempt_started", "attempt_ended", "call_ended"]
    ended = seen[-1].fields
    assert (ended["scope"], ended["outcome"], ended["attempts"]) == ("observed", "success", 1)
    assert ended["duration"] >= 0
    assert len({e.fields["call"] for e in seen}) == 1


def test_spans_per_call_and_attempt() -> None:
    """A call's span has one child span per attempt; failed ones carry the code and ERROR."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    outcomes: list[Exception] = [ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")]

    @ar.resilient("default", scope="traced")
    async def call() -> str:
        inner = trace.get_current_span()  # the application's spans nest under the attempt
        assert inner.get_span_context().is_valid
        if outcomes:
            raise outcomes.pop(0)
        return "ok"

    with OpenTelemetryTracing(provider.get_tracer("test")), no_wait():
        assert asyncio.run(call()) == "ok"
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "asr_resilience.call"]
    attempts = [s for s in spans if s.name == "asr_resilience.attempt"]
    assert (len(calls), len(attempts)) == (1, 2)
    parent = calls[0].context.span_id
    assert all(a.parent is not None and a.parent.span_id == parent for a in attempts)
    first, second = sorted(attempts, key=lambda s: attributes(s)["asr_resilience.attempt"])
    assert attributes(first)["asr_resilience.vendor_code"] == 50000000
    assert first.status.status_code is StatusCode.ERROR
    assert attributes(second)["asr_resilience.outcome"] == "success"
    assert attributes(calls[0])["asr_resilience.scope"] == "traced"
    assert attributes(calls[0])["asr_resilience.attempts"] == 2
    assert trace.get_current_span() is trace.INVALID_SPAN  # every context was detached


def test_span_of_a_failed_sync_call() -> None:
    """A sync call that gives up ends its span with ERROR and the error's name as outcome."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @ar.resilient("default", scope="traced-sync")
    def call() -> str:
        raise ar.NlsError(40000003, "bad parameter")

    with OpenTelemetryTracing(provider.get_tracer("test")), pytest.raises(ar.FixClientError):
        call()
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "asr_resilience.call"]
    assert attributes(span)["asr_resilience.outcome"] == "FixClientError"
    assert span.status.status_code is StatusCode.ERROR

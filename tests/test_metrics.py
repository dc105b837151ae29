"""Metrics hooks: Prometheus registry and OpenTelemetry in-memory reader after a run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import asr_resilience as ar
from asr_resilience.observe import OpenTelemetryMetrics, PrometheusMetrics
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
    """Failed attempts by code/action, retries, refreshes, give-ups, breaker and budget."""
    run_workload(tmp_path)

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    assert (
        value("asr_resilience_failed_attempts_total", code="40000001", action="refresh-token") == 1
    )
    assert value("asr_resilience_failed_attempts_total", code="50000000", action="retry") == 1
    assert value("asr_resilience_retries_total") >= 1
    assert value("asr_resilience_token_refreshes_total") == 2
    assert value("asr_resilience_give_ups_total", error="RetryBudgetExhaustedError") >= 1
    assert value("asr_resilience_give_ups_total", error="CircuitOpenError") >= 1
    assert value("asr_resilience_retry_budget_exhausted_total", scope="metrics") >= 1
    assert (
        value("asr_resilience_circuit_breaker_transitions_total", scope="metrics", state="open")
        == 1
    )
    assert value("asr_resilience_retry_delay_seconds_count") == value(
        "asr_resilience_retries_total"
    )


def test_opentelemetry_counts_a_run(tmp_path: Path) -> None:
    """The same run seen through an OpenTelemetry in-memory reader."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    backend = OpenTelemetryMetrics(provider.get_meter("test"))
    try:
        run_workload(tmp_path)
    finally:
        backend.close()
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    refreshes = points["asr_resilience.token_refreshes"]
    assert sum(p.value for p in refreshes) == 2
    attempts = {
        (p.attributes["code"], p.attributes["action"]): p.value
        for p in points["asr_resilience.failed_attempts"]
    }
    assert attempts[("40000001", "refresh-token")] == 1
    assert sum(p.value for p in points["asr_resilience.give_ups"]) == 7
    assert "asr_resilience.retry_delay" in points
    states = {p.attributes["state"] for p in points["asr_resilience.circuit_breaker_transitions"]}
    assert "open" in states

"""Where events go: the standard logger ``asr_resilience``, or the application's structlog."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
import structlog.testing

import asr_resilience as ar
from asr_resilience._clock import Clock
from asr_resilience.observe import Event, add_hook, emit, register_secret
from asr_resilience.observe._events import repeats
from asr_resilience.testing import no_wait


@pytest.fixture(autouse=True)
def _unconfigured() -> Iterator[None]:
    """structlog as an application that never configured it; our logger's level untouched."""
    structlog.reset_defaults()
    logger = logging.getLogger("asr_resilience")
    level = logger.level
    yield
    logger.setLevel(level)
    structlog.reset_defaults()


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """The repeated-warnings windows read this clock."""
    time = FakeTime()
    previous = repeats.clock
    repeats.clock = Clock(monotonic=time)
    yield time
    repeats.clock = previous


def flaky(scope: str) -> Callable[[], str]:
    """A function that fails once with a server error, then succeeds."""
    outcomes = [ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")]

    @ar.resilient("default", scope=scope)
    def call() -> str:
        if outcomes:
            raise outcomes.pop(0)
        return "ok"

    return call


def run_flaky(scope: str = "logging") -> None:
    """One call with one retry."""
    with no_wait():
        assert flaky(scope)() == "ok"


def test_nothing_printed_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Unconfigured structlog and logging: a retried call prints nothing, on stdout or stderr."""
    run_flaky()
    emit("something_odd", level="warning", scope="logging")
    assert capsys.readouterr() == ("", "")


def test_events_are_records_of_the_standard_logger(caplog: pytest.LogCaptureFixture) -> None:
    """Each event is a record of ``asr_resilience`` with the name and fields attached."""
    caplog.set_level(logging.INFO, logger="asr_resilience")
    run_flaky()
    (record,) = [r for r in caplog.records if "retry_scheduled" in r.getMessage()]
    assert record.name == "asr_resilience"
    assert record.levelno == logging.INFO
    assert record.event == "asr_resilience.retry_scheduled"  # type: ignore[attr-defined]
    assert record.fields["scope"] == "logging"  # type: ignore[attr-defined]
    assert record.fields["vendor_code"] == 50000000  # type: ignore[attr-defined]
    assert record.getMessage().startswith("asr_resilience.retry_scheduled function=")
    assert "scope=logging" in record.getMessage()


def test_standard_level_governs(caplog: pytest.LogCaptureFixture) -> None:
    """setLevel on ``asr_resilience`` decides: WARNING drops info, DEBUG adds debug events."""
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("asr_resilience")
    logger.setLevel(logging.WARNING)
    run_flaky("quiet")
    emit("loud", level="warning", scope="quiet")
    assert [r.event for r in caplog.records] == ["asr_resilience.loud"]  # type: ignore[attr-defined]
    caplog.clear()
    logger.setLevel(logging.DEBUG)
    emit("detail", level="debug", scope="quiet")
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """Known secrets and secret-named fields never reach a record's message or fields."""
    caplog.set_level(logging.INFO, logger="asr_resilience")
    register_secret("s3cr3t-t0ken-value")
    emit("redacted", detail="sent s3cr3t-t0ken-value", access_key_secret="abc")
    (record,) = caplog.records
    assert "s3cr3t" not in record.getMessage()
    assert "abc" not in record.getMessage()
    assert record.fields["access_key_secret"] == ar.observe.REDACTED  # type: ignore[attr-defined]


def test_configured_structlog_receives_the_events() -> None:
    """An application that configured structlog gets the events through its own pipeline."""
    with structlog.testing.capture_logs() as events:
        run_flaky("structured")
    scheduled = [e for e in events if e["event"] == "asr_resilience.retry_scheduled"]
    assert scheduled[0]["scope"] == "structured"
    assert scheduled[0]["log_level"] == "info"


def test_configured_structlog_still_honours_a_set_level() -> None:
    """A level set on ``asr_resilience`` filters the events before the application's pipeline."""
    logging.getLogger("asr_resilience").setLevel(logging.ERROR)
    with structlog.testing.capture_logs() as events:
        run_flaky("structured-quiet")
        emit("warned", level="warning", scope="structured-quiet")
        emit("failed", level="error", scope="structured-quiet")
    assert [e["event"] for e in events] == ["asr_resilience.failed"]


def test_repeated_warnings_are_summarised(
    caplog: pytest.LogCaptureFixture, fake_time: FakeTime
) -> None:
    """55 breaker refusals on one scope: one logged, then one summary of 54 after the interval."""
    caplog.set_level(logging.INFO, logger="asr_resilience")
    seen: list[Event] = []
    remove = add_hook(seen.append)
    try:
        for _ in range(55):
            emit("gave_up", level="warning", scope="outage", error="CircuitOpenError")
        emit("gave_up", level="warning", scope="other", error="CircuitOpenError")
        fake_time.now += repeats.interval
        emit("circuit_half_open", scope="outage")
    finally:
        remove()
    assert len([e for e in seen if e.name == "asr_resilience.gave_up"]) == 56  # hooks see all
    logged = [(r.event, r.fields.get("scope")) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [
        ("asr_resilience.gave_up", "outage"),
        ("asr_resilience.gave_up", "other"),
        ("asr_resilience.warnings_suppressed", "outage"),
        ("asr_resilience.circuit_half_open", "outage"),
    ]
    summary = caplog.records[2].fields  # type: ignore[attr-defined]
    assert (summary["suppressed"], summary["count"], summary["error"]) == (
        "asr_resilience.gave_up",
        54,
        "CircuitOpenError",
    )
    assert summary["seconds"] == repeats.interval


def test_a_warning_after_the_window_is_logged_again(
    caplog: pytest.LogCaptureFixture, fake_time: FakeTime
) -> None:
    """Once its window has passed, the same kind of warning is logged again (no summary of 0)."""
    caplog.set_level(logging.WARNING, logger="asr_resilience")
    emit("budget_exhausted", level="warning", scope="b")
    fake_time.now += repeats.interval + 1
    emit("budget_exhausted", level="warning", scope="b")
    assert [r.event for r in caplog.records] == ["asr_resilience.budget_exhausted"] * 2  # type: ignore[attr-defined]


def test_breaker_refusals_of_a_real_outage(caplog: pytest.LogCaptureFixture) -> None:
    """A breaker that opens and refuses calls logs its refusals once, not once per call."""
    caplog.set_level(logging.WARNING, logger="asr_resilience")

    @ar.resilient("default", scope="real-outage")
    def call() -> str:
        raise ar.NlsError(50000000, "GRPC_ERROR:Grpc error!")

    with no_wait():
        for _ in range(40):
            with pytest.raises(ar.ResilienceError):
                call()
    refusals = [
        r
        for r in caplog.records
        if r.fields.get("error") == "CircuitOpenError"  # type: ignore[attr-defined]
    ]
    assert len(refusals) == 1

"""Redaction of tokens and secrets, the structlog processor, and event hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import CapturingLogger

from asr_resilience.observe import (
    PREFIX,
    REDACTED,
    Event,
    add_hook,
    emit,
    redact_processor,
    redact_text,
    register_secret,
)
from asr_resilience.observe._redact import redact_value

# --- redact_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Gateway:ACCESS_DENIED:The token 'abc123' has expired!",
            f"Gateway:ACCESS_DENIED:The token '{REDACTED}' has expired!",
        ),
        (
            "Meta:ACCESS_DENIED:The token ‘abc123’ is invalid!",
            f"Meta:ACCESS_DENIED:The token ‘{REDACTED}’ is invalid!",
        ),
        (
            'Gateway:ACCESS_DENIED:The token "abc123" is invalid!',
            f'Gateway:ACCESS_DENIED:The token "{REDACTED}" is invalid!',
        ),
        (
            "wss://nls-gateway-cn-shanghai.aliyuncs.com/ws/v1?token=abc123&appkey=k1",
            f"wss://nls-gateway-cn-shanghai.aliyuncs.com/ws/v1?token={REDACTED}&appkey=k1",
        ),
        (
            "https://nls-gateway.aliyuncs.com/stream/v1/asr?appkey=k1&token=abc123",
            f"https://nls-gateway.aliyuncs.com/stream/v1/asr?appkey=k1&token={REDACTED}",
        ),
        ("X-NLS-Token: abc123", f"X-NLS-Token: {REDACTED}"),
        (
            "headers: x-nls-token:abc123, Content-Type",
            f"headers: x-nls-token:{REDACTED}, Content-Type",
        ),
        (
            "AccessKeyId=LTAI5t&AccessKeySecret=s3cr3tValue&Action=CreateToken",
            f"AccessKeyId=LTAI5t&AccessKeySecret={REDACTED}&Action=CreateToken",
        ),
    ],
)
def test_redact_text_scrubs_tokens(text: str, expected: str) -> None:
    """Token values in vendor messages, URL queries, headers and AccessKeySecret are replaced."""
    out = redact_text(text)
    assert out == expected
    assert "abc123" not in out
    assert "s3cr3tValue" not in out


@pytest.mark.parametrize(
    "text",
    [
        "token refreshed",
        "Too many requests!",
        "Gateway:TOO_MANY_REQUESTS:Too many requests!",
        "the token manager refreshed the token after 40000001",
        "tokens: 3, max_refreshes: 1",
        "",
        "识别成功",
    ],
)
def test_redact_text_leaves_ordinary_text(text: str) -> None:
    """Text that carries no secret comes back unchanged."""
    assert redact_text(text) == text


def test_redact_text_json_token_field() -> None:
    """A JSON text with a "token" field loses the token's value, not the text around it."""
    out = redact_text('{"appkey": "k1", "token": "abc123"}')
    assert "abc123" not in out
    assert '"appkey": "k1"' in out


def test_register_secret_scrubbed_anywhere() -> None:
    """A registered secret is replaced wherever it appears in a string, however often."""
    secret = "registered-secret-7f3a9c"
    assert redact_text(f"x{secret}y") == f"x{secret}y"
    register_secret(secret)
    assert redact_text(f"x{secret}y and {secret}") == f"x{REDACTED}y and {REDACTED}"
    assert redact_text(f"connect failed: Bearer {secret}") == f"connect failed: Bearer {REDACTED}"


def test_register_secret_twice_is_harmless() -> None:
    """Registering the same secret again still scrubs it once per occurrence."""
    secret = "registered-twice-1b2c3d"
    register_secret(secret)
    register_secret(secret)
    assert redact_text(secret) == REDACTED


def test_register_secret_ignores_short_values() -> None:
    """Values too short to scrub safely are not registered (ordinary text stays intact)."""
    register_secret("ok")
    register_secret("abcde")
    assert redact_text("ok, abcde is fine") == "ok, abcde is fine"


# --- redact_value -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["token", "secret", "access_key_secret", "authorization", "Authorization", "x_nls_token"],
)
def test_redact_value_secret_names(key: str) -> None:
    """A field with a secret-sounding name is replaced wholesale, whatever its type."""
    assert redact_value(key, "plain value") == REDACTED
    assert redact_value(key, 12345) == REDACTED
    assert redact_value(key, {"nested": "x"}) == REDACTED


@pytest.mark.parametrize("key", ["token", "secret"])
def test_redact_value_empty_secret_kept(key: str) -> None:
    """An empty or missing secret stays as it is (nothing to hide)."""
    assert redact_value(key, "") == ""
    assert redact_value(key, None) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("token_fingerprint", "tok:1a2b3c4d"), ("token_refreshes", 1), ("max_refreshes", 2)],
)
def test_redact_value_safe_names(key: str, value: Any) -> None:
    """token_fingerprint and the refresh counters are logged as they are."""
    assert redact_value(key, value) == value


def test_redact_value_scrubs_text_of_other_fields() -> None:
    """Other string fields are scrubbed with redact_text; other values pass through."""
    message = "Gateway:ACCESS_DENIED:The token 'abc123' has expired!"
    assert redact_value("message", message) == redact_text(message)
    assert "abc123" not in redact_value("message", message)
    assert redact_value("code", 40000001) == 40000001
    assert redact_value("message", "Too many requests!") == "Too many requests!"


# --- redact_processor in a structlog pipeline -------------------------------------------------


def test_redact_processor_in_structlog_pipeline() -> None:
    """redact_processor scrubs every field of an event before the logger sees it."""
    capture = CapturingLogger()
    log = structlog.wrap_logger(capture, processors=[redact_processor])
    log.info(
        "connect failed: token=abc123",
        token="abc123",
        access_key_secret="s3cr3tValue",
        token_fingerprint="tok:1a2b3c4d",
        status_text="Gateway:ACCESS_DENIED:The token 'abc123' has expired!",
        attempt=2,
    )
    assert len(capture.calls) == 1
    call = capture.calls[0]
    assert call.method_name == "info"
    assert call.kwargs == {
        "event": f"connect failed: token={REDACTED}",
        "token": REDACTED,
        "access_key_secret": REDACTED,
        "token_fingerprint": "tok:1a2b3c4d",
        "status_text": f"Gateway:ACCESS_DENIED:The token '{REDACTED}' has expired!",
        "attempt": 2,
    }
    assert "abc123" not in repr(call)
    assert "s3cr3tValue" not in repr(call)


def test_redact_processor_with_bound_values() -> None:
    """Values bound to the logger go through the processor too."""
    capture = CapturingLogger()
    log = structlog.wrap_logger(capture, processors=[redact_processor]).bind(authorization="x")
    log.warning("hello")
    assert capture.calls[0].kwargs == {"authorization": REDACTED, "event": "hello"}


# --- emit and hooks ---------------------------------------------------------------------------


@pytest.fixture
def removers() -> Iterator[list[Any]]:
    """Hook removers registered by a test, all called afterwards."""
    registered: list[Any] = []
    yield registered
    for remove in registered:
        remove()


def test_emit_calls_hooks_with_redacted_fields(removers: list[Any]) -> None:
    """A hook receives the namespaced event name and redacted fields; None fields are dropped."""
    seen: list[Event] = []
    removers.append(add_hook(seen.append))
    with structlog.testing.capture_logs() as logs:
        emit(
            "retry_scheduled",
            token="abc123",
            token_fingerprint="tok:1a2b3c4d",
            message="The token 'abc123' has expired!",
            code=40000001,
            task_id=None,
        )
    assert len(seen) == 1
    event = seen[0]
    assert event.name == PREFIX + "retry_scheduled" == "asr_resilience.retry_scheduled"
    assert dict(event.fields) == {
        "token": REDACTED,
        "token_fingerprint": "tok:1a2b3c4d",
        "message": f"The token '{REDACTED}' has expired!",
        "code": 40000001,
    }
    assert logs == [
        {
            "event": "asr_resilience.retry_scheduled",
            "log_level": "info",
            "token": REDACTED,
            "token_fingerprint": "tok:1a2b3c4d",
            "message": f"The token '{REDACTED}' has expired!",
            "code": 40000001,
        }
    ]


def test_emit_hook_fields_are_read_only(removers: list[Any]) -> None:
    """A hook cannot change the fields other hooks see."""
    seen: list[Event] = []

    def meddle(event: Event) -> None:
        event.fields["code"] = 0  # type: ignore[index]

    removers.append(add_hook(meddle))
    removers.append(add_hook(seen.append))
    with structlog.testing.capture_logs():
        emit("decided", code=40000005)
    assert dict(seen[0].fields) == {"code": 40000005}


def test_emit_broken_hook_does_not_raise(removers: list[Any]) -> None:
    """A hook that raises does not break emit; later hooks still get the event."""
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("metrics backend down")

    removers.append(add_hook(broken))
    removers.append(add_hook(seen.append))
    with structlog.testing.capture_logs() as logs:
        emit("call_succeeded", attempts=1)
    assert [e.name for e in seen] == ["asr_resilience.call_succeeded"]
    assert [entry["event"] for entry in logs] == [
        "asr_resilience.call_succeeded",
        "asr_resilience.hook_failed",
    ]
    assert logs[1]["log_level"] == "warning"


def test_add_hook_remover(removers: list[Any]) -> None:
    """The function add_hook returns unsubscribes that hook only; calling it twice is harmless."""
    first: list[Event] = []
    second: list[Event] = []
    remove_first = add_hook(first.append)
    removers.append(remove_first)
    removers.append(add_hook(second.append))
    with structlog.testing.capture_logs():
        emit("one")
        remove_first()
        remove_first()
        emit("two")
    assert [e.name for e in first] == ["asr_resilience.one"]
    assert [e.name for e in second] == ["asr_resilience.one", "asr_resilience.two"]


def test_emit_without_hooks_logs_at_level() -> None:
    """emit logs at the level it is given."""
    with structlog.testing.capture_logs() as logs:
        emit("breaker_opened", level="warning", scope="x")
    assert logs == [
        {"event": "asr_resilience.breaker_opened", "log_level": "warning", "scope": "x"}
    ]

"""The exception tree of asr_resilience.

The texts an exception keeps (message, ``args``, detail) are scrubbed of tokens and secrets when
it is built (``_secrets.redact_text``): a vendor text such as ``The token '…' has expired!``
never reaches a traceback.

::

    AsrResilienceError                 root: catch this to catch everything the library raises
    ├── PolicyError                    a policy file or object is invalid (one line per issue)
    ├── NlsError                       the vendor answered with a status code (a signal, retried
    │                                  or mapped by the resilient wrapper)
    ├── TransportError                 the connection failed below the NLS protocol
    ├── TokenProviderError             CreateToken refused or unreachable (tokens.aliyun)
    ├── ProtocolError                  a peer broke the NLS protocol
    │   ├── LocalProtocolError         we misused it
    │   └── RemoteProtocolError        the peer did
    └── ResilienceError                the policy decided how a call ends (.code, .action, .hint,
        │                              .attempts; the last underlying error as __cause__)
        ├── FixClientError             the request is wrong: fix the caller
        │   ├── InvalidTokenError  a token with whitespace or control characters
        │   └── RedirectRefusedError  the handshake was answered with a redirect
        ├── FailFastError              a retry cannot help (account, entitlement, outcome)
        ├── RetryExhaustedError        the attempts allowed by the rule are spent
        ├── DeadlineExceededError      the next wait would cross the call's deadline
        ├── RetryBudgetExhaustedError  the scope's retry budget is spent
        ├── CircuitOpenError           the scope's breaker is open
        └── TokenRefreshError          no usable token: the credentials are wrong or the
                                       provider keeps failing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._secrets import redact_text

if TYPE_CHECKING:
    from ._attempts import AttemptRecord


class AsrResilienceError(Exception):
    """Root of every exception asr_resilience raises."""


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One mistake in a policy: where it is and what is wrong."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        # One issue, one line: a key or value with a line break must not split it.
        return text.replace("\r", "\\r").replace("\n", "\\n")


class PolicyError(AsrResilienceError, ValueError):
    """A policy is invalid; ``issues`` holds one entry per mistake, ``str()`` one line each."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class NlsError(AsrResilienceError):
    """The NLS service answered with a vendor status code (e.g. ``TaskFailed``)."""

    def __init__(
        self,
        code: int,
        message: str = "",
        task_id: str | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        message = redact_text(message)
        self.code = code
        self.message = message
        self.task_id = task_id
        self.http_status = http_status
        super().__init__(code, message, task_id)

    def __str__(self) -> str:
        task = f" (task {self.task_id})" if self.task_id else ""
        return f"{self.code} {self.message}{task}".strip()

    def __repr__(self) -> str:
        return f"NlsError({self.code!r}, {self.message!r}, task_id={self.task_id!r})"


class TransportError(AsrResilienceError):
    """The connection failed below the NLS protocol: refused, reset, abnormal close, timeout."""

    def __init__(self, kind: str, detail: str = "") -> None:
        detail = redact_text(detail)
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail else kind)


class ProtocolError(AsrResilienceError):
    """A peer broke the NLS protocol."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class LocalProtocolError(ProtocolError):
    """This side tried to do something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class ResilienceError(AsrResilienceError):
    """How a resilient call ended when it did not return a result."""

    action: str = ""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        action: str | None = None,
        hint: str = "",
        attempts: Sequence[AttemptRecord] = (),
    ) -> None:
        super().__init__(redact_text(message))
        self.code = code
        if action is not None:
            self.action = action
        self.hint = redact_text(hint) if hint else ""  # never rendered as "None"
        self.attempts: tuple[AttemptRecord, ...] = tuple(attempts)

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        return f"{text} — {self.hint}" if self.hint else text


class FixClientError(ResilienceError):
    """The request is wrong (parameters, audio format, protocol misuse): never retried."""

    action = "fix-client"


class InvalidTokenError(FixClientError, ValueError):
    """The token holds characters no NLS token has (whitespace, a line break, a control
    character): refused before anything is sent, and never echoed."""

    def __init__(self, where: str = "the token") -> None:
        super().__init__(
            f"{where} holds whitespace, a line break or a control character, which no NLS token "
            "has: strip the value (read from a file or the environment?) before passing it",
            code=None,
        )


class RedirectRefusedError(FixClientError):
    """The gateway answered the WebSocket handshake with a redirect: the token is never sent
    to the address a redirect names, so the call ends here (``status`` is the HTTP status,
    ``location`` where it pointed, scrubbed)."""

    def __init__(self, status: int, location: str) -> None:
        self.status = status
        self.location = redact_text(location)
        super().__init__(
            f"the gateway answered the handshake with HTTP {status} redirecting to "
            f"{self.location or '(no Location)'}: refused, the token is never sent to another "
            "address",
            code=None,
            hint="point url= at the gateway itself (the address the redirect names, if you "
            "trust it)",
        )


class FailFastError(ResilienceError):
    """A retry cannot help (account, entitlement, or a definitive outcome such as silence)."""

    action = "fail-fast"


class RetryExhaustedError(ResilienceError):
    """The attempts the matching rule allows are spent."""

    action = "retry"


class DeadlineExceededError(ResilienceError):
    """Waiting for the next attempt would cross the call's deadline."""

    action = "retry"


class RetryBudgetExhaustedError(ResilienceError):
    """The scope's retry budget is spent: retrying now would amplify an outage."""

    action = "retry"


class CircuitOpenError(ResilienceError):
    """The scope's circuit breaker is open: the service is failing, the call was not made."""

    action = "retry"


class TokenRefreshError(ResilienceError):
    """No usable token: the provider keeps failing, or fresh tokens are refused too."""

    action = "refresh-token"

"""asr_resilience: make Alibaba Cloud NLS speech recognition survive the vendor's error table.

A catalog of every vendor status code, a policy engine that maps each failure to one of four
actions (retry, refresh-token, fail-fast, fix-client), and the machinery that carries them out.
"""

from . import observe, testing
from ._attempts import AttemptRecord
from ._catalog import Catalog, CatalogEntry, catalog, code_class
from ._errors import (
    AsrResilienceError,
    CircuitOpenError,
    DeadlineExceededError,
    FailFastError,
    FixClientError,
    LocalProtocolError,
    NlsError,
    PolicyError,
    PolicyIssue,
    ProtocolError,
    RemoteProtocolError,
    ResilienceError,
    RetryBudgetExhaustedError,
    RetryExhaustedError,
    TokenRefreshError,
    TransportError,
)
from ._extract import register_extractor, unregister_extractor
from ._failure import Failure
from .clients import (
    AudioGap,
    AudioSourceError,
    Recognition,
    Recognizer,
    Reconnected,
    RestRecognizer,
    SentenceEvent,
    StreamEvent,
    StreamStats,
    Transcriber,
)
from .policy import Backoff, Decision, FleetSettings, Policy, Rule, load_policy
from .retry import Attempt, Clock, resilient, retrying
from .sdk import SdkParameterError, SdkRecognizer, SdkTranscriber
from .tokens import AliyunTokenProvider, StaticToken, Token, TokenManager, TokenProviderError

__version__ = "0.1.0"

__all__ = [
    "AliyunTokenProvider",
    "AsrResilienceError",
    "Attempt",
    "AttemptRecord",
    "AudioGap",
    "AudioSourceError",
    "Backoff",
    "Catalog",
    "CatalogEntry",
    "CircuitOpenError",
    "Clock",
    "DeadlineExceededError",
    "Decision",
    "FailFastError",
    "Failure",
    "FixClientError",
    "FleetLimiter",
    "FleetSettings",
    "LocalProtocolError",
    "NlsError",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "ProtocolError",
    "Recognition",
    "Recognizer",
    "Reconnected",
    "RedisTokenCache",
    "RemoteProtocolError",
    "ResilienceError",
    "RestRecognizer",
    "RetryBudgetExhaustedError",
    "RetryExhaustedError",
    "Rule",
    "SdkParameterError",
    "SdkRecognizer",
    "SdkTranscriber",
    "SentenceEvent",
    "StaticToken",
    "StreamEvent",
    "StreamStats",
    "Token",
    "TokenManager",
    "TokenProviderError",
    "TokenRefreshError",
    "Transcriber",
    "TransportError",
    "__version__",
    "catalog",
    "code_class",
    "load_policy",
    "observe",
    "register_extractor",
    "resilient",
    "retrying",
    "testing",
    "unregister_extractor",
]


def __getattr__(name: str) -> object:
    """The fleet needs redis-py (extra ``redis``): imported on first use."""
    if name in ("FleetLimiter", "RedisTokenCache"):
        from . import fleet

        return getattr(fleet, name)
    raise AttributeError(f"module 'asr_resilience' has no attribute {name!r}")

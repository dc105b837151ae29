"""asr_resilience: make Alibaba Cloud NLS speech recognition survive the vendor's error table.

A catalog of every vendor status code, a policy engine that maps each failure to one of four
actions (retry, refresh-token, fail-fast, fix-client), and the one execution core that carries
them out for the decorator, the block form and the clients.

The top level holds what most programs use; the subpackages hold the rest: ``clients``
(results and stream events), ``policy`` (the model, the catalog's types), ``retry``
(attempts, clocks), ``tokens``, ``limits``, ``fleet``, ``protocol``, ``sdk``, ``observe``,
``simulator`` and ``testing``.
"""

from __future__ import annotations

import importlib
import warnings

from . import observe, testing
from ._catalog import catalog
from ._errors import (
    AsrResilienceError,
    CircuitOpenError,
    DeadlineExceededError,
    FailFastError,
    FixClientError,
    NlsError,
    PolicyError,
    ProtocolError,
    ResilienceError,
    RetryBudgetExhaustedError,
    RetryExhaustedError,
    TokenRefreshError,
    TransportError,
)
from ._extract import register_extractor, unregister_extractor
from ._failure import Failure
from ._version import VERSION
from .clients import Recognizer, RestRecognizer, Transcriber
from .policy import Policy, load_policy
from .retry import Attempt, resilient, retrying
from .sdk import SdkRecognizer, SdkTranscriber
from .tokens import AliyunTokenProvider, StaticToken, Token, TokenManager

__version__ = VERSION

__all__ = [
    "AliyunTokenProvider",
    "AsrResilienceError",
    "Attempt",
    "CircuitOpenError",
    "DeadlineExceededError",
    "FailFastError",
    "Failure",
    "FixClientError",
    "FleetLimiter",
    "NlsError",
    "Policy",
    "PolicyError",
    "ProtocolError",
    "Recognizer",
    "RedisTokenCache",
    "ResilienceError",
    "RestRecognizer",
    "RetryBudgetExhaustedError",
    "RetryExhaustedError",
    "SdkRecognizer",
    "SdkTranscriber",
    "StaticToken",
    "Token",
    "TokenManager",
    "TokenRefreshError",
    "Transcriber",
    "TransportError",
    "__version__",
    "catalog",
    "load_policy",
    "observe",
    "register_extractor",
    "resilient",
    "retrying",
    "testing",
    "unregister_extractor",
]

_FLEET = ("FleetLimiter", "RedisTokenCache")
"""Need redis-py (extra ``redis``): imported on first use."""

_MOVED = {
    "AttemptRecord": "retry",
    "AudioGap": "clients",
    "AudioSourceError": "clients",
    "Backoff": "policy",
    "Catalog": "policy",
    "CatalogEntry": "policy",
    "Clock": "retry",
    "Decision": "policy",
    "FleetSettings": "policy",
    "LocalProtocolError": "protocol",
    "PolicyIssue": "policy",
    "Recognition": "clients",
    "Reconnected": "clients",
    "RemoteProtocolError": "protocol",
    "Rule": "policy",
    "SdkParameterError": "sdk",
    "SentenceEvent": "clients",
    "StreamEvent": "clients",
    "StreamStats": "clients",
    "TokenProviderError": "tokens",
    "code_class": "policy",
}
"""Names the top level exported in 0.1, and the subpackage that holds them now."""


def __getattr__(name: str) -> object:
    if name in _FLEET:
        from . import fleet

        return getattr(fleet, name)
    home = _MOVED.get(name)
    if home is not None:
        warnings.warn(
            f"asr_resilience.{name} is asr_resilience.{home}.{name}; the top-level name is "
            "deprecated and goes away in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f"{__name__}.{home}"), name)
    raise AttributeError(f"module 'asr_resilience' has no attribute {name!r}")

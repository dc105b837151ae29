"""The policy engine: YAML policies, composable matchers, and ``Policy.decide``."""

from .._catalog import Catalog, CatalogEntry, code_class
from .._errors import PolicyIssue
from ._decision import Decision
from ._loader import ENV_VAR, check_policy, load_policy, shipped_policies, shipped_policy_path
from ._matchers import AllOf, AnyOf, CodePattern, Codes, HttpStatus, Matcher, Message, Transport
from ._model import (
    ACTIONS,
    Action,
    Backoff,
    CircuitBreakerSettings,
    ConcurrencySettings,
    Defaults,
    FleetSettings,
    Jitter,
    Language,
    RetryBudgetSettings,
    Rule,
    StreamingSettings,
    TokenSettings,
    Unknown,
)
from ._policy import Policy

__all__ = [
    "ACTIONS",
    "ENV_VAR",
    "Action",
    "AllOf",
    "AnyOf",
    "Backoff",
    "Catalog",
    "CatalogEntry",
    "CircuitBreakerSettings",
    "CodePattern",
    "Codes",
    "ConcurrencySettings",
    "Decision",
    "Defaults",
    "FleetSettings",
    "HttpStatus",
    "Jitter",
    "Language",
    "Matcher",
    "Message",
    "Policy",
    "PolicyIssue",
    "RetryBudgetSettings",
    "Rule",
    "StreamingSettings",
    "TokenSettings",
    "Transport",
    "Unknown",
    "check_policy",
    "code_class",
    "load_policy",
    "shipped_policies",
    "shipped_policy_path",
]

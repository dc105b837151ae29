"""The policy: rules compiled into a per-code lookup table, and ``decide``.

``decide`` is pure: no I/O, no sleeping, no clock. Code-only failures (the common case: a vendor
status without text) are answered from a dict filled on first use, so a decision costs one lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._catalog import CatalogEntry, Text, catalog, code_class
from .._failure import Failure
from ._decision import Decision
from ._model import (
    Action,
    CircuitBreakerSettings,
    ConcurrencySettings,
    Defaults,
    FleetSettings,
    Language,
    RetryBudgetSettings,
    Rule,
    StreamingSettings,
    TokenSettings,
    Unknown,
)

TRANSPORT_ENTRY = CatalogEntry(
    code=None,
    message=None,
    name=None,
    cause=Text(
        zh="连接在 NLS 协议之下失败：连接被拒绝、被重置、异常关闭或超时。",
        en="The connection failed below the NLS protocol: refused, reset, closed abnormally "
        "or timed out.",
    ),
    solution=Text(
        zh="一般重试即可恢复；若持续出现，请检查网络与网关地址。",
        en="A retry usually recovers; if it persists, check the network and the gateway URL.",
    ),
    table="class",
    from_seed=False,
    general=True,
)

# Bound the per-code cache: codes come from the network, and a hostile peer could send many.
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Policy:
    """Rules (first match wins), defaults, and the settings of tokens, limits and the fleet."""

    name: str = "custom"
    rules: tuple[Rule, ...] = ()
    defaults: Defaults = field(default_factory=Defaults)
    unknown: Unknown = field(default_factory=Unknown)
    language: Language = "en"
    tokens: TokenSettings = field(default_factory=TokenSettings)
    retry_budget: RetryBudgetSettings = field(default_factory=RetryBudgetSettings)
    circuit_breaker: CircuitBreakerSettings = field(default_factory=CircuitBreakerSettings)
    concurrency: ConcurrencySettings = field(default_factory=ConcurrencySettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    source: str = ""
    """The file the policy was loaded from ("" when built in code)."""
    _by_code: dict[int, Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        # Fill the table for every code the vendor documents, so the hot path never misses.
        for code in catalog().codes():
            if code != 20000000:
                self.decide_code(code)

    def decide(self, failure: Failure) -> Decision:
        """The decision for one failure: the first matching rule, else ``unknown`` by class."""
        if failure.is_code_only:
            assert failure.code is not None
            return self.decide_code(failure.code)
        return self._decide(failure)

    def decide_code(self, code: int) -> Decision:
        """The decision for a vendor code with no status text (cached per code)."""
        decision = self._by_code.get(code)
        if decision is None:
            decision = self._decide(Failure(code=code))
            if len(self._by_code) < _CACHE_LIMIT:
                self._by_code[code] = decision
        return decision

    def _decide(self, failure: Failure) -> Decision:
        code = failure.effective_code
        entry = TRANSPORT_ENTRY if code is None else catalog().lookup(code, failure.message or None)
        defaults = self.defaults
        for rule in self.rules:
            if rule.match(failure):
                action, name = rule.action, rule.name
                attempts = rule.max_attempts or defaults.max_attempts
                backoff = rule.backoff or defaults.backoff
                break
        else:
            cls = _unknown_class(failure)
            action, name = getattr(self.unknown, cls), f"unknown.{cls}"
            attempts, backoff = defaults.max_attempts, defaults.backoff
        return Decision(
            action=action,
            rule=name,
            max_attempts=_attempts(action, attempts),
            backoff=backoff,
            deadline=defaults.deadline,
            entry=entry,
            code=code,
            throttled=failure.throttled,
        )


def _attempts(action: Action, configured: int) -> int:
    # fail-fast and fix-client stop after the attempt that failed, whatever the defaults say.
    return 1 if action in ("fail-fast", "fix-client") else configured


def _unknown_class(failure: Failure) -> str:
    code = failure.effective_code
    if code is None:
        return "server"  # a transport failure: the far side or the path to it
    cls = code_class(code)
    if cls in ("client", "http_client"):
        return "client"
    if cls in ("server", "http_server"):
        return "server"
    return "other"

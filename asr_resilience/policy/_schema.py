"""Validate a policy document (already merged along ``extends``) and build the Policy.

Every mistake becomes a PolicyIssue naming the file, the line and the field; validation goes on
after a mistake so one run reports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from .._errors import PolicyIssue
from .._redis_url import RedisUrlError, parse_redis_url
from ._bounds import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY,
    MAX_DEADLINE,
    MAX_LEASE_TTL,
    MAX_MIN_CALLS,
    MAX_MIN_PER_SECOND,
    MAX_OPEN_FOR,
    MAX_REFRESH_AHEAD,
    MAX_REFRESHES,
    MAX_UNCONFIRMED,
    MAX_WINDOW,
)
from ._checks import Invalid
from ._located import Located
from ._model import (
    ACTIONS,
    LANGUAGES,
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
from ._policy import Policy
from ._rule_checks import RuleChecks

_Bounded = TypeVar("_Bounded", ConcurrencySettings, FleetSettings)
"""Settings with ``initial``, ``min`` and ``max`` (a start and its bounds)."""

T = TypeVar("T")

TOP_KEYS = (
    "version",
    "extends",
    "name",
    "description",
    "defaults",
    "unknown",
    "language",
    "tokens",
    "retry_budget",
    "circuit_breaker",
    "concurrency",
    "fleet",
    "streaming",
    "rules",
)
FLEET_KEYS = (
    "enabled",
    "redis_url",
    "redis_url_env",
    "key_prefix",
    "quota",
    "lease_ttl",
    "fallback_share",
    "initial",
    "min",
    "max",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Validator(RuleChecks):
    """Turns a located document into a Policy, collecting issues instead of stopping."""

    # -- sections -------------------------------------------------------------------------

    def defaults(self, loc: Located | None) -> Defaults:
        if loc is None:
            return Defaults()
        items = self.mapping(loc, "defaults", ("max_attempts", "deadline", "backoff"))
        base = Defaults()
        attempts = self.optional(
            items,
            "max_attempts",
            "defaults",
            lambda v, f: self.integer(v, f, 1, MAX_ATTEMPTS),
            base.max_attempts,
        )
        deadline = self.optional(
            items,
            "deadline",
            "defaults",
            lambda v, f: self.duration(v, f, MAX_DEADLINE),
            base.deadline,
        )
        backoff = self.optional(
            items,
            "backoff",
            "defaults",
            lambda v, f: self.backoff(v, f, base.backoff),
            base.backoff,
        )
        return Defaults(attempts, deadline, backoff)

    def unknown(self, loc: Located) -> Unknown:
        items = self.mapping(loc, "unknown", ("client", "server", "other"))
        base = Unknown()
        parse = self._action
        return Unknown(
            client=self.optional(items, "client", "unknown", parse, base.client),
            server=self.optional(items, "server", "unknown", parse, base.server),
            other=self.optional(items, "other", "unknown", parse, base.other),
        )

    def _action(self, loc: Located, field: str) -> Action:
        return self.choice(loc, field, ACTIONS)

    def tokens(self, loc: Located) -> TokenSettings:
        items = self.mapping(loc, "tokens", ("max_refreshes", "refresh_ahead"))
        base = TokenSettings()
        return TokenSettings(
            max_refreshes=self.optional(
                items,
                "max_refreshes",
                "tokens",
                lambda v, f: self.integer(v, f, 0, MAX_REFRESHES),
                base.max_refreshes,
            ),
            refresh_ahead=self.optional(
                items,
                "refresh_ahead",
                "tokens",
                lambda v, f: self.duration(v, f, MAX_REFRESH_AHEAD, allow_zero=True),
                base.refresh_ahead,
            ),
        )

    def _window(self, loc: Located, field: str) -> float:
        return self.duration(loc, field, MAX_WINDOW)

    def retry_budget(self, loc: Located) -> RetryBudgetSettings:
        field = "retry_budget"
        items = self.mapping(loc, field, ("enabled", "ratio", "min_per_second", "window"))
        base = RetryBudgetSettings()
        return RetryBudgetSettings(
            enabled=self.optional(items, "enabled", field, self.boolean, base.enabled),
            ratio=self.optional(
                items, "ratio", field, lambda v, f: self.number(v, f, 0.0, 1.0), base.ratio
            ),
            min_per_second=self.optional(
                items,
                "min_per_second",
                field,
                lambda v, f: self.number(v, f, 0.0, MAX_MIN_PER_SECOND),
                base.min_per_second,
            ),
            window=self.optional(items, "window", field, self._window, base.window),
        )

    def circuit_breaker(self, loc: Located) -> CircuitBreakerSettings:
        field = "circuit_breaker"
        keys = ("enabled", "failure_ratio", "min_calls", "window", "open_for")
        items = self.mapping(loc, field, keys)
        base = CircuitBreakerSettings()
        return CircuitBreakerSettings(
            enabled=self.optional(items, "enabled", field, self.boolean, base.enabled),
            failure_ratio=self.optional(
                items,
                "failure_ratio",
                field,
                lambda v, f: self.number(v, f, 0.0, 1.0, exclusive_min=True),
                base.failure_ratio,
            ),
            min_calls=self.optional(
                items,
                "min_calls",
                field,
                lambda v, f: self.integer(v, f, 1, MAX_MIN_CALLS),
                base.min_calls,
            ),
            window=self.optional(items, "window", field, self._window, base.window),
            open_for=self.optional(
                items,
                "open_for",
                field,
                lambda v, f: self.duration(v, f, MAX_OPEN_FOR),
                base.open_for,
            ),
        )

    def concurrency(self, loc: Located) -> ConcurrencySettings:
        field = "concurrency"
        items = self.mapping(loc, field, ("adaptive", "initial", "min", "max"))
        base = ConcurrencySettings()
        positive: Callable[[Located, str], int] = lambda v, f: self.integer(  # noqa: E731
            v, f, 1, MAX_CONCURRENCY
        )
        settings = ConcurrencySettings(
            adaptive=self.optional(items, "adaptive", field, self.boolean, base.adaptive),
            initial=self.optional(items, "initial", field, positive, base.initial),
            min=self.optional(items, "min", field, positive, base.min),
            max=self.optional(items, "max", field, positive, base.max),
        )
        return self._bounded_start(loc, items, field, settings)

    def fleet(self, loc: Located) -> FleetSettings:
        field = "fleet"
        items = self.mapping(loc, field, FLEET_KEYS)
        base = FleetSettings()
        positive: Callable[[Located, str], int] = lambda v, f: self.integer(  # noqa: E731
            v, f, 1, MAX_CONCURRENCY
        )
        settings = FleetSettings(
            enabled=self.optional(items, "enabled", field, self.boolean, base.enabled),
            redis_url=self.optional(items, "redis_url", field, self._redis_url, base.redis_url),
            redis_url_env=self.optional(
                items, "redis_url_env", field, self._env_name, base.redis_url_env
            ),
            key_prefix=self.optional(items, "key_prefix", field, self.text, base.key_prefix),
            # null spelled out means the same as leaving it out: learn the quota.
            quota=self.optional(
                items,
                "quota",
                field,
                lambda v, f: None if v.value is None else self.integer(v, f, 1, MAX_CONCURRENCY),
                base.quota,
            ),
            lease_ttl=self.optional(
                items,
                "lease_ttl",
                field,
                lambda v, f: self.duration(v, f, MAX_LEASE_TTL),
                base.lease_ttl,
            ),
            fallback_share=self.optional(
                items,
                "fallback_share",
                field,
                lambda v, f: self.number(v, f, 0.0, 1.0, exclusive_min=True),
                base.fallback_share,
            ),
            initial=self.optional(items, "initial", field, positive, base.initial),
            min=self.optional(items, "min", field, positive, base.min),
            max=self.optional(items, "max", field, positive, base.max),
        )
        return self._bounded_start(loc, items, field, settings)

    def streaming(self, loc: Located) -> StreamingSettings:
        field = "streaming"
        items = self.mapping(loc, field, ("max_unconfirmed",))
        base = StreamingSettings()
        return StreamingSettings(
            max_unconfirmed=self.optional(
                items,
                "max_unconfirmed",
                field,
                lambda v, f: self.duration(v, f, MAX_UNCONFIRMED),
                base.max_unconfirmed,
            )
        )

    def _bounded_start(
        self, loc: Located, items: dict[str, Located], field: str, settings: _Bounded
    ) -> _Bounded:
        """Check ``min <= initial <= max``; a child that narrows min..max clamps the parent's
        ``initial`` (it means its bounds, and the parent's start follows)."""
        if settings.max < settings.min:
            where = items.get("max") or items.get("min") or loc
            self.fail(where, f"{field}.max", f"{settings.max} is below min {settings.min}")
        elif not settings.min <= settings.initial <= settings.max:
            if _inherited(loc, items, "initial", ("min", "max")):
                return replace(
                    settings, initial=min(settings.max, max(settings.min, settings.initial))
                )
            self.fail(
                items.get("initial") or loc,
                f"{field}.initial",
                f"{settings.initial} is outside min..max ({settings.min}..{settings.max})",
            )
        return settings

    def _redis_url(self, loc: Located, field: str) -> str:
        url = self.text(loc, field)
        try:
            parse_redis_url(url)
        except RedisUrlError as exc:
            # Never echo the value (the message does not): a Redis URL may carry a password.
            raise self.fail(loc, field, str(exc)) from None
        return url

    def _env_name(self, loc: Located, field: str) -> str:
        name = self.text(loc, field)
        if not _ENV_NAME.fullmatch(name):
            raise self.fail(loc, field, f"{name!r} is not an environment variable name")
        return name


def build_policy(doc: Located, name: str, source: str) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate a merged document; the Policy when it is valid, and the issues found."""
    v = Validator()
    try:
        items = v.mapping(doc, "", TOP_KEYS)
    except Invalid:
        return None, v.issues
    policy_name = v.optional(items, "name", "", v.text, name)
    v.optional(items, "description", "", v.text, "")
    defaults = _section(v, items, "defaults", lambda loc: v.defaults(loc), Defaults())
    unknown = _section(v, items, "unknown", v.unknown, Unknown())
    default_language: Language = "en"
    language = _section(
        v, items, "language", lambda loc: v.choice(loc, "language", LANGUAGES), default_language
    )
    tokens = _section(v, items, "tokens", v.tokens, TokenSettings())
    budget = _section(v, items, "retry_budget", v.retry_budget, RetryBudgetSettings())
    breaker = _section(v, items, "circuit_breaker", v.circuit_breaker, CircuitBreakerSettings())
    concurrency = _section(v, items, "concurrency", v.concurrency, ConcurrencySettings())
    fleet = _section(v, items, "fleet", v.fleet, FleetSettings())
    streaming = _section(v, items, "streaming", v.streaming, StreamingSettings())
    no_rules: tuple[Rule, ...] = ()
    rules = _section(v, items, "rules", lambda loc: v.rules(loc, defaults), no_rules)
    if v.issues:
        return None, sorted(
            v.issues, key=lambda issue: (issue.file != doc.file, issue.file, issue.line)
        )
    policy = Policy(
        name=policy_name,
        rules=rules,
        defaults=defaults,
        unknown=unknown,
        language=language,
        tokens=tokens,
        retry_budget=budget,
        circuit_breaker=breaker,
        concurrency=concurrency,
        fleet=fleet,
        streaming=streaming,
        source=source,
    )
    return policy, []


def _section(
    v: Validator, items: dict[str, Located], key: str, parse: Callable[[Located], T], default: T
) -> T:
    loc = items.get(key)
    if loc is None:
        return default
    try:
        return parse(loc)
    except Invalid:
        return default


def _inherited(
    loc: Located, items: dict[str, Located], field: str, bounds: tuple[str, ...]
) -> bool:
    """Whether ``field`` comes from a parent file while this file set one of the bounds."""
    own = items.get(field)
    return (
        own is not None
        and own.file != loc.file
        and any(items[bound].file == loc.file for bound in bounds if bound in items)
    )

"""Validate a policy document (already merged along ``extends``) and build the Policy.

Every mistake becomes a PolicyIssue naming the file, the line and the field; validation goes on
after a mistake so one run reports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..durations import format_duration, parse_duration
from ..errors import PolicyIssue
from . import matchers as m
from .located import Located
from .model import (
    ACTIONS,
    JITTERS,
    LANGUAGES,
    Action,
    Backoff,
    CircuitBreakerSettings,
    ConcurrencySettings,
    Defaults,
    FleetSettings,
    Language,
    RetryBudgetSettings,
    Rule,
    TokenSettings,
    Unknown,
)
from .policy import Policy

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
    "rules",
)
BACKOFF_KEYS = ("initial", "max", "multiplier", "jitter")
RULE_KEYS = ("name", "description", "match", "action", "max_attempts", "backoff")
MATCH_KEYS = ("codes", "message", "http_status", "transport")
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
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ATTEMPTS = 1000


class _Invalid(Exception):
    """A value was reported as an issue; the caller falls back to its default."""


class Validator:
    """Turns a located document into a Policy, collecting issues instead of stopping."""

    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    # -- scalars --------------------------------------------------------------------------

    def fail(self, loc: Located, field: str, message: str) -> _Invalid:
        self.issues.append(loc.issue(field, message))
        return _Invalid()

    def mapping(self, loc: Located, field: str, allowed: tuple[str, ...]) -> dict[str, Located]:
        if not isinstance(loc.value, dict):
            raise self.fail(loc, field, f"expected a mapping, got {_kind(loc.value)}")
        value = cast(dict[str, Located], loc.value)
        for key, child in value.items():
            if key not in allowed:
                self.fail(
                    child,
                    _join(field, key),
                    f"unknown key; expected one of {', '.join(allowed)}",
                )
        return value

    def integer(self, loc: Located, field: str, minimum: int, maximum: int | None = None) -> int:
        value = loc.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(loc, field, f"expected an integer, got {_kind(value)} {value!r}")
        if value < minimum:
            raise self.fail(loc, field, f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise self.fail(loc, field, f"{value} is above the maximum {maximum}")
        return value

    def number(
        self,
        loc: Located,
        field: str,
        minimum: float,
        maximum: float | None = None,
        *,
        exclusive_min: bool = False,
    ) -> float:
        value = loc.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(loc, field, f"expected a number, got {_kind(value)} {value!r}")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise self.fail(loc, field, f"{value!r} is not a finite number")
        if number < minimum or (exclusive_min and number == minimum):
            bound = f"above {minimum:g}" if exclusive_min else f"at least {minimum:g}"
            raise self.fail(loc, field, f"{value!r} is out of range: must be {bound}")
        if maximum is not None and number > maximum:
            raise self.fail(loc, field, f"{value!r} is out of range: must be at most {maximum:g}")
        return number

    def duration(self, loc: Located, field: str, *, allow_zero: bool = False) -> float:
        try:
            seconds = parse_duration(loc.value)
        except ValueError as exc:
            raise self.fail(loc, field, str(exc)) from None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            bound = "at least 0" if allow_zero else "greater than 0"
            raise self.fail(loc, field, f"{loc.value!r} is out of range: must be {bound}")
        return seconds

    def choice(self, loc: Located, field: str, choices: tuple[T, ...]) -> T:
        if loc.value not in choices:
            options = ", ".join(str(c) for c in choices)
            raise self.fail(loc, field, f"{loc.value!r} is not one of {options}")
        return cast(T, loc.value)

    def boolean(self, loc: Located, field: str) -> bool:
        if not isinstance(loc.value, bool):
            raise self.fail(loc, field, f"expected true or false, got {loc.value!r}")
        return loc.value

    def text(self, loc: Located, field: str) -> str:
        if not isinstance(loc.value, str) or not loc.value:
            raise self.fail(loc, field, f"expected a non-empty string, got {loc.value!r}")
        return loc.value

    def optional(
        self,
        items: dict[str, Located],
        key: str,
        field: str,
        parse: Callable[[Located, str], T],
        default: T,
    ) -> T:
        """Parse ``items[key]`` if present; on a mistake keep the default (the issue is kept)."""
        loc = items.get(key)
        if loc is None:
            return default
        try:
            return parse(loc, _join(field, key))
        except _Invalid:
            return default

    # -- sections -------------------------------------------------------------------------

    def backoff(self, loc: Located, field: str, base: Backoff) -> Backoff:
        items = self.mapping(loc, field, BACKOFF_KEYS)
        initial = self.optional(items, "initial", field, self.duration, base.initial)
        maximum = self.optional(items, "max", field, self.duration, base.max)
        multiplier = self.optional(
            items, "multiplier", field, lambda v, f: self.number(v, f, 1.0), base.multiplier
        )
        jitter = self.optional(
            items, "jitter", field, lambda v, f: self.choice(v, f, JITTERS), base.jitter
        )
        if maximum < initial:
            where = items.get("max") or items.get("initial") or loc
            self.fail(
                where,
                _join(field, "max"),
                f"{format_duration(maximum)} is below initial {format_duration(initial)}",
            )
            maximum = initial
        return Backoff(initial, maximum, multiplier, jitter)

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
        deadline = self.optional(items, "deadline", "defaults", self.duration, base.deadline)
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
                lambda v, f: self.integer(v, f, 0),
                base.max_refreshes,
            ),
            refresh_ahead=self.optional(
                items,
                "refresh_ahead",
                "tokens",
                lambda v, f: self.duration(v, f, allow_zero=True),
                base.refresh_ahead,
            ),
        )

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
                lambda v, f: self.number(v, f, 0.0),
                base.min_per_second,
            ),
            window=self.optional(items, "window", field, self.duration, base.window),
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
                items, "min_calls", field, lambda v, f: self.integer(v, f, 1), base.min_calls
            ),
            window=self.optional(items, "window", field, self.duration, base.window),
            open_for=self.optional(items, "open_for", field, self.duration, base.open_for),
        )

    def concurrency(self, loc: Located) -> ConcurrencySettings:
        field = "concurrency"
        items = self.mapping(loc, field, ("adaptive", "initial", "min", "max"))
        base = ConcurrencySettings()
        positive: Callable[[Located, str], int] = lambda v, f: self.integer(v, f, 1)  # noqa: E731
        settings = ConcurrencySettings(
            adaptive=self.optional(items, "adaptive", field, self.boolean, base.adaptive),
            initial=self.optional(items, "initial", field, positive, base.initial),
            min=self.optional(items, "min", field, positive, base.min),
            max=self.optional(items, "max", field, positive, base.max),
        )
        if settings.max < settings.min:
            where = items.get("max") or items.get("min") or loc
            self.fail(where, "concurrency.max", f"{settings.max} is below min {settings.min}")
        elif not settings.min <= settings.initial <= settings.max:
            where = items.get("initial") or loc
            self.fail(
                where,
                "concurrency.initial",
                f"{settings.initial} is outside min..max ({settings.min}..{settings.max})",
            )
        return settings

    def fleet(self, loc: Located) -> FleetSettings:
        field = "fleet"
        items = self.mapping(loc, field, FLEET_KEYS)
        base = FleetSettings()
        positive: Callable[[Located, str], int] = lambda v, f: self.integer(v, f, 1)  # noqa: E731
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
                lambda v, f: None if v.value is None else self.integer(v, f, 1),
                base.quota,
            ),
            lease_ttl=self.optional(items, "lease_ttl", field, self.duration, base.lease_ttl),
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
        if settings.max < settings.min:
            where = items.get("max") or items.get("min") or loc
            self.fail(where, "fleet.max", f"{settings.max} is below min {settings.min}")
        elif not settings.min <= settings.initial <= settings.max:
            where = items.get("initial") or loc
            self.fail(
                where,
                "fleet.initial",
                f"{settings.initial} is outside min..max ({settings.min}..{settings.max})",
            )
        return settings

    def _redis_url(self, loc: Located, field: str) -> str:
        url = self.text(loc, field)
        if not url.startswith(REDIS_SCHEMES):
            # Never echo the value: a Redis URL may carry a password.
            raise self.fail(loc, field, f"expected a URL starting with {', '.join(REDIS_SCHEMES)}")
        return url

    def _env_name(self, loc: Located, field: str) -> str:
        name = self.text(loc, field)
        if not _ENV_NAME.fullmatch(name):
            raise self.fail(loc, field, f"{name!r} is not an environment variable name")
        return name

    def match(self, loc: Located, field: str) -> m.Matcher:
        items = self.mapping(loc, field, MATCH_KEYS)
        if not any(key in items for key in MATCH_KEYS):
            raise self.fail(loc, field, f"needs at least one criterion: {', '.join(MATCH_KEYS)}")
        parts: list[m.Matcher] = []
        failed = False
        for key in MATCH_KEYS:
            if key not in items:
                continue
            try:
                parts.append(self._criterion(key, items[key], _join(field, key)))
            except _Invalid:
                failed = True
        if failed:
            raise _Invalid()
        return parts[0] if len(parts) == 1 else m.AllOf(tuple(parts))

    def _criterion(self, key: str, loc: Located, field: str) -> m.Matcher:
        if key == "codes":
            exact, patterns = self._code_list(loc, field, http=False)
            return m.Codes(frozenset(exact), tuple(patterns))
        if key == "http_status":
            exact, patterns = self._code_list(loc, field, http=True)
            return m.HttpStatus(frozenset(exact), tuple(patterns))
        if key == "message":
            return self._message(loc, field)
        return m.Transport(self.boolean(loc, field))

    def _message(self, loc: Located, field: str) -> m.Message:
        pattern = self.text(loc, field)
        try:
            return m.Message(re.compile(pattern))
        except re.error as exc:
            raise self.fail(loc, field, f"invalid regular expression {pattern!r}: {exc}") from None

    def _code_list(
        self, loc: Located, field: str, *, http: bool
    ) -> tuple[list[int], list[m.CodePattern]]:
        items = loc.value if isinstance(loc.value, list) else [loc]
        if not items:
            raise self.fail(loc, field, "the list is empty")
        exact: list[int] = []
        patterns: list[m.CodePattern] = []
        for i, item in enumerate(items):
            where = f"{field}[{i}]" if isinstance(loc.value, list) else field
            value = item.value
            if isinstance(value, bool):
                self.fail(item, where, f"expected a code or a pattern like 5xxxxxxx, got {value!r}")
            elif isinstance(value, int):
                if http and not 100 <= value <= 599:
                    self.fail(item, where, f"{value} is not an HTTP status (100..599)")
                elif value <= 0:
                    self.fail(item, where, f"{value} is not a positive code")
                else:
                    exact.append(value)
            elif isinstance(value, str):
                try:
                    patterns.append(m.CodePattern(value))
                except ValueError as exc:
                    self.fail(item, where, str(exc))
            else:
                self.fail(item, where, f"expected a code or a pattern like 5xxxxxxx, got {value!r}")
        if len(exact) + len(patterns) < len(items):
            raise _Invalid()
        return exact, patterns

    def rules(self, loc: Located, defaults: Defaults) -> tuple[Rule, ...]:
        if not isinstance(loc.value, list):
            raise self.fail(loc, "rules", f"expected a list, got {_kind(loc.value)}")
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for i, item in enumerate(cast(list[Located], loc.value)):
            field = f"rules[{i}]"
            try:
                rule = self._rule(item, field, defaults)
            except _Invalid:
                continue
            if rule.name in names:
                self.fail(
                    item.value.get("name", item),
                    f"{field}.name",
                    f"{rule.name!r} is already the name of rules[{names[rule.name]}]",
                )
                continue
            names[rule.name] = i
            rules.append(rule)
        return tuple(rules)

    def _rule(self, loc: Located, field: str, defaults: Defaults) -> Rule:
        items = self.mapping(loc, field, RULE_KEYS)
        name = self.optional(items, "name", field, self.text, "")
        missing = [key for key in ("match", "action") if key not in items]
        for key in missing:
            self.fail(loc, _join(field, key), "is required")
        match = self.optional(items, "match", field, self.match, None)
        action = self.optional(items, "action", field, self._action, None)
        attempts = self.optional(
            items, "max_attempts", field, lambda v, f: self.integer(v, f, 1, MAX_ATTEMPTS), None
        )
        backoff = self.optional(
            items, "backoff", field, lambda v, f: self.backoff(v, f, defaults.backoff), None
        )
        if match is None or action is None:
            raise _Invalid()
        return Rule(
            name=name or field,
            match=match,
            action=action,
            max_attempts=attempts,
            backoff=backoff,
            line=loc.line,
            file=loc.file,
        )


def build_policy(doc: Located, name: str, source: str) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate a merged document; the Policy when it is valid, and the issues found."""
    v = Validator()
    try:
        items = v.mapping(doc, "", TOP_KEYS)
    except _Invalid:
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
    except _Invalid:
        return default


def _join(field: str, key: str) -> str:
    key = key.replace("\r", "\\r").replace("\n", "\\n")  # a field path stays on one line
    return f"{field}.{key}" if field else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__

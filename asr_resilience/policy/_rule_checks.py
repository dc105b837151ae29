"""Validating ``rules``: matchers from ``match`` criteria, actions, per-rule overrides
(attempts and backoff; the backoff check serves ``defaults`` too)."""

from __future__ import annotations

from typing import cast

from .._durations import format_duration
from . import _matchers as m
from ._bounds import MAX_ATTEMPTS, MAX_BACKOFF, MAX_MULTIPLIER
from ._checks import Checks, Invalid, join, kind
from ._located import Located
from ._model import ACTIONS, JITTERS, Action, Backoff, Defaults, Rule
from ._regex import RegexError, compile_linear

BACKOFF_KEYS = ("initial", "max", "multiplier", "jitter")
RULE_KEYS = ("name", "description", "match", "action", "max_attempts", "backoff")
MATCH_KEYS = ("codes", "message", "http_status", "transport")


class RuleChecks(Checks):
    """Checks of the rule list and of backoff schedules."""

    def backoff(self, loc: Located, field: str, base: Backoff) -> Backoff:
        items = self.mapping(loc, field, BACKOFF_KEYS)
        initial = self.optional(
            items, "initial", field, lambda v, f: self.duration(v, f, MAX_BACKOFF), base.initial
        )
        maximum = self.optional(
            items, "max", field, lambda v, f: self.duration(v, f, MAX_BACKOFF), base.max
        )
        multiplier = self.optional(
            items,
            "multiplier",
            field,
            lambda v, f: self.number(v, f, 1.0, MAX_MULTIPLIER),
            base.multiplier,
        )
        jitter = self.optional(
            items, "jitter", field, lambda v, f: self.choice(v, f, JITTERS), base.jitter
        )
        if maximum < initial:
            where = items.get("max") or items.get("initial") or loc
            self.fail(
                where,
                join(field, "max"),
                f"{format_duration(maximum)} is below initial {format_duration(initial)}",
            )
            maximum = initial
        return Backoff(initial, maximum, multiplier, jitter)

    def _action(self, loc: Located, field: str) -> Action:
        return self.choice(loc, field, ACTIONS)

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
                parts.append(self._criterion(key, items[key], join(field, key)))
            except Invalid:
                failed = True
        if failed:
            raise Invalid()
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
            return m.Message(compile_linear(pattern))
        except RegexError as exc:
            # Quote at most the head of a long pattern: the issue stays one readable line.
            shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
            raise self.fail(loc, field, f"invalid regular expression {shown!r}: {exc}") from None

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
            raise Invalid()
        return exact, patterns

    def rules(self, loc: Located, defaults: Defaults) -> tuple[Rule, ...]:
        if not isinstance(loc.value, list):
            raise self.fail(loc, "rules", f"expected a list, got {kind(loc.value)}")
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for i, item in enumerate(cast(list[Located], loc.value)):
            field = f"rules[{i}]"
            try:
                rule = self._rule(item, field, defaults)
            except Invalid:
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
            self.fail(loc, join(field, key), "is required")
        match = self.optional(items, "match", field, self.match, None)
        action = self.optional(items, "action", field, self._action, None)
        attempts = self.optional(
            items, "max_attempts", field, lambda v, f: self.integer(v, f, 1, MAX_ATTEMPTS), None
        )
        backoff = self.optional(
            items, "backoff", field, lambda v, f: self.backoff(v, f, defaults.backoff), None
        )
        if match is None or action is None:
            raise Invalid()
        return Rule(
            name=name or field,
            match=match,
            action=action,
            max_attempts=attempts,
            backoff=backoff,
            line=loc.line,
            file=loc.file,
        )

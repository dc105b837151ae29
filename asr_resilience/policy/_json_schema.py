"""The JSON Schema of policy files, built from what the validator itself uses.

Keys come from the validator's key tuples (``_schema.TOP_KEYS``, ``_rule_checks.RULE_KEYS``, ...),
defaults from the dataclasses of ``_model.py``, ceilings from ``_bounds.py``, and the enums from
``ACTIONS``/``JITTERS``/``LANGUAGES``: a field added to the validator without a description here
fails ``policy_schema()`` at once (a KeyError), so the schema cannot silently fall behind.

The schema checks form, types, enums and single-field bounds. Checks that span fields
(``min <= initial <= max``, ``backoff.max >= initial``), the ceiling of a duration written as a
string (``90m``), regular expressions and ``extends`` chains remain ``policy check``'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass
from typing import Any

from .._durations import format_duration
from .._redis_url import REDIS_SCHEMES
from ._bounds import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_CONCURRENCY,
    MAX_DEADLINE,
    MAX_LEASE_TTL,
    MAX_MIN_CALLS,
    MAX_MIN_PER_SECOND,
    MAX_MULTIPLIER,
    MAX_OPEN_FOR,
    MAX_REFRESH_AHEAD,
    MAX_REFRESHES,
    MAX_UNCONFIRMED,
    MAX_WINDOW,
)
from ._model import (
    ACTIONS,
    JITTERS,
    LANGUAGES,
    Backoff,
    CircuitBreakerSettings,
    ConcurrencySettings,
    Defaults,
    FleetSettings,
    RetryBudgetSettings,
    StreamingSettings,
    TokenSettings,
    Unknown,
)
from ._rule_checks import BACKOFF_KEYS, MATCH_KEYS, RULE_KEYS
from ._schema import _ENV_NAME, FLEET_KEYS, TOP_KEYS

SCHEMA_ID = "https://asr-resilience.invalid/policy.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
DURATION_PATTERN = r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*$"
"""``_durations.parse_duration``'s units, without a sign (no duration of a policy is negative)."""
CODE_PATTERN = r"^[0-9]*x[0-9x]*$"
"""``_matchers.CodePattern``: digits with ``x`` for any digit."""

Schema = dict[str, Any]


# -- kinds of values ------------------------------------------------------------------------


def _integer(minimum: int, maximum: int) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _number(minimum: float, maximum: float, *, exclusive_min: bool = False) -> Schema:
    low = "exclusiveMinimum" if exclusive_min else "minimum"
    return {"type": "number", low: minimum, "maximum": maximum}


def _duration(maximum: float, *, allow_zero: bool = False) -> Schema:
    low = "minimum" if allow_zero else "exclusiveMinimum"
    return {
        "anyOf": [
            {"type": "number", low: 0, "maximum": maximum},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
        "x-kind": "duration",
        "x-maximum": format_duration(maximum),
    }


def _choice(options: tuple[str, ...]) -> Schema:
    return {"type": "string", "enum": list(options)}


BOOLEAN: Schema = {"type": "boolean"}
TEXT: Schema = {"type": "string", "minLength": 1}


def _code_list(item: Schema, what: str) -> Schema:
    entry = {"anyOf": [item, {"type": "string", "pattern": CODE_PATTERN}]}
    return {
        "anyOf": [entry, {"type": "array", "items": entry, "minItems": 1}],
        "x-kind": f"{what} or pattern, or a list of them",
    }


# -- the fields, section by section (description, value, example) --------------------------

_Field = tuple[str, Schema, Any]

BACKOFF_FIELDS: dict[str, _Field] = {
    "initial": ("Base delay before the first retry.", _duration(MAX_BACKOFF), "200ms"),
    "max": ("Cap of the base delay (not below `initial`).", _duration(MAX_BACKOFF), "5s"),
    "multiplier": (
        "Growth of the base delay from one retry to the next.",
        _number(1.0, MAX_MULTIPLIER),
        2,
    ),
    "jitter": ("How the base delay is randomised.", _choice(JITTERS), "full"),
}

SECTIONS: dict[str, tuple[str, object, dict[str, _Field]]] = {
    "defaults": (
        "What every rule uses unless it overrides it.",
        Defaults(),
        {
            "max_attempts": (
                "Attempts in all, the first included.",
                _integer(1, MAX_ATTEMPTS),
                4,
            ),
            "deadline": (
                "Bounds one whole call, waits included.",
                _duration(MAX_DEADLINE),
                "30s",
            ),
            "backoff": (
                "The delay schedule between attempts.",
                {"$ref": "#/$defs/backoff"},
                {"initial": "200ms", "max": "5s", "multiplier": 2, "jitter": "full"},
            ),
        },
    ),
    "unknown": (
        "The action for a failure no rule matches, by the class of its code.",
        Unknown(),
        {
            "client": ("A 4xxxxxxx code no rule names.", _choice(ACTIONS), "fail-fast"),
            "server": ("A 5xxxxxxx code no rule names.", _choice(ACTIONS), "retry"),
            "other": ("Any other unmatched failure.", _choice(ACTIONS), "fail-fast"),
        },
    ),
    "tokens": (
        "Token refreshes within one call, and how early a token is renewed.",
        TokenSettings(),
        {
            "max_refreshes": (
                "Token refreshes within one call.",
                _integer(0, MAX_REFRESHES),
                1,
            ),
            "refresh_ahead": (
                "How long before its expiry a token is renewed.",
                _duration(MAX_REFRESH_AHEAD, allow_zero=True),
                "5m",
            ),
        },
    ),
    "retry_budget": (
        "Retries may add at most `ratio` of the calls in `window`, plus a floor per second.",
        RetryBudgetSettings(),
        {
            "enabled": ("Whether the budget limits retries.", BOOLEAN, True),
            "ratio": ("Retries allowed per call in the window.", _number(0.0, 1.0), 0.1),
            "min_per_second": (
                "Retries per second allowed whatever the ratio.",
                _number(0.0, MAX_MIN_PER_SECOND),
                5,
            ),
            "window": ("The sliding window of the counts.", _duration(MAX_WINDOW), "10s"),
        },
    ),
    "circuit_breaker": (
        "Opens on server-class failures above `failure_ratio` over `window`, for `open_for`.",
        CircuitBreakerSettings(),
        {
            "enabled": ("Whether the breaker may open.", BOOLEAN, True),
            "failure_ratio": (
                "Share of server-class failures that opens the breaker.",
                _number(0.0, 1.0, exclusive_min=True),
                0.5,
            ),
            "min_calls": (
                "Calls in the window before the ratio is trusted.",
                _integer(1, MAX_MIN_CALLS),
                20,
            ),
            "window": ("The sliding window of the counts.", _duration(MAX_WINDOW), "30s"),
            "open_for": (
                "How long an open breaker refuses calls.",
                _duration(MAX_OPEN_FOR),
                "15s",
            ),
        },
    ),
    "concurrency": (
        "The limiter on calls in flight; `initial` must lie within `min`..`max`.",
        ConcurrencySettings(),
        {
            "adaptive": (
                "Find the account's quota by itself (slow start, then the quota read off the "
                "first 40000005, probed upward slowly; between `min` and `max`).",
                BOOLEAN,
                True,
            ),
            "initial": ("Calls in flight at the start.", _integer(1, MAX_CONCURRENCY), 4),
            "min": ("The fewest calls in flight allowed.", _integer(1, MAX_CONCURRENCY), 1),
            "max": ("The most calls in flight allowed.", _integer(1, MAX_CONCURRENCY), 200),
        },
    ),
    "fleet": (
        "Share the account's token and quota between processes through Redis.",
        FleetSettings(),
        {
            "enabled": ("Whether the fleet backend is used.", BOOLEAN, True),
            "redis_url": (
                "The Redis URL (a server, `redis+cluster://host:port,...` or "
                "`redis+sentinel://host:port,.../service_name[/db]`); wins over `redis_url_env` "
                "(a password belongs in the environment instead).",
                {"type": "string", "pattern": "^(" + "|".join(map(re.escape, REDIS_SCHEMES)) + ")"},
                "redis://localhost:6379/0",
            ),
            "redis_url_env": (
                "The environment variable that holds the Redis URL.",
                {"type": "string", "pattern": f"^{_ENV_NAME.pattern}$"},
                "ASR_RESILIENCE_REDIS_URL",
            ),
            "key_prefix": ("Prefix of every Redis key.", TEXT, "asr_resilience:"),
            "quota": (
                "The fleet's calls in flight; null learns it as `concurrency.adaptive` does "
                "(between `min` and `max`).",
                {"anyOf": [_integer(1, MAX_CONCURRENCY), {"type": "null"}]},
                200,
            ),
            "lease_ttl": (
                "How long a dead worker's slots stay taken.",
                _duration(MAX_LEASE_TTL),
                "30s",
            ),
            "fallback_share": (
                "Share of the quota one process keeps while Redis is unreachable.",
                _number(0.0, 1.0, exclusive_min=True),
                0.25,
            ),
            "initial": ("Calls in flight at the start.", _integer(1, MAX_CONCURRENCY), 4),
            "min": ("The fewest calls in flight allowed.", _integer(1, MAX_CONCURRENCY), 1),
            "max": ("The most calls in flight allowed.", _integer(1, MAX_CONCURRENCY), 200),
        },
    ),
    "streaming": (
        "How a real-time stream paces its audio against what the gateway has confirmed.",
        StreamingSettings(),
        {
            "max_unconfirmed": (
                "The most audio a stream sends ahead of the last time the gateway reported "
                "(a sentence's beginning, an intermediate result, a sentence's end); a cut "
                "connection replays at most this much past the open sentence.",
                _duration(MAX_UNCONFIRMED),
                "3s",
            ),
        },
    ),
}

MATCH_FIELDS: dict[str, _Field] = {
    "codes": (
        "Vendor codes (or the HTTP status when there is none), or class patterns like 5xxxxxxx.",
        _code_list({"type": "integer", "minimum": 1}, "code"),
        [40000005, "5xxxxxxx"],
    ),
    "message": (
        "A regular expression searched in the status text (RE2: linear time, no backreferences).",
        TEXT,
        "TOO_MANY_REQUESTS",
    ),
    "http_status": (
        "HTTP statuses of failures without a vendor code, or patterns like 5xx.",
        _code_list({"type": "integer", "minimum": 100, "maximum": 599}, "status"),
        [429, "5xx"],
    ),
    "transport": (
        "A connection-level failure (true), or explicitly not one (false).",
        BOOLEAN,
        True,
    ),
}

RULE_FIELDS: dict[str, _Field] = {
    "name": (
        "The rule's name; a child policy's rule of the same name replaces it.",
        TEXT,
        "throttled",
    ),
    "description": ("Free text.", TEXT, "Overload: retry."),
    "match": (
        "The criteria; all given ones must match.",
        {"$ref": "#/$defs/match"},
        {"codes": [40000005]},
    ),
    "action": ("What a matching failure leads to.", _choice(ACTIONS), "retry"),
    "max_attempts": (
        "Overrides `defaults.max_attempts`.",
        _integer(1, MAX_ATTEMPTS),
        6,
    ),
    "backoff": (
        "Overrides fields of `defaults.backoff`.",
        {"$ref": "#/$defs/backoff"},
        {"initial": "1s", "max": "10s"},
    ),
}

TOP_FIELDS: dict[str, _Field] = {
    "version": ("The policy format; only 1 exists.", {"const": 1}, 1),
    "extends": (
        "A parent: a file next to this one, else a shipped policy's name.",
        TEXT,
        "default",
    ),
    "name": ("The policy's name (default: the file's stem).", TEXT, "my-service"),
    "description": ("Free text.", TEXT, "Batch jobs of the archive team."),
    "language": ("Language of messages and the catalog.", _choice(LANGUAGES), "en"),
    "rules": (
        "Checked in order; the first match decides. A child's rules come before its parent's.",
        {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        None,
    ),
}

TOP_DEFAULTS: dict[str, Any] = {"language": "en"}


def _default(instance: object, name: str) -> Any:
    if instance is None or not is_dataclass(instance):
        return None
    for f in fields(instance):
        if f.name == name:
            value = getattr(instance, name)
            return None if is_dataclass(value) else value
    raise KeyError(f"{type(instance).__name__} has no field {name!r}")


def _object(
    keys: tuple[str, ...],
    table: dict[str, _Field],
    description: str,
    instance: object = None,
    *,
    required: tuple[str, ...] = (),
) -> Schema:
    """An object of exactly the validator's ``keys``, each described by ``table``."""
    properties: Schema = {}
    for key in keys:
        text, value, example = table[key]  # a key without a description fails here
        prop = {"description": text, **value}
        default = _default(instance, key)
        if default is not None:
            prop["default"] = default
        if example is not None:
            prop["examples"] = [example]
        properties[key] = prop
    out: Schema = {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    return out


def policy_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of a policy file, as ``policy schema`` prints it."""
    properties: Schema = {}
    for key in TOP_KEYS:
        if key in SECTIONS:
            text, instance, table = SECTIONS[key]
            section_keys = _section_keys(key, instance)
            properties[key] = _object(section_keys, table, text, instance)
            continue
        text, value, example = TOP_FIELDS[key]
        prop = {"description": text, **value}
        if key in TOP_DEFAULTS:
            prop["default"] = TOP_DEFAULTS[key]
        if example is not None:
            prop["examples"] = [example]
        properties[key] = prop
    match = _object(MATCH_KEYS, MATCH_FIELDS, "Criteria of a rule; at least one.")
    match["minProperties"] = 1
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "asr_resilience policy",
        "description": (
            "A retry policy for Alibaba Cloud NLS calls. Generated by `asr-resilience policy "
            "schema`; `asr-resilience policy check` validates further (cross-field bounds, "
            "regular expressions, extends)."
        ),
        "type": "object",
        "properties": properties,
        "required": ["version"],
        "additionalProperties": False,
        "$defs": {
            "backoff": _object(
                BACKOFF_KEYS,
                BACKOFF_FIELDS,
                "Exponential delays: min(max, initial * multiplier**n) before retry n, jittered.",
                Backoff(),
            ),
            "match": match,
            "rule": _object(
                RULE_KEYS,
                RULE_FIELDS,
                "A matcher and what to do when it matches.",
                required=("match", "action"),
            ),
        },
    }


def _section_keys(section: str, instance: object) -> tuple[str, ...]:
    """The keys the validator accepts in ``section``: its dataclass's fields (fleet: FLEET_KEYS)."""
    if section == "fleet":
        return FLEET_KEYS
    assert is_dataclass(instance)
    return tuple(f.name for f in fields(instance))


def policy_schema_json() -> str:
    """The schema as the text of ``docs/policy.schema.json`` (2-space indent, final newline)."""
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"

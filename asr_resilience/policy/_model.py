"""The policy as frozen objects: defaults, rules, and the settings of the call machinery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._matchers import Matcher

Action = Literal["retry", "refresh-token", "fail-fast", "fix-client"]
ACTIONS: tuple[Action, ...] = ("retry", "refresh-token", "fail-fast", "fix-client")
Jitter = Literal["full", "equal", "decorrelated", "none"]
JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated", "none")
Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays: ``min(max, initial * multiplier**n)`` before retry ``n``, jittered."""

    initial: float = 0.2
    max: float = 5.0
    multiplier: float = 2.0
    jitter: Jitter = "full"

    def base_delay(self, retry_index: int) -> float:
        """The delay before jitter ahead of retry ``retry_index`` (0 for the first retry)."""
        # Cap the exponent: multiplier**n overflows long before any real schedule needs it.
        exponent = min(retry_index, 1024)
        try:
            raw = self.initial * self.multiplier**exponent
        except OverflowError:
            return self.max
        return min(self.max, raw)

    def base_delays(self, retries: int) -> tuple[float, ...]:
        """Base delays of the first ``retries`` retries."""
        return tuple(self.base_delay(i) for i in range(retries))


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a rule uses unless it overrides it."""

    max_attempts: int = 4
    deadline: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True)
class Unknown:
    """The action for a failure no rule matches, by the class of its code."""

    client: Action = "fail-fast"
    server: Action = "retry"
    other: Action = "fail-fast"


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """How many refreshes one call may make, and how early a token is renewed."""

    max_refreshes: int = 1
    refresh_ahead: float = 300.0


@dataclass(frozen=True, slots=True)
class RetryBudgetSettings:
    """Retries may add at most ``ratio`` of the calls in ``window``, plus a floor per second."""

    enabled: bool = True
    ratio: float = 0.1
    min_per_second: float = 5.0
    window: float = 10.0


@dataclass(frozen=True, slots=True)
class CircuitBreakerSettings:
    """Open on server-class failures above ``failure_ratio`` over ``window``, for ``open_for``."""

    enabled: bool = True
    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    open_for: float = 15.0


@dataclass(frozen=True, slots=True)
class ConcurrencySettings:
    """The limiter on calls in flight; adaptive mode finds the vendor's quota by itself."""

    adaptive: bool = False
    initial: int = 4
    min: int = 1
    max: int = 200


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """Share the account's token and concurrency quota between processes through Redis.

    ``quota`` fixes the fleet's limit of calls in flight; ``None`` learns it (as the adaptive
    limiter does, between ``min`` and ``max``, from ``initial``). ``lease_ttl`` is how long a
    dead worker's slots stay taken. Without Redis each process keeps
    ``ceil(quota * fallback_share)`` slots (the ``concurrency`` settings when there is no quota)
    and its own token.
    """

    enabled: bool = False
    redis_url: str | None = None
    """Wins over ``redis_url_env``; a URL with a password belongs in the environment instead."""
    redis_url_env: str = "ASR_RESILIENCE_REDIS_URL"
    key_prefix: str = "asr_resilience:"
    quota: int | None = None
    lease_ttl: float = 30.0
    fallback_share: float = 0.25
    initial: int = 4
    min: int = 1
    max: int = 200


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    """How a real-time stream paces its audio against what the gateway has confirmed.

    ``max_unconfirmed`` is the most audio (seconds) a stream sends ahead of the last time the
    gateway reported (a sentence's beginning, an intermediate result or a sentence's end): a
    leg cut by the network then has at most that much (plus the open sentence) to replay.
    """

    max_unconfirmed: float = 3.0


@dataclass(frozen=True, slots=True)
class Rule:
    """A matcher and what to do when it matches; overrides of the defaults are optional."""

    name: str
    match: Matcher
    action: Action
    max_attempts: int | None = None
    backoff: Backoff | None = None
    line: int = 0
    """Line in the policy file that defined the rule (0 when built in code)."""
    file: str = ""
    """The policy file that defined the rule."""

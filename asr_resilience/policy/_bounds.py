"""The largest value ``policy check`` accepts for each number of a policy.

Every number has a ceiling so that a typo (an extra ``000``, ``1e12``) is refused when the policy
is checked instead of costing memory or time at the first call. The ceilings sit far above any
real policy (the shipped ones use a tenth of them or less); README "Policy files" lists them.
"""

from __future__ import annotations

MAX_ATTEMPTS = 1000
"""``max_attempts`` (defaults and rules): attempts in all, the first included."""
MAX_DEADLINE = 24 * 3600.0
"""``defaults.deadline``: one call, waits included (a batch file's whole transcription)."""
MAX_BACKOFF = 3600.0
"""``backoff.initial`` and ``backoff.max``: one wait between two attempts."""
MAX_MULTIPLIER = 10.0
"""``backoff.multiplier``: growth of the delay from one retry to the next."""
MAX_REFRESHES = 10
"""``tokens.max_refreshes``: token refreshes within one call."""
MAX_REFRESH_AHEAD = 12 * 3600.0
"""``tokens.refresh_ahead``: how long before expiry a token is renewed."""
MAX_WINDOW = 3600.0
"""``retry_budget.window`` and ``circuit_breaker.window``: the sliding window of the counts."""
MAX_MIN_PER_SECOND = 10_000.0
"""``retry_budget.min_per_second``: the floor of retries per second."""
MAX_MIN_CALLS = 1_000_000
"""``circuit_breaker.min_calls``: calls in the window before the ratio is trusted."""
MAX_OPEN_FOR = 3600.0
"""``circuit_breaker.open_for``: how long an open breaker refuses calls."""
MAX_CONCURRENCY = 10_000
"""``concurrency``/``fleet`` ``initial``, ``min``, ``max`` and ``fleet.quota``: calls in flight."""
MAX_LEASE_TTL = 3600.0
"""``fleet.lease_ttl``: how long a dead worker's slots stay taken."""
MAX_UNCONFIRMED = 600.0
"""``streaming.max_unconfirmed``: audio a stream sends ahead of what the gateway confirmed."""

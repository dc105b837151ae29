"""Where a :class:`~asr_resilience.tokens.TokenManager` shares its token beyond itself.

A manager always keeps its own copy of the token for the hot path; a *store* decides what a
refresh does before it calls the provider, and where the new token goes afterwards. The default,
:class:`LocalTokenStore`, shares nothing: every refresh calls the provider. A fleet store (the
Redis one in :mod:`asr_resilience.fleet._tokens`) lets one worker of many call the provider and
hands its token to the others. This module never imports the fleet: a store is passed in.

One refresh, as the manager runs it::

    claim(owner, now, refresh_ahead)
      -> Token         adopt it (another worker refreshed), done
      -> Claim.BUSY    another worker is refreshing: pause, claim again; after wait_timeout
                       call wait_expired() and go on as LOCAL
      -> Claim.LEAD    call the provider; publish(owner, token, now) on success,
                       release(owner) on failure
      -> Claim.LOCAL   call the provider and keep the token in this process (store unreachable)

``claim``, ``publish`` and ``release`` may do network I/O when ``blocking`` is true: an async
refresh then runs them in a worker thread. ``release`` may also be called on an event loop's
thread (a refresh cancelled by its loop shutting down); a blocking store must not wait there.
``reject`` is called by ``invalidate()`` and never does I/O.
"""

from __future__ import annotations

import enum
from typing import Protocol

from ._token import Token

__all__ = ["Claim", "LocalTokenStore", "TokenStore"]


class Claim(enum.Enum):
    """What a refresh does when the store has no fresh token for it."""

    LEAD = "lead"
    """Call the provider and publish the token: this refresh holds the store's refresh lock."""
    LOCAL = "local"
    """Call the provider and keep the token in this process (the store cannot be used now)."""
    BUSY = "busy"
    """Another worker is refreshing: ask again after a pause."""


class TokenStore(Protocol):
    """The steps a refresh takes with a shared store (see the module docstring for the order)."""

    @property
    def blocking(self) -> bool:
        """Whether the steps do I/O (async refreshes then run them in a worker thread)."""
        ...

    @property
    def wait_timeout(self) -> float:
        """Seconds to wait for another worker's refresh before calling the provider locally."""
        ...

    def claim(self, owner: str, now: float, refresh_ahead: float) -> Token | Claim:
        """A fresh shared token, or what this refresh should do instead."""
        ...

    def publish(self, owner: str, token: Token, now: float) -> None:
        """Share ``token`` and free the lock ``owner`` holds (best effort, never raises)."""
        ...

    def release(self, owner: str) -> None:
        """Free the lock ``owner`` holds after a failed refresh (best effort, never raises)."""
        ...

    def reject(self, value: str) -> None:
        """Remember that ``value`` failed, so the next claim drops it if still shared. No I/O."""
        ...

    def wait_expired(self, waited: float) -> None:
        """Told that a refresh stopped waiting for another worker after ``waited`` seconds."""
        ...


class LocalTokenStore:
    """No sharing: every refresh calls the provider (the default store)."""

    __slots__ = ()

    blocking = False
    wait_timeout = 0.0

    def claim(self, owner: str, now: float, refresh_ahead: float) -> Token | Claim:
        """Always :attr:`Claim.LOCAL`."""
        return Claim.LOCAL

    def publish(self, owner: str, token: Token, now: float) -> None:
        """Nothing to share."""

    def release(self, owner: str) -> None:
        """Nothing to free."""

    def reject(self, value: str) -> None:
        """Nothing to forget."""

    def wait_expired(self, waited: float) -> None:
        """Never waits."""

    def __repr__(self) -> str:
        return "LocalTokenStore()"

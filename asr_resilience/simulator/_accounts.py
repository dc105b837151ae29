"""Accounts of the simulated service: appkeys, AccessKey pairs, tokens, and concurrency quotas.

docs/protocol.md "CreateToken" and "Limits": tokens come from CreateToken with an ExpireTime; a
new token does not invalidate the old one; the quota belongs to the account (trial 2, commercial
200 connections) and a connection holds its slot from the start directive until it closes.
docs/protocol.md "Credentials": an account may also sign with STS credentials (an ``STS.``
AccessKey pair and a security token that expire together), which tests mint with
:meth:`AccountStore.issue_sts`.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Kind = Literal["trial", "commercial"]
_MAX_STS = 10_000
DEFAULT_QUOTA: dict[str, int] = {"trial": 2, "commercial": 200}


@dataclass
class Account:
    """One vendor account."""

    name: str = "default"
    appkeys: tuple[str, ...] = ("default-appkey",)
    access_key_id: str = "LTAI-simulator-default"
    access_key_secret: str = "simulator-default-secret"
    kind: Kind = "commercial"
    quota: int | None = None
    """Concurrent connections; None = the kind's default (trial 2, commercial 200)."""
    trial_expired: bool = False
    """A trial that ended without a commercial plan: 40000010 on every task."""
    unrouted_appkeys: tuple[str, ...] = ()
    """Appkeys that exist but have no route (41000003)."""
    uid: str = field(default_factory=lambda: str(secrets.randbelow(10**15)).zfill(16))

    @property
    def effective_quota(self) -> int:
        return self.quota if self.quota is not None else DEFAULT_QUOTA[self.kind]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Account:
        """An account from a config mapping (keys as the dataclass fields)."""
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown account keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        for key in ("appkeys", "unrouted_appkeys"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class StsCredentials:
    """Temporary credentials of an account: AccessKey pair, security token, expiry (unix s)."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    account: str
    expires_at: float

    def __repr__(self) -> str:  # the secret and the token stay out of test output
        return f"StsCredentials(access_key_id={self.access_key_id!r}, account={self.account!r})"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    value: str
    account: str
    expires_at: float


class TokenProblem(Exception):
    """Why a token is refused: ``unknown`` (403 at the handshake), ``expired``, ``revoked``."""

    def __init__(self, reason: Literal["unknown", "expired", "revoked"]) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountStore:
    """Accounts, the tokens issued to them and the slots in use; thread-safe."""

    def __init__(
        self,
        accounts: Iterable[Account] = (),
        *,
        token_ttl: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()
        self._slots: dict[str, int] = {}
        self._sts: collections.OrderedDict[str, StsCredentials] = collections.OrderedDict()
        self.token_ttl = token_ttl
        self.clock = clock
        for account in accounts:
            self.add(account)
        if not self._accounts:
            self.add(Account())

    @classmethod
    def from_file(cls, path: str, **options: Any) -> AccountStore:
        """Accounts from a YAML file: ``accounts: [{name, appkeys, access_key_id, ...}, ...]``."""
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
            raise ValueError(f"{path}: expected a mapping with an 'accounts' list")
        return cls([Account.from_mapping(item) for item in data["accounts"]], **options)

    # -- accounts -----------------------------------------------------------------------

    def add(self, account: Account) -> Account:
        with self._lock:
            self._accounts[account.name] = account
            self._slots.setdefault(account.name, 0)
        return account

    @property
    def default(self) -> Account:
        with self._lock:
            return next(iter(self._accounts.values()))

    def get(self, name: str) -> Account:
        with self._lock:
            return self._accounts[name]

    def by_access_key(self, access_key_id: str) -> Account | None:
        with self._lock:
            for account in self._accounts.values():
                if account.access_key_id == access_key_id:
                    return account
        return None

    def appkey_owner(self, appkey: str) -> Account | None:
        with self._lock:
            for account in self._accounts.values():
                if appkey in account.appkeys or appkey in account.unrouted_appkeys:
                    return account
        return None

    # -- STS credentials ----------------------------------------------------------------

    def issue_sts(self, account: Account | None = None, ttl: float = 3600.0) -> StsCredentials:
        """New STS credentials of ``account`` (default: the default account) that expire in
        ``ttl`` seconds of the store's clock (negative: already expired); the newest 10,000
        are kept."""
        owner = account if account is not None else self.default
        issued = StsCredentials(
            access_key_id="STS." + secrets.token_hex(12),
            access_key_secret=secrets.token_urlsafe(24),
            security_token="CAIS" + secrets.token_urlsafe(48),
            account=owner.name,
            expires_at=self.clock() + ttl,
        )
        with self._lock:
            self._sts[issued.access_key_id] = issued
            while len(self._sts) > _MAX_STS:
                self._sts.popitem(last=False)
        return issued

    def issued_sts(self) -> tuple[StsCredentials, ...]:
        """Every STS credential issued (the newest 10,000), oldest first."""
        with self._lock:
            return tuple(self._sts.values())

    def sts_credentials(self, access_key_id: str) -> StsCredentials | None:
        """The STS credentials with this AccessKeyId, expired or not; None if never issued."""
        with self._lock:
            return self._sts.get(access_key_id)

    # -- tokens -------------------------------------------------------------------------

    def issue_token(self, account: Account, ttl: float | None = None) -> IssuedToken:
        """A new token for ``account`` (older tokens stay valid)."""
        lifetime = self.token_ttl if ttl is None else ttl
        issued = IssuedToken(secrets.token_hex(16), account.name, self.clock() + lifetime)
        with self._lock:
            self._tokens[issued.value] = issued
        return issued

    def check_token(self, value: str) -> Account:
        """The account a token belongs to; TokenProblem when it is unknown, expired or revoked."""
        with self._lock:
            issued = self._tokens.get(value)
            if issued is None:
                raise TokenProblem("unknown")
            if value in self._revoked:
                raise TokenProblem("revoked")
            if self.clock() >= issued.expires_at:
                raise TokenProblem("expired")
            return self._accounts[issued.account]

    def known_token(self, value: str) -> bool:
        with self._lock:
            return value in self._tokens

    def revoke(self, value: str | None = None, *, account: str | None = None) -> int:
        """Revoke one token, or every token of an account, or every token; returns how many."""
        with self._lock:
            targets = [
                t.value
                for t in self._tokens.values()
                if (value is None or t.value == value) and (account is None or t.account == account)
            ]
            self._revoked.update(targets)
            return len(targets)

    def expire_all(self) -> None:
        """Make every issued token expire now (as if a day had passed)."""
        with self._lock:
            now = self.clock()
            for key, issued in list(self._tokens.items()):
                self._tokens[key] = IssuedToken(issued.value, issued.account, now)

    # -- quota --------------------------------------------------------------------------

    def acquire_slot(self, account: Account) -> bool:
        """Take one of the account's concurrent slots; False when the quota is used up."""
        with self._lock:
            used = self._slots.get(account.name, 0)
            if used >= account.effective_quota:
                return False
            self._slots[account.name] = used + 1
            return True

    def set_quota(self, name: str, quota: int | None) -> None:
        """Change account ``name``'s quota while it runs (None: the kind's default).

        Sessions already holding a slot keep it; start directives are checked against the new
        quota from now on, so a lowered quota refuses new sessions until enough have ended.
        """
        if quota is not None and quota < 0:
            raise ValueError(f"quota must be >= 0, not {quota!r}")
        with self._lock:
            self._accounts[name].quota = quota

    def release_slot(self, account: Account) -> None:
        with self._lock:
            self._slots[account.name] = max(0, self._slots.get(account.name, 0) - 1)

    def slots_in_use(self, account: Account) -> int:
        with self._lock:
            return self._slots.get(account.name, 0)

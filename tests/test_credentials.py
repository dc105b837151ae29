"""Credentials: AliyunTokenProvider finds them as the vendor's tools do (an explicit pair, the
environment, the vendor's default chain: profile file, credentials URI), STS credentials work
end to end against the simulator's CreateToken over loopback, an expired STS token is refused
with the vendor's error, rotating credentials are asked for again, and no secret or security
token shows in an error or a log line.

The vendor's credentials library reads its environment variables once, when it is first
imported, so the default chain is run in a fresh interpreter (as an application starts) with the
environment each test gives it; the metadata service of a real ECS instance is switched off
there (``ALIBABA_CLOUD_ECS_METADATA_DISABLED``), as it cannot be reached from here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asr_resilience._errors import TokenRefreshError
from asr_resilience.simulator import SimulatorThread, StsCredentials
from asr_resilience.simulator._meta import META_VERSION
from asr_resilience.simulator._signing import sign_rpc
from asr_resilience.tokens import (
    AliyunTokenProvider,
    CredentialsError,
    TokenManager,
    TokenProviderError,
)

from .test_secrets import assert_no_trace

pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
pytest.importorskip("alibabacloud_credentials.client")

# On Python >= 3.12 the Tea client stamps x-acs-date with datetime.utcnow(), which warns (see
# tests/test_meta.py).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcnow\(\) is deprecated"
    r":DeprecationWarning:alibabacloud_tea_openapi\.utils"
)

CHAIN_TIMEOUT = 60.0  # a fresh interpreter importing the vendor's clients; a bug fails, not hangs


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A simulator on loopback ports, in a background thread."""
    with SimulatorThread() as simulator:
        yield simulator


def owner(sim: SimulatorThread, token: str) -> str:
    """The name of the account a token was issued to."""
    return sim.store.check_token(token).name


# -- STS credentials against the simulator's CreateToken ------------------------------------------


async def test_sts_triple_gets_a_token(sim: SimulatorThread) -> None:
    """An STS AccessKey pair with its security token gets a token of the account, async and sync."""
    sts = sim.issue_sts()
    provider = AliyunTokenProvider(
        sts.access_key_id,
        sts.access_key_secret,
        security_token=sts.security_token,
        endpoint=sim.meta_url,
    )
    assert owner(sim, (await provider()).value) == "default"
    assert owner(sim, provider.sync().value) == "default"


def test_sts_triple_from_the_environment(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET and ALIBABA_CLOUD_SECURITY_TOKEN are one STS triple."""
    sts = sim.issue_sts()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sts.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sts.access_key_secret)
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", sts.security_token)
    provider = AliyunTokenProvider(endpoint=sim.meta_url)
    assert provider.access_key_id == sts.access_key_id
    assert owner(sim, provider.sync().value) == "default"


def test_environment_security_token_does_not_join_an_explicit_pair(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair passed in code signs alone: the environment's STS token belongs to its own pair."""
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", sim.issue_sts().security_token)
    info = sim.info()
    provider = AliyunTokenProvider(
        info["access_key_id"], info["access_key_secret"], endpoint=sim.meta_url
    )
    assert owner(sim, provider.sync().value) == "default"


async def test_expired_sts_token_is_refused_with_the_vendor_error(sim: SimulatorThread) -> None:
    """An expired STS token: InvalidSecurityToken.Expired (HTTP 403), not retried, no secret."""
    sts = sim.issue_sts(ttl=-1)
    provider = AliyunTokenProvider(
        sts.access_key_id,
        sts.access_key_secret,
        security_token=sts.security_token,
        endpoint=sim.meta_url,
    )
    with pytest.raises(TokenProviderError) as caught:
        await provider()
    error = caught.value
    assert (error.code, error.http_status, error.retryable) == (
        "InvalidSecurityToken.Expired",
        403,
        False,
    )
    assert "Specified SecurityToken is expired." in str(error)
    assert_no_trace(error, sts.access_key_secret, sts.security_token)
    manager = TokenManager(provider)
    with pytest.raises(TokenRefreshError) as refused:
        await manager.get()
    assert manager.provider_calls == 1  # not retryable: one call, then the error
    assert "InvalidSecurityToken.Expired" in str(refused.value)
    assert_no_trace(refused.value, sts.access_key_secret, sts.security_token)


def test_sts_token_must_match_its_pair(sim: SimulatorThread) -> None:
    """Another pair's security token is InvalidSecurityToken.MismatchWithAccessKey."""
    sts, other = sim.issue_sts(), sim.issue_sts()
    provider = AliyunTokenProvider(
        sts.access_key_id,
        sts.access_key_secret,
        security_token=other.security_token,
        endpoint=sim.meta_url,
    )
    with pytest.raises(TokenProviderError) as caught:
        provider.sync()
    assert caught.value.code == "InvalidSecurityToken.MismatchWithAccessKey"
    assert_no_trace(caught.value, sts.access_key_secret, other.security_token)


def rpc_create_token(sim: SimulatorThread, sts: StsCredentials, **extra: str) -> httpx.Response:
    """CreateToken signed RPC v1 style (aliyun-python-sdk-core's way) with an STS pair."""
    params = {"Action": "CreateToken", "Version": META_VERSION, "RegionId": "cn-shanghai"}
    signed = sign_rpc("GET", {**params, **extra}, sts.access_key_id, sts.access_key_secret)
    return httpx.get(sim.meta_url, params=signed, timeout=10)


def test_rpc_signature_carries_the_security_token_in_the_query(sim: SimulatorThread) -> None:
    """RPC v1: SecurityToken in the signed query; without it, MissingSecurityToken."""
    sts = sim.issue_sts()
    answer = rpc_create_token(sim, sts, SecurityToken=sts.security_token)
    assert answer.status_code == 200
    assert owner(sim, answer.json()["Token"]["Id"]) == "default"
    missing = rpc_create_token(sim, sts)
    assert (missing.status_code, missing.json()["Code"]) == (400, "MissingSecurityToken")
    expired = sim.issue_sts(ttl=-5)
    refused = rpc_create_token(sim, expired, SecurityToken=expired.security_token)
    assert (refused.status_code, refused.json()["Code"]) == (403, "InvalidSecurityToken.Expired")
    assert expired.security_token not in refused.text


# -- a credentials client of the caller's: rotation ------------------------------------------------


def credentials_uri_client(uri: str) -> Any:
    """The vendor's credentials client reading STS credentials from ``uri``."""
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    return Client(Config(type="credentials_uri", credentials_uri=uri))


def sts_issued(sim: SimulatorThread) -> int:
    return len(sim.store.issued_sts())


async def test_rotating_credentials_are_asked_for_at_each_fetch(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials within 15 min of expiry are renewed by the vendor's client before the next
    CreateToken: two fetches, two STS pairs, two valid tokens; the vendor's log of the renewals
    repeats no secret."""
    caplog.set_level(logging.DEBUG, logger="credentials")
    before = set(sim.store.issued_sts())
    provider = AliyunTokenProvider(
        credentials=credentials_uri_client(sim.credentials_uri(ttl=600)), endpoint=sim.meta_url
    )
    assert provider.access_key_id is None
    assert provider.identity is None
    first = await provider()
    second = provider.sync()
    issued = set(sim.store.issued_sts()) - before
    assert len(issued) == 2
    assert first.value != second.value
    assert {owner(sim, first.value), owner(sim, second.value)} == {"default"}
    assert "stale time is in the past" in caplog.text  # the vendor's client logged the renewal
    for sts in issued:
        assert sts.access_key_secret not in caplog.text
        assert sts.security_token not in caplog.text


async def test_long_lived_credentials_are_cached_by_the_vendor_client(
    sim: SimulatorThread,
) -> None:
    """Credentials far from expiry are fetched once and reused for later tokens."""
    provider = AliyunTokenProvider(
        credentials=credentials_uri_client(sim.credentials_uri(ttl=3600)), endpoint=sim.meta_url
    )
    before = sts_issued(sim)
    await provider()
    await provider()
    assert sts_issued(sim) - before == 1


def test_credentials_object_must_be_a_credentials_client() -> None:
    """credentials= must have get_credential_async; a pair and credentials= together are refused."""
    with pytest.raises(TypeError, match="get_credential"):
        AliyunTokenProvider(credentials=object())
    with pytest.raises(ValueError, match="not both"):
        AliyunTokenProvider("LTAI-x", "secret-x-long", credentials=credentials_uri_client("x"))


async def test_a_failing_credentials_source_is_a_clear_error(sim: SimulatorThread) -> None:
    """A source that fails: a non-retryable TokenProviderError saying where to put credentials."""
    provider = AliyunTokenProvider(
        credentials=credentials_uri_client(sim.credentials_uri(ttl=float("nan"))),
        endpoint=sim.meta_url,
    )
    with pytest.raises(TokenProviderError) as caught:
        await provider()
    assert caught.value.code is None
    assert not caught.value.retryable
    assert isinstance(caught.value, CredentialsError)
    assert str(caught.value).startswith("no Alibaba Cloud credentials (CredentialException: ")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in str(caught.value)


# -- the default chain, in a fresh interpreter -----------------------------------------------------

CHAIN_SCRIPT = """
import asyncio, json, sys
from asr_resilience.tokens import AliyunTokenProvider, TokenProviderError

provider = AliyunTokenProvider(endpoint=sys.argv[1])
out = {"access_key_id": provider.access_key_id, "tokens": []}
try:
    for _ in range(int(sys.argv[2])):
        out["tokens"].append(asyncio.run(provider()).value)
except TokenProviderError as exc:
    out["error"] = {"code": exc.code, "text": str(exc), "retryable": exc.retryable}
print(json.dumps(out))
"""


def run_chain(
    sim: SimulatorThread, home: Path, env: dict[str, str], fetches: int = 1
) -> tuple[dict[str, Any], str]:
    """Run CHAIN_SCRIPT with HOME=``home`` and only ``env`` of the vendor's variables; its JSON
    line and its stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    clean.pop("NLS_META_URL", None)
    clean.pop("NLS_REGION", None)
    clean.update(HOME=str(home), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", **env)
    done = subprocess.run(
        [sys.executable, "-c", CHAIN_SCRIPT, sim.meta_url, str(fetches)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=CHAIN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_chain_reads_the_environment_pair(sim: SimulatorThread, tmp_path: Path) -> None:
    """The environment's AccessKey pair, as the vendor's tools read it."""
    info = sim.info()
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": info["access_key_id"],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": info["access_key_secret"],
    }
    out, _ = run_chain(sim, tmp_path, env)
    assert out["access_key_id"] == info["access_key_id"]
    assert owner(sim, out["tokens"][0]) == "default"


def test_chain_reads_environment_sts(sim: SimulatorThread, tmp_path: Path) -> None:
    """The environment's STS triple, as the vendor's tools read it; expired → the vendor's error."""
    sts = sim.issue_sts()
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sts.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sts.access_key_secret,
        "ALIBABA_CLOUD_SECURITY_TOKEN": sts.security_token,
    }
    out, _ = run_chain(sim, tmp_path, env)
    assert owner(sim, out["tokens"][0]) == "default"
    old = sim.issue_sts(ttl=-1)
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": old.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": old.access_key_secret,
        "ALIBABA_CLOUD_SECURITY_TOKEN": old.security_token,
    }
    out, err = run_chain(sim, tmp_path, env)
    assert out["tokens"] == []
    assert out["error"]["code"] == "InvalidSecurityToken.Expired"
    assert not out["error"]["retryable"]
    for secret in (old.access_key_secret, old.security_token):
        assert secret not in out["error"]["text"]
        assert secret not in err


def write_profiles(home: Path, sections: dict[str, dict[str, str]]) -> Path:
    """~/.alibabacloud/credentials.ini under ``home`` with ``sections``."""
    folder = home / ".alibabacloud"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "credentials.ini"
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_chain_reads_the_profile_file(sim: SimulatorThread, tmp_path: Path) -> None:
    """~/.alibabacloud/credentials.ini: the default profile, or the one ALIBABA_CLOUD_PROFILE
    names, or a file ALIBABA_CLOUD_CREDENTIALS_FILE points at."""
    sim.add_account(
        name="profiled",
        appkeys=("profiled-appkey",),
        access_key_id="LTAI-profiled",
        access_key_secret="profiled-secret-Qw3rTy",
    )
    info = sim.info()
    sections = {
        "default": {
            "type": "access_key",
            "access_key_id": info["access_key_id"],
            "access_key_secret": info["access_key_secret"],
        },
        "project": {
            "type": "access_key",
            "access_key_id": "LTAI-profiled",
            "access_key_secret": "profiled-secret-Qw3rTy",
        },
    }
    path = write_profiles(tmp_path, sections)
    out, _ = run_chain(sim, tmp_path, {})
    assert out["access_key_id"] is None  # found by the chain, not read up front
    assert owner(sim, out["tokens"][0]) == "default"
    out, _ = run_chain(sim, tmp_path, {"ALIBABA_CLOUD_PROFILE": "project"})
    assert owner(sim, out["tokens"][0]) == "profiled"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = path.rename(tmp_path / "team.ini")
    out, _ = run_chain(sim, elsewhere, {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(moved)})
    assert owner(sim, out["tokens"][0]) == "default"


def test_chain_renews_rotating_credentials(sim: SimulatorThread, tmp_path: Path) -> None:
    """ALIBABA_CLOUD_CREDENTIALS_URI handing out short-lived STS credentials: each CreateToken
    asks the chain again and signs with the new pair; nothing logged repeats a secret."""
    before = set(sim.store.issued_sts())
    uri = sim.credentials_uri(ttl=300)
    out, err = run_chain(sim, tmp_path, {"ALIBABA_CLOUD_CREDENTIALS_URI": uri}, fetches=3)
    issued = set(sim.store.issued_sts()) - before
    assert len(issued) == 3
    assert len(set(out["tokens"])) == 3
    assert {owner(sim, token) for token in out["tokens"]} == {"default"}
    for sts in issued:
        assert sts.access_key_secret not in err
        assert sts.security_token not in err


def test_chain_without_credentials_says_where_to_put_them(tmp_path: Path) -> None:
    """No credentials anywhere: a non-retryable error naming the variables, no traceback."""
    with SimulatorThread() as lonely:
        out, err = run_chain(lonely, tmp_path, {})
    assert out["tokens"] == []
    assert out["error"]["code"] is None
    assert not out["error"]["retryable"]
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in out["error"]["text"]
    assert "Traceback" not in err


def test_sts_credentials_expire_on_the_store_clock(sim: SimulatorThread) -> None:
    """issue_sts(ttl) sets the expiry on the store's clock; repr keeps the secrets out."""
    sts = sim.issue_sts(ttl=120)
    assert sts.expires_at == pytest.approx(time.time() + 120, abs=5)
    assert sts.access_key_secret not in repr(sts)
    assert sts.security_token not in repr(sts)

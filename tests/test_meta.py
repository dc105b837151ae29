"""Tests for the simulated meta service (CreateToken) and AliyunTokenProvider, over real loopback.

The official clients — the Tea/OpenAPI client (V3 ACS3-HMAC-SHA256) and aliyun-python-sdk-core
behind ``nls.token.getToken`` (RPC v1 HMAC-SHA1) — talk to the simulator served from a
background thread's event loop; hand-signed requests (``signing``) check the refusals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from aiohttp import web

from asr_resilience._errors import TokenRefreshError
from asr_resilience.simulator._accounts import Account, AccountStore
from asr_resilience.simulator._meta import MAX_CLOCK_SKEW, META_VERSION, add_meta_routes
from asr_resilience.simulator._signing import (
    V3_ALGORITHM,
    format_timestamp,
    parse_timestamp,
    parse_v3_authorization,
    rpc_signature,
    rpc_string_to_sign,
    sha256_hex,
    sign_rpc,
    sign_v3,
)
from asr_resilience.tokens import Token, TokenManager
from asr_resilience.tokens._aliyun import (
    ACCESS_KEY_ID_ENV,
    ACCESS_KEY_SECRET_ENV,
    AliyunTokenProvider,
    TokenProviderError,
)

AKID = "LTAI-test-main-0001"
SECRET = "main-secret-Zq8vR2mW4kX7"
UID = "1234567890123456"
OTHER_AKID = "LTAI-test-other-0002"
OTHER_SECRET = "other-secret-Hn3pT6yB9cD1"
WRONG_SECRET = "wrong-secret-Jf5sL8uQ0eG2"
TTL = 3600.0
WAIT = 10.0  # safety timeout for server start/stop: a bug fails the test instead of hanging it
POP_KEYS = {"RequestId", "HostId", "Code", "Message"}

# On Python >= 3.12 the Tea client stamps x-acs-date with datetime.utcnow(), which warns; under
# `filterwarnings = error` the client swallows that error and fails the call (UnretryableException).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcnow\(\) is deprecated"
    r":DeprecationWarning:alibabacloud_tea_openapi\.utils"
)


# -- a server in a background thread ----------------------------------------------------------


class Server:
    """An aiohttp app served on 127.0.0.1:<free port> by a background thread's event loop."""

    def __init__(self, setup: Callable[[web.Application], object]) -> None:
        self._setup = setup
        self._started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="meta-test-server", daemon=True)
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/"

    def __enter__(self) -> Server:
        self._thread.start()
        self.port = self._started.result(timeout=WAIT)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        app = web.Application()
        self._setup(app)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set_result(runner.addresses[0][1])
            await self._stop.wait()
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise
        finally:
            await runner.cleanup()


def meta_server(store: AccountStore, *, throttle_interval: float = 0.0) -> Server:
    """A Server with the meta routes of ``store``."""
    return Server(lambda app: add_meta_routes(app, store, throttle_interval=throttle_interval))


@pytest.fixture
def store() -> AccountStore:
    """Two accounts with known AccessKey pairs; tokens live TTL seconds."""
    return AccountStore(
        [
            Account(name="main", access_key_id=AKID, access_key_secret=SECRET, uid=UID),
            Account(name="other", access_key_id=OTHER_AKID, access_key_secret=OTHER_SECRET),
        ],
        token_ttl=TTL,
    )


@pytest.fixture
def server(store: AccountStore) -> Iterator[Server]:
    """The meta endpoint, never throttled."""
    with meta_server(store) as running:
        yield running


@pytest.fixture
def throttled(store: AccountStore) -> Iterator[Server]:
    """The meta endpoint allowing one call per hour per AccessKeyId."""
    with meta_server(store, throttle_interval=3600.0) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """A plain HTTP client for hand-signed requests to ``server``."""
    with httpx.Client(base_url=server.url, trust_env=False, timeout=WAIT) as client:
        yield client


# -- the official clients, imported as the optional extras they are ----------------------------


def tea_client(server: Server, *, key_id: str = AKID, secret: str = SECRET) -> Any:
    """The vendor's Tea/OpenAPI CreateToken client pointed at ``server`` over plain HTTP."""
    client_module = pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    models = pytest.importorskip("alibabacloud_tea_openapi.models")
    config = models.Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=server.host,  # host:port; the scheme goes in protocol
        protocol="http",
        region_id="cn-shanghai",
    )
    return client_module.Client(config)


def nls_get_token(server: Server, *, key_id: str = AKID, secret: str = SECRET) -> Any:
    """``nls.token.getToken`` against ``server``: its ``url`` is the host, ``domain`` the region.

    aliyun-python-sdk-core defaults to plain HTTP and, with ``url='127.0.0.1:PORT'``, requests
    ``http://127.0.0.1:PORT/?...``: no other redirection is needed.
    """
    token_module = pytest.importorskip("nls.token")
    return token_module.getToken(key_id, secret, domain="cn-shanghai", url=server.host)


def tea_error(call: Callable[[], Any]) -> Any:
    """The Tea client exception ``call`` raises."""
    exceptions = pytest.importorskip("alibabacloud_tea_openapi.exceptions")
    with pytest.raises(exceptions.AlibabaCloudException) as caught:
        call()
    return caught.value


def core_error(call: Callable[[], Any]) -> Any:
    """The aliyun-python-sdk-core ServerException ``call`` raises."""
    exceptions = pytest.importorskip("aliyunsdkcore.acs_exception.exceptions")
    with pytest.raises(exceptions.ServerException) as caught:
        call()
    return caught.value


def pop_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The POP error body of ``response``, checked for status, code, shape and secrecy."""
    assert SECRET not in response.text
    assert OTHER_SECRET not in response.text
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == POP_KEYS
    assert body["Code"] == code, body
    return body


def rpc_params(**extra: str) -> dict[str, str]:
    """CreateToken's own RPC parameters, plus ``extra``."""
    return {"Action": "CreateToken", "Version": META_VERSION, "RegionId": "cn-shanghai", **extra}


def v3_headers(server: Server, **extra: str) -> dict[str, str]:
    """CreateToken's own V3 headers for ``server``, plus ``extra``."""
    return {
        "host": server.host,
        "x-acs-action": "CreateToken",
        "x-acs-version": META_VERSION,
        "accept": "application/json",
        **extra,
    }


def assert_fresh_token(store: AccountStore, value: str, expires_at: float) -> None:
    """``value`` was issued by ``store`` to the main account and expires in TTL seconds."""
    assert store.check_token(value).access_key_id == AKID
    assert abs(expires_at - (time.time() + TTL)) <= 2


# -- signing, checked against the vendor's own code (no network) -------------------------------


def test_rpc_signature_matches_aliyunsdkcore() -> None:
    """signing's RPC v1 string to sign and signature equal aliyun-python-sdk-core's."""
    composer = pytest.importorskip("aliyunsdkcore.auth.composer.rpc_signature_composer")
    params = rpc_params(Note="a b*c~d/é+ü&=x")
    url, string_to_sign = composer.get_signed_url(dict(params), AKID, SECRET, "JSON", "POST", {})
    sent = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert rpc_string_to_sign("POST", sent) == string_to_sign
    assert rpc_signature("POST", sent, SECRET) == sent["Signature"]
    assert rpc_signature("POST", sent, WRONG_SECRET) != sent["Signature"]


def test_v3_authorization_matches_tea_openapi() -> None:
    """signing's V3 Authorization equals alibabacloud_tea_openapi's for the same request."""
    utils = pytest.importorskip("alibabacloud_tea_openapi.utils")
    query = {"b": "x y*~", "a": "é/1"}
    body = b"Extra=1"
    signed = sign_v3(
        "POST",
        "/",
        {"host": "nls-meta.cn-shanghai.aliyuncs.com", "x-acs-action": "CreateToken"},
        AKID,
        SECRET,
        query=query,
        body=body,
    )
    headers = {k: v for k, v in signed.items() if k != "Authorization"}
    request = types.SimpleNamespace(method="POST", pathname="/", query=query, headers=headers)
    vendor = utils.Utils.get_authorization(request, V3_ALGORITHM, sha256_hex(body), AKID, SECRET)
    assert signed["Authorization"] == vendor


def test_parse_v3_authorization_refuses_malformed_headers() -> None:
    """A malformed ACS3 Authorization header is a ValueError, a good one parses."""
    good = parse_v3_authorization(f"{V3_ALGORITHM} Credential=id,SignedHeaders=a;b,Signature=ff")
    assert (good.access_key_id, good.signed_headers, good.signature) == ("id", ("a", "b"), "ff")
    for bad in (
        "Bearer abc",
        f"{V3_ALGORITHM}",
        f"{V3_ALGORITHM} Credential=id,Signature=ff",
        f"{V3_ALGORITHM} Credential=id,SignedHeaders=A;b,Signature=ff",
        f"{V3_ALGORITHM} Credential=id,SignedHeaders=a,Signature=ff,Extra=1",
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies by mistake
            parse_v3_authorization(bad)


def test_timestamps_round_trip_and_refuse_other_forms() -> None:
    """format_timestamp/parse_timestamp round-trip; other forms are ValueError."""
    assert parse_timestamp(format_timestamp(1_700_000_000.0)) == 1_700_000_000.0
    for bad in ("2024-01-01 00:00:00", "2024-01-01T00:00:00+08:00", "yesterday"):
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(bad)


# -- the official clients against the simulator ----------------------------------------------


def test_tea_client_sync_gets_token(server: Server, store: AccountStore) -> None:
    """The Tea client's blocking create_token gets a token the store knows, ExpireTime = now+ttl."""
    response = tea_client(server).create_token()
    assert response.status_code == 200
    token = response.body.token
    assert_fresh_token(store, token.id, token.expire_time)
    assert isinstance(token.expire_time, int)
    assert token.user_id == UID
    assert response.body.request_id
    assert response.body.nls_request_id


async def test_tea_client_async_and_sync_in_a_thread_get_tokens(
    server: Server, store: AccountStore
) -> None:
    """create_token_async, and create_token run in a worker thread, each get a distinct token."""
    client = tea_client(server)
    from_async, from_thread = await asyncio.gather(
        client.create_token_async(), asyncio.to_thread(client.create_token)
    )
    for response in (from_async, from_thread):
        assert_fresh_token(store, response.body.token.id, response.body.token.expire_time)
    assert from_async.body.token.id != from_thread.body.token.id


def test_nls_get_token_gets_token(server: Server, store: AccountStore) -> None:
    """The official SDK's nls.token.getToken (RPC v1 HMAC-SHA1) gets a token the store knows."""
    value = nls_get_token(server)
    assert isinstance(value, str)
    assert store.check_token(value).access_key_id == AKID


def test_wrong_secret_is_signature_does_not_match_for_both_clients(server: Server) -> None:
    """A wrong secret: SignatureDoesNotMatch, HTTP 400, from the Tea client and from getToken."""
    tea = tea_error(tea_client(server, secret=WRONG_SECRET).create_token)
    assert (tea.code, tea.status_code) == ("SignatureDoesNotMatch", 400)
    assert "server string to sign is:" in tea.data["Message"]
    core = core_error(lambda: nls_get_token(server, secret=WRONG_SECRET))
    assert (core.get_error_code(), core.get_http_status()) == ("SignatureDoesNotMatch", 400)
    for error in (tea, core):
        assert WRONG_SECRET not in str(error)
        assert SECRET not in str(error)


def test_unknown_access_key_id_is_not_found_for_both_clients(server: Server) -> None:
    """An AccessKeyId no account has: InvalidAccessKeyId.NotFound, HTTP 404, from both clients."""
    tea = tea_error(tea_client(server, key_id="LTAI-nobody").create_token)
    assert (tea.code, tea.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    core = core_error(lambda: nls_get_token(server, key_id="LTAI-nobody"))
    assert (core.get_error_code(), core.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)


def test_second_call_within_throttle_interval_is_throttled(
    throttled: Server, store: AccountStore
) -> None:
    """Within throttle_interval a second call of one AccessKeyId is Throttling.User; others pass."""
    first = tea_client(throttled).create_token()
    assert_fresh_token(store, first.body.token.id, first.body.token.expire_time)
    tea = tea_error(tea_client(throttled).create_token)
    assert (tea.code, tea.status_code) == ("Throttling.User", 400)
    assert tea.data["Message"] == "Request was denied due to user flow control."
    core = core_error(lambda: nls_get_token(throttled))
    assert core.get_error_code() == "Throttling.User"
    other = tea_client(throttled, key_id=OTHER_AKID, secret=OTHER_SECRET).create_token()
    assert store.check_token(other.body.token.id).access_key_id == OTHER_AKID


def test_refused_calls_do_not_count_toward_throttling(throttled: Server) -> None:
    """A call refused for its signature does not use up the AccessKeyId's throttle interval."""
    tea_error(tea_client(throttled, secret=WRONG_SECRET).create_token)
    assert tea_client(throttled).create_token().status_code == 200


# -- hand-signed requests: what is accepted and what is refused ---------------------------------


def test_success_body_has_the_vendor_shape(http: httpx.Client, store: AccountStore) -> None:
    """A signed GET gets {RequestId, NlsRequestId, Token: {Id, ExpireTime, UserId}}."""
    response = http.get("/", params=sign_rpc("GET", rpc_params(), AKID, SECRET))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"RequestId", "NlsRequestId", "Token"}
    assert set(body["Token"]) == {"Id", "ExpireTime", "UserId"}
    assert body["Token"]["UserId"] == UID
    assert_fresh_token(store, body["Token"]["Id"], body["Token"]["ExpireTime"])


def test_post_signs_query_and_form_body_together(http: httpx.Client) -> None:
    """A POST whose signed parameters are split between query and form body is accepted."""
    signed = sign_rpc("POST", rpc_params(Extra="from the body"), AKID, SECRET)
    form = {"Extra": signed.pop("Extra")}
    assert http.post("/", params=signed, data=form).status_code == 200
    tampered = {"Extra": "changed"}
    pop_error(http.post("/", params=signed, data=tampered), 400, "SignatureDoesNotMatch")


def test_tampered_query_parameter_is_refused(http: httpx.Client) -> None:
    """Changing, adding or dropping a parameter after signing is SignatureDoesNotMatch."""
    signed = sign_rpc("POST", rpc_params(), AKID, SECRET)
    for tampered in (
        {**signed, "RegionId": "cn-beijing"},
        {**signed, "Extra": "1"},
        {k: v for k, v in signed.items() if k != "RegionId"},
    ):
        body = pop_error(http.post("/", params=tampered), 400, "SignatureDoesNotMatch")
        assert body["Message"].startswith("Specified signature does not match")
    # A signature made for GET does not serve a POST.
    signed_get = sign_rpc("GET", rpc_params(), AKID, SECRET)
    pop_error(http.post("/", params=signed_get), 400, "SignatureDoesNotMatch")


def test_tampered_v3_request_is_refused(http: httpx.Client, server: Server) -> None:
    """A V3 request with a changed header, body or an unsigned x-acs header is refused."""
    signed = sign_v3("POST", "/", v3_headers(server), AKID, SECRET)
    assert http.post("/", headers=signed).status_code == 200
    fresh = sign_v3("POST", "/", v3_headers(server), AKID, SECRET)
    pop_error(http.post("/", headers={**fresh, "accept": "text/xml"}), 400, "SignatureDoesNotMatch")
    pop_error(http.post("/", headers=fresh, params={"Extra": "1"}), 400, "SignatureDoesNotMatch")
    pop_error(http.post("/", headers=fresh, content=b"x=1"), 400, "SignatureDoesNotMatch")
    pop_error(http.post("/", headers={**fresh, "x-acs-extra": "1"}), 400, "IncompleteSignature")
    pop_error(
        http.post("/", headers={**fresh, "Authorization": "ACS3-HMAC-SHA256 nonsense"}),
        400,
        "IncompleteSignature",
    )


def test_missing_and_invalid_parameters_are_refused(http: httpx.Client, server: Server) -> None:
    """Missing or wrong parameters get MissingParameter, InvalidParameter, InvalidAction, ..."""
    pop_error(http.post("/"), 400, "MissingParameter")
    no_timestamp = sign_rpc("POST", rpc_params(), AKID, SECRET)
    del no_timestamp["Timestamp"]
    body = pop_error(http.post("/", params=no_timestamp), 400, "MissingParameter")
    assert '"Timestamp"' in body["Message"]
    cases = [
        (rpc_params(Action="DescribeRegions"), 404, "InvalidAction.NotFound"),
        (rpc_params(Version="2018-01-01"), 400, "InvalidVersion"),
        (rpc_params(SignatureMethod="HMAC-SHA256"), 400, "InvalidParameter"),
        (rpc_params(SignatureVersion="2.0"), 400, "InvalidParameter"),
    ]
    for params, status, code in cases:
        pop_error(http.post("/", params=sign_rpc("POST", params, AKID, SECRET)), status, code)
    signed = sign_rpc("POST", rpc_params(), AKID, SECRET)
    repeated = [*signed.items(), ("RegionId", "cn-beijing")]
    pop_error(http.post("/?" + urlencode(repeated)), 400, "InvalidParameter")
    v3 = sign_v3("POST", "/", v3_headers(server), AKID, SECRET)
    without_date = {k: v for k, v in v3.items() if k != "x-acs-date"}
    body = pop_error(http.post("/", headers=without_date), 400, "MissingParameter")
    assert "x-acs-date" in body["Message"]


def test_stale_or_malformed_timestamp_is_refused(http: httpx.Client, server: Server) -> None:
    """A timestamp more than MAX_CLOCK_SKEW off is InvalidTimeStamp.Expired, a bad one .Format."""
    stale = time.time() - MAX_CLOCK_SKEW - 60
    params = sign_rpc("POST", rpc_params(), AKID, SECRET, timestamp=stale)
    pop_error(http.post("/", params=params), 400, "InvalidTimeStamp.Expired")
    headers = sign_v3("POST", "/", v3_headers(server), AKID, SECRET, timestamp=stale)
    pop_error(http.post("/", headers=headers), 400, "InvalidTimeStamp.Expired")
    malformed = sign_rpc("POST", rpc_params(Timestamp="2024-01-01 00:00:00"), AKID, SECRET)
    pop_error(http.post("/", params=malformed), 400, "InvalidTimeStamp.Format")


def test_replayed_request_is_refused(http: httpx.Client, server: Server) -> None:
    """The same signed request twice: the second is SignatureNonceUsed (RPC and V3)."""
    params = sign_rpc("POST", rpc_params(), AKID, SECRET)
    assert http.post("/", params=params).status_code == 200
    pop_error(http.post("/", params=params), 400, "SignatureNonceUsed")
    headers = sign_v3("POST", "/", v3_headers(server), AKID, SECRET)
    assert http.post("/", headers=headers).status_code == 200
    pop_error(http.post("/", headers=headers), 400, "SignatureNonceUsed")


def test_other_methods_are_not_served(http: httpx.Client) -> None:
    """Only GET and POST reach CreateToken."""
    assert http.put("/", params=sign_rpc("PUT", rpc_params(), AKID, SECRET)).status_code == 405


# -- AliyunTokenProvider -----------------------------------------------------------------------


async def test_provider_async_gets_token(server: Server, store: AccountStore) -> None:
    """await AliyunTokenProvider() returns a Token with Token.Id and ExpireTime from the server."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=server.url)
    token = await provider()
    assert isinstance(token, Token)
    assert token.expires_at is not None
    assert_fresh_token(store, token.value, token.expires_at)


def test_provider_sync_gets_token(server: Server, store: AccountStore) -> None:
    """AliyunTokenProvider.sync() returns a Token the store knows."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    token = AliyunTokenProvider(AKID, SECRET, endpoint=server.url).sync()
    assert token.expires_at is not None
    assert_fresh_token(store, token.value, token.expires_at)


async def test_provider_under_token_manager_async(server: Server, store: AccountStore) -> None:
    """A TokenManager around the provider serves its token to concurrent callers, one call."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    manager = TokenManager(AliyunTokenProvider(AKID, SECRET, endpoint=server.url))
    values = await asyncio.gather(*(manager.get() for _ in range(5)))
    assert len(set(values)) == 1
    assert store.check_token(values[0]).access_key_id == AKID
    assert manager.provider_calls == 1


def test_provider_under_token_manager_sync(server: Server, store: AccountStore) -> None:
    """get_sync() works with the async provider (run to completion) and with provider.sync."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=server.url)
    for manager in (TokenManager(provider), TokenManager(provider.sync)):
        value = manager.get_sync()
        assert store.check_token(value).access_key_id == AKID
        assert manager.get_sync() == value


def test_provider_reads_credentials_from_environment(
    server: Server, store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without arguments the AccessKey pair comes from the ALIBABA_CLOUD_* variables."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    monkeypatch.setenv(ACCESS_KEY_ID_ENV, AKID)
    monkeypatch.setenv(ACCESS_KEY_SECRET_ENV, SECRET)
    provider = AliyunTokenProvider(endpoint=server.url)
    assert provider.access_key_id == AKID
    token = provider.sync()
    assert store.check_token(token.value).access_key_id == AKID


def test_provider_with_half_a_pair_names_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half an AccessKey pair (argument or environment) is a ValueError naming the variable."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    monkeypatch.delenv(ACCESS_KEY_ID_ENV, raising=False)
    monkeypatch.delenv(ACCESS_KEY_SECRET_ENV, raising=False)
    monkeypatch.setenv(ACCESS_KEY_ID_ENV, AKID)
    with pytest.raises(ValueError, match=f"{ACCESS_KEY_SECRET_ENV} is not set"):
        AliyunTokenProvider()
    with pytest.raises(ValueError, match=ACCESS_KEY_SECRET_ENV):
        AliyunTokenProvider(AKID, "")
    monkeypatch.delenv(ACCESS_KEY_ID_ENV)
    with pytest.raises(ValueError, match=ACCESS_KEY_ID_ENV):
        AliyunTokenProvider(access_key_secret=SECRET)


async def test_provider_error_has_code_and_never_the_secret(server: Server) -> None:
    """A wrong secret is TokenProviderError('SignatureDoesNotMatch'); no text shows the secret."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    provider = AliyunTokenProvider(AKID, WRONG_SECRET, endpoint=server.url)
    assert WRONG_SECRET not in repr(provider)
    with pytest.raises(TokenProviderError) as caught:
        await provider()
    error = caught.value
    assert (error.code, error.http_status, error.retryable) == ("SignatureDoesNotMatch", 400, False)
    assert error.request_id
    assert str(error).startswith("SignatureDoesNotMatch (HTTP 400): ")
    for text in (str(error), repr(error), str(error.args), str(error.__cause__)):
        assert WRONG_SECRET not in text
    manager = TokenManager(provider, provider_attempts=1)
    with pytest.raises(TokenRefreshError) as refused:
        await manager.get()
    assert isinstance(refused.value.__cause__, TokenProviderError)
    assert "SignatureDoesNotMatch" in str(refused.value)
    assert WRONG_SECRET not in str(refused.value)


def test_provider_scrubs_a_secret_the_service_echoes() -> None:
    """Even a service that echoes the secret in its message cannot put it in the error's text."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")

    async def echo(request: web.Request) -> web.Response:
        body = {"RequestId": "R", "Code": "Oops", "Message": f"your secret is {SECRET}"}
        return web.json_response(body, status=400)

    with Server(lambda app: app.router.add_post("/", echo)) as echoing:
        provider = AliyunTokenProvider(AKID, SECRET, endpoint=echoing.url)
        with pytest.raises(TokenProviderError) as caught:
            provider.sync()
    error = caught.value
    assert error.code == "Oops"
    assert SECRET not in str(error)
    assert SECRET not in repr(error.args)
    assert error.__cause__ is None  # the vendor's exception holds the secret: not chained


def test_provider_throttled_is_retryable(throttled: Server) -> None:
    """Throttling.User from the meta service is a retryable TokenProviderError."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=throttled.url)
    provider.sync()
    with pytest.raises(TokenProviderError) as caught:
        provider.sync()
    assert caught.value.code == "Throttling.User"
    assert caught.value.retryable


async def test_provider_unreachable_endpoint_has_no_code() -> None:
    """No answer (connection refused) is a retryable TokenProviderError whose code is None."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AliyunTokenProvider(AKID, SECRET, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(TokenProviderError) as caught:
        await provider()
    assert caught.value.code is None
    assert caught.value.retryable
    assert str(caught.value).startswith("no answer from the meta service: ")


def test_provider_endpoint_forms() -> None:
    """Default host per region over HTTPS; host[:port] is HTTPS; a URL chooses its scheme."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    default = AliyunTokenProvider(AKID, SECRET, region="cn-beijing")
    assert (default.endpoint, default.protocol) == ("nls-meta.cn-beijing.aliyuncs.com", "https")
    local = AliyunTokenProvider(AKID, SECRET, endpoint="http://127.0.0.1:8080/")
    assert (local.endpoint, local.protocol, local.url) == (
        "127.0.0.1:8080",
        "http",
        "http://127.0.0.1:8080/",
    )
    plain = AliyunTokenProvider(AKID, SECRET, endpoint="meta.example.com:8443")
    assert (plain.endpoint, plain.protocol) == ("meta.example.com:8443", "https")
    assert SECRET not in repr(plain)
    for bad in ("ftp://meta.example.com", "http://meta.example.com/api", "http://", "a/b"):
        with pytest.raises(ValueError, match="endpoint"):
            AliyunTokenProvider(AKID, SECRET, endpoint=bad)


def test_missing_vendor_package_explains_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without alibabacloud-nls-cloud-meta20190228 the ImportError says which extra to install."""
    monkeypatch.setitem(sys.modules, "alibabacloud_nls_cloud_meta20190228.client", None)
    with pytest.raises(ImportError, match=r"pip install 'asr-resilience\[aliyun\]'"):
        AliyunTokenProvider(AKID, SECRET)

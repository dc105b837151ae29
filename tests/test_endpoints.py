"""Regions and endpoints: the table, the precedence (explicit URL > explicit region > the
environment's URL > the environment's region > cn-shanghai) for the gateway, REST and
CreateToken, unknown regions refused with the list, and calls whose every address comes from the
environment, against the simulator over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asr_resilience import cli
from asr_resilience._endpoints import (
    DEFAULT_REGION,
    ENDPOINT_ENV,
    REGION_ENV,
    REGIONS,
    Endpoint,
    UnknownRegionError,
    get_region,
    resolve_url,
    signing_region,
)
from asr_resilience.clients import (
    DEFAULT_GATEWAY,
    DEFAULT_REST_URL,
    Recognizer,
    RestRecognizer,
    Transcriber,
    transcribe_file,
)
from asr_resilience.simulator import Simulator, SimulatorConfig, SimulatorThread
from asr_resilience.tokens import AliyunTokenProvider, TokenManager

from .audio_fixtures import speech_like, wav

TEXT = "北京欢迎你"
SPEECH = speech_like([(600, 440)], gap_ms=200)
KINDS: tuple[Endpoint, ...] = ("gateway", "rest", "meta")
NLS_ENV = (REGION_ENV, *ENDPOINT_ENV.values(), "NLS_TOKEN", "NLS_APPKEY")

# On Python >= 3.12 the Tea client stamps x-acs-date with datetime.utcnow(), which warns (see
# tests/test_meta.py).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcnow\(\) is deprecated"
    r":DeprecationWarning:alibabacloud_tea_openapi\.utils"
)


@pytest.fixture(autouse=True)
def _no_nls_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the NLS_* variables of the machine."""
    for name in NLS_ENV:
        monkeypatch.delenv(name, raising=False)


# -- the table -------------------------------------------------------------------------------------


def test_table_has_the_served_regions_and_their_vpc_variants() -> None:
    """Mainland regions, ap-southeast-1, and each one's -internal variant."""
    public = {"cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1"}
    assert set(REGIONS) == public | {f"{name}-internal" for name in public}
    assert DEFAULT_REGION == "cn-shanghai"


@pytest.mark.parametrize("name", ["cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1"])
def test_public_region_addresses(name: str) -> None:
    """wss:// gateway, https:// REST on nls-gateway-<region>; CreateToken on nls-meta.<region>."""
    region = REGIONS[name]
    assert region.gateway == f"wss://nls-gateway-{name}.aliyuncs.com/ws/v1"
    assert region.rest == f"https://nls-gateway-{name}.aliyuncs.com/stream/v1/asr"
    assert region.meta == f"https://nls-meta.{name}.aliyuncs.com/"
    assert (region.meta_region, region.internal) == (name, False)


def test_internal_region_addresses() -> None:
    """A VPC variant is plain ws:// on port 80 and http://; CreateToken keeps the public host."""
    region = get_region("cn-beijing-internal")
    assert region.gateway == "ws://nls-gateway-cn-beijing-internal.aliyuncs.com:80/ws/v1"
    assert region.rest == "http://nls-gateway-cn-beijing-internal.aliyuncs.com/stream/v1/asr"
    assert region.meta == "https://nls-meta.cn-beijing.aliyuncs.com/"
    assert (region.meta_region, region.internal) == ("cn-beijing", True)


def test_region_names_ignore_case_and_spaces() -> None:
    """' CN-Beijing ' is cn-beijing."""
    assert get_region(" CN-Beijing ") is REGIONS["cn-beijing"]


def test_unknown_region_lists_the_known_ones() -> None:
    """An unknown region is a ValueError naming it and every region NLS serves."""
    with pytest.raises(UnknownRegionError) as caught:
        get_region("cn-hangzhou")
    text = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "'cn-hangzhou' is not a region NLS serves" in text
    for name in REGIONS:
        assert name in text


def test_defaults_are_cn_shanghai() -> None:
    """The clients' default constants are cn-shanghai's addresses."""
    assert REGIONS["cn-shanghai"].gateway == DEFAULT_GATEWAY
    assert REGIONS["cn-shanghai"].rest == DEFAULT_REST_URL


# -- precedence (pure: the environment is a mapping) -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_precedence(kind: Endpoint) -> None:
    """url > region > $NLS_*_URL > $NLS_REGION > cn-shanghai, for every endpoint."""
    url_var = ENDPOINT_ENV[kind]
    everything = {url_var: "env-url", REGION_ENV: "cn-shenzhen"}
    beijing = REGIONS["cn-beijing"].url(kind)
    assert resolve_url(kind, "explicit", "cn-beijing", everything) == "explicit"
    assert resolve_url(kind, None, "cn-beijing", everything) == beijing
    assert resolve_url(kind, None, None, everything) == "env-url"
    assert resolve_url(kind, None, None, {REGION_ENV: "cn-shenzhen"}) == REGIONS["cn-shenzhen"].url(
        kind
    )
    assert resolve_url(kind, None, None, {}) == REGIONS["cn-shanghai"].url(kind)
    assert resolve_url(kind, None, None, {url_var: "  ", REGION_ENV: ""}) == REGIONS[
        "cn-shanghai"
    ].url(kind)


def test_an_explicit_region_is_checked_even_when_a_url_wins() -> None:
    """A typo in region= is never silent, even beside url=."""
    with pytest.raises(UnknownRegionError):
        resolve_url("gateway", "ws://127.0.0.1:1/ws/v1", "cn-shanghia", {})


def test_an_unknown_environment_region_names_the_variable() -> None:
    """$NLS_REGION is checked when it decides, and the error names the variable."""
    with pytest.raises(UnknownRegionError, match=r"\$NLS_REGION 'mars-1'"):
        resolve_url("rest", None, None, {REGION_ENV: "mars-1"})
    assert resolve_url("rest", "https://x/", None, {REGION_ENV: "mars-1"}) == "https://x/"


def test_signing_region() -> None:
    """CreateToken is signed for the explicit region, else $NLS_REGION's, else cn-shanghai; a
    VPC variant signs for its region."""
    assert signing_region("ap-southeast-1", {REGION_ENV: "cn-beijing"}) == "ap-southeast-1"
    assert signing_region(None, {REGION_ENV: "cn-shenzhen-internal"}) == "cn-shenzhen"
    assert signing_region(None, {}) == "cn-shanghai"


# -- the clients and the provider ------------------------------------------------------------------


def test_clients_resolve_their_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """region= and the environment reach every client; url= still wins."""
    tokens, appkey = "t0ken", "k"
    assert Recognizer(appkey=appkey, tokens=tokens).url == DEFAULT_GATEWAY
    assert (
        Recognizer(appkey=appkey, tokens=tokens, region="ap-southeast-1").url
        == REGIONS["ap-southeast-1"].gateway
    )
    assert Transcriber(appkey=appkey, tokens=tokens, region="cn-beijing").url == (
        REGIONS["cn-beijing"].gateway
    )
    assert RestRecognizer(appkey=appkey, tokens=tokens, region="cn-shenzhen-internal").url == (
        REGIONS["cn-shenzhen-internal"].rest
    )
    monkeypatch.setenv(REGION_ENV, "cn-beijing")
    assert Recognizer(appkey=appkey, tokens=tokens).url == REGIONS["cn-beijing"].gateway
    assert RestRecognizer(appkey=appkey, tokens=tokens).url == REGIONS["cn-beijing"].rest
    assert Recognizer("ws://127.0.0.1:9/ws/v1", appkey, tokens).url == "ws://127.0.0.1:9/ws/v1"
    with pytest.raises(ValueError, match="is not a region NLS serves"):
        Transcriber(appkey=appkey, tokens=tokens, region="eu-central-1")


def test_sdk_adapters_resolve_their_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official SDK's adapters take region= and $NLS_GATEWAY_URL like the clients."""
    pytest.importorskip("nls")
    from asr_resilience.sdk import SdkRecognizer, SdkTranscriber

    assert SdkRecognizer(appkey="k", tokens="t0ken", region="cn-shenzhen").url == (
        REGIONS["cn-shenzhen"].gateway
    )
    monkeypatch.setenv("NLS_GATEWAY_URL", "ws://127.0.0.1:9/ws/v1")
    assert SdkTranscriber(appkey="k", tokens="t0ken").url == "ws://127.0.0.1:9/ws/v1"


def test_provider_resolves_its_meta_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """AliyunTokenProvider: endpoint= > region= > $NLS_META_URL > $NLS_REGION > cn-shanghai."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    pair = ("LTAI-endpoints", "endpoints-secret-Xy7")
    assert AliyunTokenProvider(*pair).url == "https://nls-meta.cn-shanghai.aliyuncs.com/"
    singapore = AliyunTokenProvider(*pair, region="ap-southeast-1")
    assert (singapore.url, singapore.region) == (
        "https://nls-meta.ap-southeast-1.aliyuncs.com/",
        "ap-southeast-1",
    )
    monkeypatch.setenv(REGION_ENV, "cn-shenzhen")
    assert AliyunTokenProvider(*pair).url == "https://nls-meta.cn-shenzhen.aliyuncs.com/"
    monkeypatch.setenv("NLS_META_URL", "http://127.0.0.1:7/")
    from_env = AliyunTokenProvider(*pair)
    assert (from_env.url, from_env.region) == ("http://127.0.0.1:7/", "cn-shenzhen")
    assert AliyunTokenProvider(*pair, region="cn-beijing").url == (
        "https://nls-meta.cn-beijing.aliyuncs.com/"
    )
    with pytest.raises(ValueError, match="is not a region NLS serves"):
        AliyunTokenProvider(*pair, region="us-west-1")


# -- calls whose addresses come from the environment -----------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config=SimulatorConfig(transcripts=[TEXT])) as simulator:
        yield simulator


async def test_clients_take_every_address_from_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NLS_GATEWAY_URL, NLS_REST_URL, NLS_META_URL (and NLS_APPKEY, the AccessKey pair) are all
    a recognizer, a REST recognizer and a stream need: no address in code."""
    pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    info = sim.info()
    monkeypatch.setenv("NLS_GATEWAY_URL", sim.gateway_url)
    monkeypatch.setenv("NLS_REST_URL", sim.rest_url)
    monkeypatch.setenv("NLS_META_URL", sim.meta_url)
    monkeypatch.setenv(REGION_ENV, "cn-beijing")  # the URLs win over the region
    monkeypatch.setenv("NLS_APPKEY", sim.appkey)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", info["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", info["access_key_secret"])
    tokens = TokenManager(AliyunTokenProvider())
    assert (await Recognizer(tokens=tokens).recognize(SPEECH)).text == TEXT
    assert (await RestRecognizer(tokens=tokens).recognize(SPEECH)).text == TEXT
    sentences = await transcribe_file(wav(SPEECH), tokens=tokens, realtime=False)
    assert [s.text for s in sentences] == [TEXT]
    assert tokens.provider_calls == 1
    assert sim.stats.sessions_completed == 3


def test_cli_region_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI reads NLS_GATEWAY_URL; --region picks a region's gateway over it; an unknown
    --region is one line listing the known ones, exit 2."""
    speech = tmp_path / "hello.wav"
    speech.write_bytes(wav(SPEECH))
    with SimulatorThread(config=SimulatorConfig(transcripts=[TEXT])) as threaded:
        monkeypatch.setenv("NLS_GATEWAY_URL", threaded.gateway_url)
        argv = ["recognize", str(speech), "--appkey", threaded.appkey, "--token", threaded.token()]
        assert cli.main(argv) == 0
        assert capsys.readouterr().out == TEXT + "\n"
        assert cli.main([*argv, "--region", "mars-1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "--region 'mars-1' is not a region NLS serves; use one of: cn-shanghai" in err
        monkeypatch.setenv(REGION_ENV, "mars-2")
        monkeypatch.delenv("NLS_GATEWAY_URL")
        assert cli.main(argv) == 2
        assert "$NLS_REGION 'mars-2' is not a region NLS serves" in capsys.readouterr().err

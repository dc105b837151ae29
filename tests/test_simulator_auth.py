"""Tokens, appkeys, accounts and the concurrency quota at the simulated gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asr_resilience import catalog
from asr_resilience.protocol import RECOGNIZER, TRANSCRIBER, Completed, Failed, Started
from asr_resilience.simulator import Account, Simulator

from .audio_fixtures import speech_like
from .simulator_client import assert_seed, open_ws, quick_config, run_task, task

SPEECH = speech_like([(800, 440)])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    accounts = [
        Account(),
        Account(name="alice", appkeys=("alice-key",), unrouted_appkeys=("alice-unrouted",)),
        Account(name="trial", appkeys=("trial-key",), kind="trial", trial_expired=True),
        Account(name="small", appkeys=("small-key",), quota=1),
    ]
    async with Simulator(accounts=accounts, config=quick_config()) as simulator:
        yield simulator


async def _start_failure(
    sim: Simulator, *, token: str | None = None, appkey: str | None = None
) -> Failed:
    async with task(sim, token=token, appkey=appkey) as t:
        event = await t.start()
    assert isinstance(event, Failed), event
    return event


async def test_unknown_token_is_403_at_handshake(sim: Simulator) -> None:
    """A token the meta service never issued → HTTP 403 Forbidden at the handshake."""
    with pytest.raises(InvalidStatus) as info:
        await open_ws(sim, "not-a-token")
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"Forbidden\n"
    assert sim.stats.handshakes_rejected == 1


async def test_missing_token_is_403(sim: Simulator) -> None:
    """No token at all → 403 as well."""
    with pytest.raises(InvalidStatus) as info:
        await connect(sim.gateway_url, proxy=None)
    assert info.value.response.status_code == 403


async def test_token_in_query(sim: Simulator) -> None:
    """The token may come as ?token= instead of the header."""
    ws = await open_ws(sim, in_query=True)
    await ws.close()
    assert sim.stats.handshakes_rejected == 0


async def test_other_path_is_404(sim: Simulator) -> None:
    """Only /ws/v1 serves WebSocket: another path → 404 at the handshake."""
    url = sim.gateway_url.replace("/ws/v1", "/ws/v2")
    with pytest.raises(InvalidStatus) as info:
        await connect(url, additional_headers={"X-NLS-Token": sim.token()}, proxy=None)
    assert info.value.response.status_code == 404


async def test_expired_token(sim: Simulator) -> None:
    """An expired token passes the handshake; the start directive gets 40000001 has expired."""
    token = sim.token(ttl=60)
    sim.store.expire_all()
    failed = await _start_failure(sim, token=token)
    assert failed.status == 40000001
    assert failed.status_text == f"Gateway:ACCESS_DENIED:The token '{token}' has expired!"
    assert_seed(failed.status, failed.status_text)
    assert "expired" in _message(failed)


def _message(failed: Failed) -> str:
    return catalog().lookup(failed.status, failed.status_text).message or ""


async def test_revoked_token(sim: Simulator) -> None:
    """A revoked token → 40000001 Meta:ACCESS_DENIED ... is invalid!"""
    token = sim.token()
    sim.store.revoke(token)
    failed = await _start_failure(sim, token=token)
    assert failed.status == 40000001
    assert failed.status_text == f"Meta:ACCESS_DENIED:The token '{token}' is invalid!"
    assert_seed(failed.status, failed.status_text)
    assert "invalid" in _message(failed)


async def test_unknown_appkey(sim: Simulator) -> None:
    """An appkey no account has → 40020105 APPKEY_NOT_EXIST."""
    failed = await _start_failure(sim, appkey="nobody-key")
    assert failed.status == 40020105
    assert failed.status_text == "Meta:APPKEY_NOT_EXIST:Appkey not exist!"
    assert_seed(failed.status, failed.status_text)


async def test_appkey_of_another_account(sim: Simulator) -> None:
    """Alice's appkey with the default account's token → 40020106 APPKEY_UID_MISMATCH."""
    failed = await _start_failure(sim, appkey="alice-key")
    assert failed.status == 40020106
    assert failed.status_text == "Meta:APPKEY_UID_MISMATCH:Appkey and user mismatch!"
    assert_seed(failed.status, failed.status_text)


async def test_appkey_without_route(sim: Simulator) -> None:
    """An appkey without end point info → 41000003."""
    failed = await _start_failure(sim, appkey="alice-unrouted", token=sim.token("alice"))
    assert (failed.status, failed.status_text) == (41000003, "MetaInfo doesn't have end point info")
    assert_seed(failed.status, failed.status_text)


async def test_free_trial_expired(sim: Simulator) -> None:
    """A trial account whose trial ended → 40000010 FREE_TRIAL_EXPIRED."""
    failed = await _start_failure(sim, appkey="trial-key", token=sim.token("trial"))
    assert failed.status == 40000010
    assert failed.status_text == "Gateway:FREE_TRIAL_EXPIRED:The free trial has expired!"
    assert_seed(failed.status, failed.status_text)


async def test_own_appkey_succeeds(sim: Simulator) -> None:
    """Alice's token with her own appkey works."""
    events = await run_task(sim, RECOGNIZER, SPEECH, token=sim.token("alice"), appkey="alice-key")
    assert isinstance(events[-1], Completed)


async def test_quota_refuses_second_concurrent_task_until_first_closes(sim: Simulator) -> None:
    """Quota 1: a second concurrent task → 40000005; once the first closes, a new one starts."""
    token = sim.token("small")
    async with task(sim, TRANSCRIBER, token=token, appkey="small-key") as first:
        assert isinstance(await first.start(), Started)
        failed = await _start_failure(sim, token=token, appkey="small-key")
        assert failed.status == 40000005
        assert failed.status_text == "Gateway:TOO_MANY_REQUESTS:Too many requests!"
        assert_seed(failed.status, failed.status_text)
        await first.stop()
    events = await run_task(sim, RECOGNIZER, SPEECH, token=token, appkey="small-key")
    assert isinstance(events[-1], Completed)
    assert sim.stats.throttled == 1
    assert sim.stats.max_concurrent["small"] == 1
    assert sim.stats.failed == {40000005: 1}


async def test_slot_held_from_start_until_close(sim: Simulator) -> None:
    """A connection without a start directive holds no slot; a started one holds it."""
    token = sim.token("small")
    idle = await open_ws(sim, token)
    async with task(sim, RECOGNIZER, token=token, appkey="small-key") as t:
        assert isinstance(await t.start(), Started)
        assert sim.store.slots_in_use(sim.store.get("small")) == 1
    await idle.close()


async def test_sessions_are_numbered_from_one(sim: Simulator) -> None:
    """Every handshake counts as a session, refused ones included."""
    with pytest.raises(InvalidStatus):
        await open_ws(sim, "bad")
    await run_task(sim, RECOGNIZER, SPEECH)
    assert sim.stats.connections == 2
    assert sim.stats.sessions_started == 1

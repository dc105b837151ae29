"""The pytest plugin's fixtures as a user's test suite sees them (pytest in a subprocess)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

ASYNC_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
USES_THE_SIMULATOR = '''
async def test_uses_the_simulator(nls_simulator):
    """The fixture gives a started simulator."""
    assert nls_simulator.gateway_url.startswith("ws://")
'''
# A client that starts a one-sentence task and, with `leak`, never closes its connection.
START_A_TASK = """
import json
import uuid

import websocket

from asr_resilience import testing

def start_task(gateway, leak):
    ws = websocket.create_connection(
        gateway.gateway_url, header=[f"X-NLS-Token: {gateway.token()}"], timeout=10
    )
    header = {"message_id": uuid.uuid4().hex, "task_id": uuid.uuid4().hex, "appkey": gateway.appkey,
              "namespace": "SpeechRecognizer", "name": "StartRecognition"}
    ws.send(json.dumps({"header": header, "payload": {"format": "pcm", "sample_rate": 16000}}))
    assert json.loads(ws.recv())["header"]["name"] == "RecognitionStarted"
    if not leak:
        ws.close()
    return ws
"""


def test_nls_simulator_without_pytest_asyncio_says_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    """With pytest-asyncio disabled, the test errors at setup naming pytest-asyncio and
    nls_gateway, instead of the fixture vanishing."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_user=USES_THE_SIMULATOR)
    run = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider")
    run.assert_outcomes(errors=1)
    run.stdout.fnmatch_lines(["*needs the pytest-asyncio plugin, which is disabled*"])
    assert "nls_gateway" in run.stdout.str()


def test_nls_simulator_with_pytest_asyncio_runs(pytester: pytest.Pytester) -> None:
    """With pytest-asyncio in auto mode the same test passes."""
    pytester.makeini(ASYNC_INI)
    pytester.makepyfile(test_user=USES_THE_SIMULATOR)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_connection_left_open_is_named_at_teardown(pytester: pytest.Pytester) -> None:
    """A test that leaves its connection open gets a LeakedConnectionWarning naming the session,
    its task and the client; with filterwarnings = error the test errors at teardown."""
    pytester.makeini(ASYNC_INI)
    pytester.makepyfile(
        test_user=START_A_TASK
        + """
def test_leaks(nls_gateway):
    start_task(nls_gateway, leak=True)
"""
    )
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    run.assert_outcomes(passed=1, warnings=1)
    run.stdout.fnmatch_lines(
        [
            "*LeakedConnectionWarning: nls_gateway: the test left 1 connection to the simulator "
            "open: session 1 (SpeechRecognizer task, client 127.0.0.1:*, open *s)*dropped now.",
        ]
    )
    as_error = "error::asr_resilience.pytest_plugin.LeakedConnectionWarning"
    strict = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", as_error)
    strict.assert_outcomes(passed=1, errors=1)
    strict.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*"])


def test_a_connection_closed_by_the_test_is_not_reported(pytester: pytest.Pytester) -> None:
    """A test that closes its connection passes without a warning, in sync and async tests."""
    pytester.makeini(ASYNC_INI)
    pytester.makepyfile(
        test_user=START_A_TASK
        + """
def test_closes(nls_gateway):
    start_task(nls_gateway, leak=False)

async def test_closes_in_the_loop(nls_simulator):
    import websockets
    async with websockets.connect(
        nls_simulator.gateway_url, additional_headers={"X-NLS-Token": nls_simulator.token()}
    ):
        pass
"""
    )
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    run.assert_outcomes(passed=2)


def test_nls_simulator_names_a_connection_left_open(pytester: pytest.Pytester) -> None:
    """The in-loop fixture reports a connection the test left open, as nls_gateway does."""
    pytester.makeini(ASYNC_INI)
    pytester.makepyfile(
        test_user="""
import websockets

async def test_leaks(nls_simulator):
    await websockets.connect(
        nls_simulator.gateway_url, additional_headers={"X-NLS-Token": nls_simulator.token()}
    )
"""
    )
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    run.assert_outcomes(passed=1, warnings=1)
    run.stdout.fnmatch_lines(
        ["*LeakedConnectionWarning: nls_simulator: the test left 1 connection*no task started*"]
    )

"""DEBUG logging of the websockets handshake never shows a token (client and simulator)."""

from __future__ import annotations

import logging

import pytest

import asr_resilience as ar
from asr_resilience.simulator import Simulator

from .audio_fixtures import speech_like


async def test_debug_logs_of_a_real_handshake_hide_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With DEBUG on for every logger, a recognition's log records never contain the token."""
    caplog.set_level(logging.DEBUG)
    async with Simulator() as sim:
        token = sim.token()
        recognizer = ar.Recognizer(sim.gateway_url, sim.appkey, token, "default", scope="dbg")
        result = await recognizer.recognize(speech_like([(600, 300)], gap_ms=300))
    assert result.text
    headers = [r for r in caplog.records if "x-nls-token" in r.getMessage().lower()]
    assert headers, "websockets should have logged the handshake headers at DEBUG"
    for record in caplog.records:
        assert token not in record.getMessage()

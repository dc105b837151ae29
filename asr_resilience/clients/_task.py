"""Steps of an NLS task that both WebSocket clients take: the start handshake and TaskFailed."""

from __future__ import annotations

from .._errors import NlsError
from ..protocol import RECOGNIZER, ClientProtocol, Failed, Started
from ._connection import Connection

__all__ = ["failure_error", "started"]


def failure_error(event: Failed) -> NlsError:
    """TaskFailed as the error the failure extractor classifies by its vendor code."""
    return NlsError(event.status, event.status_text, event.task_id)


async def started(connection: Connection, protocol: ClientProtocol, timeout: float) -> Started:
    """Wait for the Started event of the task whose start directive was just sent.

    docs/protocol.md "Limits": an over-quota start is answered with TaskFailed (40000005), as is a
    token the gateway refuses after the handshake (40000001,
    docs/protocol.md "Handshake and token header"); both are raised as :class:`NlsError`. No answer
    within ``timeout`` seconds raises ``TimeoutError``.
    """
    name = "RecognitionStarted" if protocol.namespace == RECOGNIZER else "TranscriptionStarted"
    event = protocol.receive(await connection.recv(timeout, waiting_for=name))
    if isinstance(event, Failed):
        raise failure_error(event)
    # In state STARTING the protocol admits only Started or Failed.
    assert isinstance(event, Started)
    return event

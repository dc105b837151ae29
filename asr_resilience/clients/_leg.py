"""One leg of a real-time stream: an NLS task on its own connection, and how far its audio got.

A resumable stream runs on one leg at a time; after a fault a new leg (new connection, new
``task_id``, the same start parameters) takes over. A leg starts hearing the stream at
``offset`` (a stream position, see :mod:`asr_resilience.clients._replay`): everything it reports
is relative to that point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._network import Network
from ..protocol import TRANSCRIBER, ClientProtocol
from ._connection import Connection, open_connection
from ._task import started

if TYPE_CHECKING:
    from ..retry._attempt import Attempt

__all__ = ["Leg", "start_leg"]


class Leg:
    """A started SpeechTranscriber task carrying the stream from ``offset`` on."""

    __slots__ = (
        "attempt",
        "confirmed",
        "confirmed_at",
        "connection",
        "last_report",
        "offset",
        "protocol",
        "sent",
        "session_id",
        "stop_sent",
        "token",
    )

    def __init__(
        self,
        connection: Connection,
        protocol: ClientProtocol,
        token: str,
        offset: int,
        session_id: str = "",
    ) -> None:
        self.connection = connection
        self.protocol = protocol
        self.token = token
        """The token the task was started with (a refresh invalidates exactly this one)."""
        self.offset = offset
        self.sent = offset
        """Stream position up to which this task has been sent the audio."""
        self.session_id = session_id
        self.confirmed = offset
        """Stream position up to which the task has reported hearing the audio (its events'
        times), or the audio taken as heard after a quiet spell (the flow-control window)."""
        self.confirmed_at = 0.0
        """Loop time at which ``confirmed`` last moved (the window's deadline counts from it)."""
        self.last_report: tuple[int, float] | None = None
        """The task's last report (position, loop time) since the window last moved without
        one: what ``_flow.FlowWindow`` measures the gateway's speed from."""
        self.stop_sent = False
        self.attempt: Attempt | None = None
        """The stream's attempt this leg is: it holds the concurrency slot until the leg ends."""

    @property
    def task_id(self) -> str:
        return self.protocol.task_id


async def start_leg(
    url: str,
    appkey: str,
    params: Mapping[str, Any],
    token: str,
    offset: int,
    *,
    open_timeout: float,
    start_timeout: float,
    network: Network | None = None,
) -> Leg:
    """Connect, send StartTranscription and wait for TranscriptionStarted.

    Raises what the attempt failed with (``NlsError`` for TaskFailed, ``TransportError``,
    ``TimeoutError``) after closing the connection; the caller's policy decides what follows.
    """
    protocol = ClientProtocol(TRANSCRIBER, appkey, params)
    connection = await open_connection(url, token, open_timeout=open_timeout, network=network)
    try:
        await connection.send(protocol.start())
        event = await started(connection, protocol, start_timeout)
    except BaseException:
        await connection.close()
        raise
    return Leg(connection, protocol, token, offset, event.session_id)

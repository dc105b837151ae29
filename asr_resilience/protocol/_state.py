"""Session states of one NLS task, for the client side and the gateway side.

How this works: each side holds a state; every frame sent or received is a *transition key*;
``(state, key)`` looks up the next state in the table below. A key with no entry is illegal in
that state: the side that broke the rule gets a protocol error and the session moves to ERROR.
One table per side, so the rules of the protocol are read in one place (as h11's ``_state.py``).
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    IDLE = "idle"  # connected, nothing sent yet
    STARTING = "starting"  # start directive sent / received, Started not yet
    STARTED = "started"  # audio may flow
    STOPPING = "stopping"  # stop directive sent / received, Completed not yet
    COMPLETED = "completed"  # the task finished; the socket may close
    FAILED = "failed"  # TaskFailed sent / received; the gateway closes
    ERROR = "error"  # a side broke the protocol


# Transition keys: what happened.
SEND_START = "send_start"
SEND_AUDIO = "send_audio"
SEND_CONTROL = "send_control"
SEND_STOP = "send_stop"
RECV_STARTED = "recv_started"
RECV_PROGRESS = "recv_progress"  # result changed, sentence begin/end
RECV_COMPLETED = "recv_completed"
RECV_FAILED = "recv_failed"

_S = State

CLIENT: dict[tuple[State, str], State] = {
    (_S.IDLE, SEND_START): _S.STARTING,
    (_S.IDLE, RECV_FAILED): _S.FAILED,  # e.g. idle timeout before any directive
    (_S.STARTING, RECV_STARTED): _S.STARTED,
    (_S.STARTING, RECV_FAILED): _S.FAILED,
    (_S.STARTED, SEND_AUDIO): _S.STARTED,
    (_S.STARTED, SEND_CONTROL): _S.STARTED,
    (_S.STARTED, RECV_PROGRESS): _S.STARTED,
    (_S.STARTED, SEND_STOP): _S.STOPPING,
    (_S.STARTED, RECV_COMPLETED): _S.COMPLETED,  # one-sentence: the gateway may end by itself
    (_S.STARTED, RECV_FAILED): _S.FAILED,
    (_S.STOPPING, RECV_PROGRESS): _S.STOPPING,
    (_S.STOPPING, RECV_COMPLETED): _S.COMPLETED,
    (_S.STOPPING, RECV_FAILED): _S.FAILED,
}

# Gateway side: keys name what the *client* did (recv_*) or what the gateway sent (send_*).
G_RECV_START = "g_recv_start"
G_RECV_AUDIO = "g_recv_audio"
G_RECV_CONTROL = "g_recv_control"
G_RECV_STOP = "g_recv_stop"
G_SEND_STARTED = "g_send_started"
G_SEND_PROGRESS = "g_send_progress"
G_SEND_COMPLETED = "g_send_completed"
G_SEND_FAILED = "g_send_failed"

GATEWAY: dict[tuple[State, str], State] = {
    (_S.IDLE, G_RECV_START): _S.STARTING,
    (_S.IDLE, G_SEND_FAILED): _S.FAILED,
    (_S.STARTING, G_SEND_STARTED): _S.STARTED,
    (_S.STARTING, G_SEND_FAILED): _S.FAILED,
    (_S.STARTED, G_RECV_AUDIO): _S.STARTED,
    (_S.STARTED, G_RECV_CONTROL): _S.STARTED,
    (_S.STARTED, G_SEND_PROGRESS): _S.STARTED,
    (_S.STARTED, G_RECV_STOP): _S.STOPPING,
    (_S.STARTED, G_SEND_COMPLETED): _S.COMPLETED,
    (_S.STARTED, G_SEND_FAILED): _S.FAILED,
    (_S.STOPPING, G_SEND_PROGRESS): _S.STOPPING,
    (_S.STOPPING, G_SEND_COMPLETED): _S.COMPLETED,
    (_S.STOPPING, G_SEND_FAILED): _S.FAILED,
}


def step(table: dict[tuple[State, str], State], state: State, key: str) -> State | None:
    """The next state, or None when ``key`` is illegal in ``state``."""
    return table.get((state, key))

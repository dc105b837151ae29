"""Fault scenarios: which sessions the simulated gateway breaks, where, and how.

A :class:`Fault` says *what* goes wrong (``action``), *where* in a session (``phase``) and *which*
sessions it hits (``sessions``, ``every``, ``burst``, ``probability``, ``service``, ``times`` —
all given criteria must hold, as in policy rules). A :class:`Scenario` is an ordered list of
faults plus a ``seed``; at each phase of a session the first fault that selects it fires.

Sessions are numbered from 1 per simulator in arrival order (every WebSocket connection that
reaches the handshake, and every REST request). The probability draw for a fault and a session
depends only on ``(seed, fault index, session number)``, never on which sessions ran before or
how they interleave, so a scenario is reproducible for a given seed and arrival order.

YAML shape::

    seed: 7
    faults:
      - {action: code, phase: start, code: 50000000, every: 3}
      - {action: close, phase: audio, after_ms: 500, sessions: [2, 5]}
      - {action: code, phase: handshake, code: 503, burst: {start: 10, length: 4}}
      - {action: stall, phase: stop, delay: 2.5, probability: 0.1, service: SpeechTranscriber}
      - {action: slow, phase: start, delay: 0.2, times: 1}
      - {action: trickle, phase: start, delay: 1.0, service: SpeechRecognizer}
      - {action: garbage, phase: audio, frame: binary}
      - {action: revoke_token, phase: start, sessions: [1]}
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

import yaml

from .._catalog import catalog

Action = Literal["code", "close", "reset", "stall", "slow", "trickle", "garbage", "revoke_token"]
Phase = Literal["handshake", "start", "audio", "stop"]
Service = Literal["SpeechRecognizer", "SpeechTranscriber", "rest"]
FrameKind = Literal["text", "binary"]

ACTIONS: tuple[str, ...] = get_args(Action)
PHASES: tuple[str, ...] = get_args(Phase)
SERVICES: tuple[str, ...] = get_args(Service)
WEBSOCKET_SERVICES = ("SpeechRecognizer", "SpeechTranscriber")
DEFAULT_HANDSHAKE_STATUS = 503

# The catalog writes free text as 'xxx' / [xxx]: a fault's default text fills those in.
_TOKEN_HOLE = re.compile(r"'xxx'")
_TEXT_HOLE = re.compile(r"\[xxx\]")


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure; see the module docstring for the selection rules."""

    action: Action
    phase: Phase = "start"
    code: int | None = None
    """``code``: the TaskFailed status (at the handshake: the HTTP status, default 503)."""
    text: str | None = None
    """``code``: the status text; default: the catalog's (seed) message for the code."""
    delay: float | None = None
    """``stall``: seconds to stop answering (None = until the client or simulator gives up);
    ``slow``: seconds added before every later event; ``trickle``: seconds between the bytes of
    every later frame (REST: of the answer), a slowloris that keeps each read alive."""
    after_ms: int = 0
    """``audio`` phase: fire once this much audio (ms) has arrived."""
    frame: FrameKind = "text"
    """``garbage``: a non-JSON text frame, or a binary frame."""
    sessions: tuple[int, ...] = ()
    every: int | None = None
    probability: float | None = None
    burst: tuple[int, int] | None = None
    """``(start, length)``: sessions start … start + length - 1."""
    service: tuple[Service, ...] = ()
    """Services it applies to; empty = all."""
    times: int | None = None
    """Fire at most this many times in all (per scenario; :meth:`Scenario.reset` restarts)."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(problem)

    def _problem(self) -> str | None:
        if self.action not in ACTIONS:
            return f"action: {self.action!r} is not one of {', '.join(ACTIONS)}"
        if self.phase not in PHASES:
            return f"phase: {self.phase!r} is not one of {', '.join(PHASES)}"
        if self.code is not None and (isinstance(self.code, bool) or self.code <= 0):
            return f"code: {self.code!r} is not a status code"
        if self.action == "code" and self.phase == "handshake":
            if self.code is not None and not 100 <= self.code <= 599:
                return f"code: a handshake fault answers an HTTP status (100-599), not {self.code}"
        elif self.action == "code" and self.code is None:
            return "code: the 'code' action needs a code"
        if self.delay is not None and self.delay < 0:
            return "delay: must not be negative"
        if self.action in ("slow", "trickle") and not self.delay:
            return f"delay: the '{self.action}' action needs a delay in seconds"
        if self.after_ms < 0 or (self.after_ms and self.phase != "audio"):
            return "after_ms: a non-negative number of ms, only for the audio phase"
        if self.frame not in get_args(FrameKind):
            return f"frame: {self.frame!r} is not 'text' or 'binary'"
        if any(n < 1 for n in self.sessions):
            return "sessions: session numbers start at 1"
        if self.every is not None and self.every < 1:
            return "every: must be at least 1"
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            return "probability: must be between 0 and 1"
        if self.burst is not None and (self.burst[0] < 1 or self.burst[1] < 1):
            return "burst: start and length must be at least 1"
        if self.times is not None and self.times < 1:
            return "times: must be at least 1"
        for name in self.service:
            if name not in SERVICES:
                return f"service: {name!r} is not one of {', '.join(SERVICES)}"
            if self.phase == "handshake" and name in WEBSOCKET_SERVICES:
                # The namespace comes with the first directive, after the handshake.
                return f"service: a WebSocket handshake does not know the service ({name})"
        return None

    @property
    def http_status(self) -> int:
        """The HTTP status a handshake ``code`` fault answers."""
        return self.code if self.code is not None else DEFAULT_HANDSHAKE_STATUS

    def status_text(self, token: str = "") -> str:
        """The TaskFailed text: ``text``, else the catalog's message for the code."""
        if self.text is not None:
            return self.text
        return default_text(self.code or 0, token)

    def selects(self, session: int, service: str | None) -> bool:
        """Whether the position criteria pick this session (probability and times aside)."""
        if self.service and (service is None or service not in self.service):
            return False
        if self.sessions and session not in self.sessions:
            return False
        if self.every is not None and session % self.every != 0:
            return False
        if self.burst is not None:
            start, length = self.burst
            if not start <= session < start + length:
                return False
        return True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from a YAML/JSON mapping (keys as the fields; ``burst: {start, length}``)."""
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
        if "action" not in data:
            raise ValueError("action: missing")
        values = dict(data)
        for key, kind in (("code", int), ("every", int), ("times", int), ("after_ms", int)):
            if key in values and values[key] is not None:
                values[key] = _typed(values[key], kind, key)
        for key in ("delay", "probability"):
            if values.get(key) is not None:
                values[key] = float(_typed(values[key], (int, float), key))
        if "sessions" in values:
            raw = values["sessions"]
            items = raw if isinstance(raw, list | tuple) else [raw]
            values["sessions"] = tuple(_typed(n, int, "sessions") for n in items)
        if "service" in values:
            raw = values["service"]
            values["service"] = tuple([raw] if isinstance(raw, str) else (raw or ()))
        if values.get("burst") is not None:
            values["burst"] = _burst(values["burst"])
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The fault as a YAML-ready mapping (defaults left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if f.name == "burst":
                value = {"start": value[0], "length": value[1]}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["action"] = self.action
        return out


def _typed(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{key}: {value!r} is not a number")
    return value


def _burst(raw: Any) -> tuple[int, int]:
    if isinstance(raw, Mapping):
        if set(raw) != {"start", "length"}:
            raise ValueError("burst: expected {start: N, length: M}")
        raw = (raw["start"], raw["length"])
    if isinstance(raw, list | tuple) and len(raw) == 2:
        return (_typed(raw[0], int, "burst.start"), _typed(raw[1], int, "burst.length"))
    raise ValueError("burst: expected {start: N, length: M}")


def default_text(code: int, token: str = "") -> str:
    """The catalog's (seed) message for ``code``, its placeholders filled in."""
    entry = catalog().lookup(code)
    message = entry.message
    if message is None:
        # e.g. 40000000's general row has no text; its one-sentence row does.
        message = next((e.message for e in catalog().for_code(code) if e.message), None)
    if message is None:
        return f"Gateway:INJECTED_FAULT:Simulated failure {code}!"
    message = _TOKEN_HOLE.sub(lambda _: f"'{token or 'simulated-token'}'", message)
    return _TEXT_HOLE.sub("[Injected fault]", message)


class Scenario:
    """An ordered list of faults and the seed of their probability draws; thread-safe."""

    def __init__(self, faults: Iterable[Fault] = (), *, seed: int = 0) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        self.seed = seed
        self._lock = threading.Lock()
        self._fired = [0] * len(self.faults)

    def __repr__(self) -> str:
        return f"Scenario({list(self.faults)!r}, seed={self.seed})"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | Sequence[Any]) -> Scenario:
        """From ``{seed: N, faults: [...]}`` (or a bare list of faults)."""
        if isinstance(data, Mapping):
            unknown = set(data) - {"seed", "faults"}
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
            seed = data.get("seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed: {seed!r} is not an integer")
            items = data.get("faults") or []
        elif isinstance(data, Sequence) and not isinstance(data, str):
            seed, items = 0, data
        else:
            raise ValueError("expected a mapping with 'faults' (and 'seed'), or a list of faults")
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise ValueError("faults: expected a list")
        faults = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"faults[{index}]: expected a mapping")
            try:
                faults.append(Fault.from_mapping(item))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"faults[{index}]: {exc}") from None
        return cls(faults, seed=seed)

    @classmethod
    def from_yaml(cls, path: str) -> Scenario:
        """Load a scenario file; ValueError naming the file for any mistake in it."""
        with open(path, encoding="utf-8") as handle:
            try:
                data = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise ValueError(f"{path}: not valid YAML: {_one_line(str(exc))}") from None
        try:
            return cls.from_mapping(data if data is not None else {})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_mapping(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": [f.to_mapping() for f in self.faults]}

    def select(
        self,
        phase: Phase,
        session: int,
        service: str | None,
        *,
        audio_ms: int | None = None,
        skip: Collection[int] = (),
    ) -> tuple[int, Fault] | None:
        """The first fault that fires now, as ``(index, fault)``; counts it against ``times``.

        ``audio_ms``: audio received so far (audio phase); ``skip``: indexes that already fired
        in this session.
        """
        for index, fault in enumerate(self.faults):
            if fault.phase != phase or index in skip or not fault.selects(session, service):
                continue
            if phase == "audio" and (audio_ms is None or audio_ms < fault.after_ms):
                continue
            if fault.probability is not None and not self._draw(index, session, fault.probability):
                continue
            with self._lock:
                if fault.times is not None and self._fired[index] >= fault.times:
                    continue
                self._fired[index] += 1
            return index, fault
        return None

    def _draw(self, index: int, session: int, probability: float) -> bool:
        # A string seed goes through SHA-512 in random.Random: the same on every run and
        # platform, independent of PYTHONHASHSEED and of the order sessions interleave.
        return random.Random(f"{self.seed}/{index}/{session}").random() < probability

    @property
    def fired(self) -> tuple[int, ...]:
        """How often each fault fired so far."""
        with self._lock:
            return tuple(self._fired)

    def reset(self) -> None:
        """Forget how often faults fired (``times`` starts again)."""
        with self._lock:
            self._fired = [0] * len(self.faults)


def as_scenario(value: Scenario | Iterable[Fault] | Mapping[str, Any] | None) -> Scenario:
    """A Scenario from a Scenario, a list of faults, a mapping, or None (no faults)."""
    if value is None:
        return Scenario()
    if isinstance(value, Scenario):
        return value
    if isinstance(value, Mapping):
        return Scenario.from_mapping(value)
    return Scenario(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())

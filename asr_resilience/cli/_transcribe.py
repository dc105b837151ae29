"""``asr-resilience transcribe FILE``: real-time transcription of a file, resumed across faults.

Credentials as ``recognize`` takes them (``--token`` / ``$NLS_TOKEN``, else CreateToken with the
AccessKey pair; ``--appkey`` / ``$NLS_APPKEY``). The file goes out at real time
(docs/protocol.md "Limits": the gateway does not take bursts far faster than real time), or as fast
as the gateway takes it with ``--no-realtime``. Sentences are printed on stdout as they finish, with
their times; on a terminal a progress bar over the file and each reconnect go to stderr. The last
line counts reconnects and the audio replayed. ``--json``: one object per sentence, then a summary
object with ``"summary": true``.

Exit status as for ``recognize``: 0 done, 1 when the policy ended the stream (``cli.main`` prints
the message and hint), 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import websockets.exceptions as wsx

from ..clients import (
    AudioData,
    StreamEvent,
    StreamStats,
    Transcriber,
)
from ..clients._transcriber import DEFAULT_REPLAY_SPEED
from . import _nls_args as nls_args

PROG = "asr-resilience transcribe"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe an audio file in real time, resumed across drops and server errors",
        description=(
            "Transcribe an audio file with real-time transcription, under a policy: after a drop "
            "or a retryable code the stream resumes on a new task without losing or repeating "
            "a sentence."
        ),
    )
    nls_args.add_arguments(
        parser,
        json_help="one JSON object per sentence, then a summary",
        verbose_help="log the stream's events (reconnects, retries, token refreshes) on stderr",
    )
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="send as fast as the gateway takes it instead of at real time",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return nls_args.run_guarded(PROG, lambda: _transcribe(args))


def _transcribe(args: argparse.Namespace) -> int:
    gateway = nls_args.gateway(args)
    audio = nls_args.audio(args)
    appkey = nls_args.appkey(args)
    transcriber = Transcriber(
        gateway,
        appkey,
        nls_args.tokens(args),
        args.policy,
        sample_rate=audio.sample_rate,
        format=audio.format,
        # As transcribe_file: a file sent unpaced is replayed unpaced too.
        replay_speed=DEFAULT_REPLAY_SPEED if args.realtime else None,
        **nls_args.network(args),
    )
    printer = _Printer(sys.stdout, sys.stderr, json_lines=args.json, total=len(audio.data))
    with nls_args.events_to_stderr(args.verbose):
        try:
            asyncio.run(_stream(transcriber, audio, args.realtime, printer))
        except wsx.InvalidURI as exc:
            raise nls_args.UsageError(f"--gateway: {exc}") from None
        finally:
            printer.clear()
    printer.summary(transcriber.stats, audio)
    return 0


async def _stream(t: Transcriber, audio: AudioData, realtime: bool, printer: _Printer) -> None:
    """Send the file while a task of its own prints the events as they come."""
    consumer: asyncio.Task[None] | None = None
    try:
        async with t:
            consumer = asyncio.create_task(_consume(t, printer))
            await t.send_all(_counted(audio, printer), realtime=realtime)
            await t.finish()
        await consumer
    finally:
        if consumer is not None:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


async def _consume(t: Transcriber, printer: _Printer) -> None:
    async for event in t:
        printer.event(event)


def _counted(audio: AudioData, printer: _Printer) -> Iterator[bytes]:
    for frame in audio.frames():
        yield frame
        printer.progress(len(frame))


def clock(ms: int) -> str:
    """``mm:ss.mmm`` (``h:mm:ss.mmm`` from an hour on)."""
    seconds, millis = divmod(max(0, ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{minutes:02d}:{seconds:02d}.{millis:03d}"
    return f"{hours}:{text}" if hours else text


class _Printer:
    """Sentences on stdout; the progress bar, reconnects and gaps on stderr."""

    WIDTH = 30

    def __init__(self, out: TextIO, err: TextIO, *, json_lines: bool, total: int) -> None:
        self.out, self.err = out, err
        self.json_lines = json_lines
        self.total = max(total, 1)
        self.sent = 0
        self.terminal = err.isatty()
        self._drawn = -1

    def event(self, event: StreamEvent) -> None:
        if event.kind == "end":
            self.clear()
            if self.json_lines:
                fields = {
                    "index": event.index,
                    "begin_time": event.begin_time,
                    "end_time": event.end_time,
                    "text": event.text,
                }
                self.out.write(json.dumps(fields, ensure_ascii=False) + "\n")
            else:
                times = f"{clock(event.begin_time)} → {clock(event.end_time)}"
                self.out.write(f"{times}  {event.text}\n")
            self.out.flush()
            self._draw()
        elif event.kind == "reconnect" and self.terminal:
            self.clear()
            self.err.write(
                f"↻ reconnected after {event.cause} at {clock(event.resume_time)}, "
                f"{event.replayed_ms / 1000:.1f} s of audio replayed\n"
            )
            self._draw()
        elif event.kind == "gap":
            self.clear()
            self.err.write(
                f"{PROG}: warning: audio {clock(event.begin_time)}–{clock(event.end_time)} "
                "could not be replayed after a reconnect: a sentence there may be cut\n"
            )
            self._draw()

    def progress(self, sent: int) -> None:
        self.sent += sent
        filled = self.WIDTH * self.sent // self.total
        if filled != self._drawn:
            self._draw()

    def _draw(self) -> None:
        if not self.terminal:
            return
        filled = self.WIDTH * min(self.sent, self.total) // self.total
        self._drawn = filled
        percent = 100 * min(self.sent, self.total) // self.total
        self.err.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}%")
        self.err.flush()

    def clear(self) -> None:
        """Wipe the bar so that a line can be printed (it is drawn again after)."""
        if self.terminal and self._drawn >= 0:
            self.err.write("\r\033[K")
            self.err.flush()

    def summary(self, stats: StreamStats, audio: AudioData) -> None:
        if self.json_lines:
            fields: dict[str, Any] = {
                "summary": True,
                "sentences": stats.sentences,
                "reconnects": stats.reconnects,
                "replayed_seconds": round(stats.replayed_seconds, 3),
                "gaps": stats.gaps,
                "audio_seconds": None if audio.duration_ms is None else audio.duration_ms / 1000,
            }
            self.out.write(json.dumps(fields) + "\n")
        else:
            gaps = f", {stats.gaps} gap(s) ({stats.gap_ms / 1000:.1f} s)" if stats.gaps else ""
            self.out.write(
                f"{stats.sentences} sentences, {stats.reconnects} reconnects, "
                f"{stats.replayed_seconds:.1f} s of audio replayed{gaps}\n"
            )
        self.out.flush()

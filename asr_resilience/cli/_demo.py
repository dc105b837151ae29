"""``asr-resilience demo``: the library doing its job against an embedded chaos simulator."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import structlog

from .._extras import requires_extra
from ..observe import redact_processor
from ..policy import load_policy

OUTPUT_DIR = "demo-output"
DEFAULT_LOG = f"{OUTPUT_DIR}/events.log"
"""Where the events go unless ``--log`` says otherwise (the folder is created)."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run a chaos scenario against the embedded simulator and report",
        description=(
            "Start the embedded NLS simulator with a chaos scenario (token revoked mid-run, a "
            "quota below the client's concurrency, gRPC error bursts, dropped connections, a "
            "few fix-client and fail-fast cases) and drive a workload through the resilient "
            "clients. Exit 0 when every call ended as the scenario says it should."
        ),
    )
    parser.add_argument("--policy", default="production", help="policy file or shipped name")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw the run as a timeline (extra plot)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--log", metavar="FILE", default=DEFAULT_LOG, help="structlog events file")
    parser.add_argument("--verbose", action="store_true", help="events to the console instead")
    parser.add_argument(
        "--no-fleet", action="store_true", help="skip the fleet part even when Redis answers"
    )
    parser.set_defaults(handler=run)


def _configure_logging(verbose: bool, log_path: Path) -> TextIO | None:
    """Events to the console (verbose) or as JSON lines to a file; redacted either way."""
    if verbose:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="%H:%M:%S"),
                redact_processor,
                structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
            ],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        return None
    handle = log_path.open("w", encoding="utf-8")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            redact_processor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(handle),
    )
    return handle


class _Bar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.live:
            return
        width = 30
        filled = width * done // max(total, 1)
        elapsed = time.monotonic() - self.start
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} calls  {elapsed:4.1f} s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    # The demo runs the simulator (extra ``simulator``) and draws with matplotlib (extra
    # ``plot``): a missing one is said in one line before anything runs.
    with requires_extra("asr-resilience demo"):
        from ..demo import _fleet as fleet
        from ..demo import _plan as plan
        from ..demo import _report as report
        from ..demo import _runner as runner
        from ..demo._record import Recorder
    if args.plot:
        with requires_extra("asr-resilience demo --plot"):
            import matplotlib  # noqa: F401

    policy = load_policy(args.policy)
    if args.log == DEFAULT_LOG:
        Path(OUTPUT_DIR).mkdir(exist_ok=True)
    for option, value in (("--json", args.json), ("--plot", args.plot), ("--log", args.log)):
        # Check where the results go before the run, not after it.
        if value and not Path(value).resolve().parent.is_dir():
            sys.stderr.write(f"asr-resilience demo: {option} {value}: no such directory\n")
            return 2
    log_path = Path(args.log).resolve()
    handle = _configure_logging(args.verbose, log_path)
    recorder = Recorder()
    bar = _Bar(sys.stderr)
    redis_url = None if args.no_fleet else fleet.redis_url()
    skipped = None
    if args.no_fleet:
        skipped = "--no-fleet"
    elif redis_url is None:
        skipped = f"no Redis answers at 127.0.0.1:6379 or ${fleet.REDIS_ENV}"
    chaos_calls = len(plan.workload())
    fleet_calls = 0 if skipped else fleet.WORKERS * fleet.CALLS
    try:
        fleet_part = (
            f"fleet part skipped ({skipped})"
            if skipped
            else f"{fleet_calls} in the fleet part ({fleet.WORKERS} worker processes x "
            f"{fleet.CALLS} calls, account quota {fleet.QUOTA} shared through Redis)"
        )
        sys.stderr.write(
            f"asr-resilience demo: {chaos_calls + fleet_calls} calls: {chaos_calls} in the chaos "
            f"part (account quota {plan.QUOTA}, client concurrency {plan.CONCURRENCY}); "
            f"{fleet_part}\n"
        )
        extra = asyncio.run(runner.run(policy, recorder, bar, fleet_redis=redis_url))
        extra["fleet_skipped"] = skipped
    finally:
        bar.close()
        structlog.reset_defaults()
        if handle is not None:
            handle.close()
    data = report.summary(recorder, extra, policy)
    sys.stdout.write(report.table(data) + "\n")
    if not args.verbose:
        sys.stdout.write(f"\nevents: {log_path}\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        sys.stdout.write(f"summary: {Path(args.json).resolve()}\n")
    if args.plot:
        from ..demo._plot import timeline

        timeline(recorder, args.plot, plan.QUOTA, data.get("fleet"))
        sys.stdout.write(f"timeline: {Path(args.plot).resolve()}\n")
    return 0 if not data["mismatches"] else 1

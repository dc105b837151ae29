"""The ``asr-resilience`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._errors import AsrResilienceError, PolicyError
from .._extras import MissingExtraError
from .._version import VERSION
from ..observe import redact_text
from . import _demo as demo
from . import _explain as explain
from . import _policy_cmd as policy_cmd
from . import _recognize as recognize
from . import _simulate as simulate
from . import _transcribe as transcribe
from ._text import one_line

DEBUG_ENV = "ASR_RESILIENCE_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake exits 2 with the usage and a hint, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for help.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="asr-resilience",
        description="Make Alibaba Cloud NLS speech recognition survive the vendor's error table.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    explain.register(commands)
    policy_cmd.register(commands)
    recognize.register(commands)
    transcribe.register(commands)
    simulate.register(commands)
    demo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except PolicyError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except AsrResilienceError as exc:
        sys.stderr.write(f"asr-resilience: {one_line(str(exc))}\n")
        return 1
    except MissingExtraError as exc:
        sys.stderr.write(f"asr-resilience: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # A file the user named cannot be read or written: say which, in one line.
        sys.stderr.write(f"asr-resilience: {one_line(str(exc))}\n")
        return 2
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        sys.stderr.write(
            f"asr-resilience: unexpected {type(exc).__name__}: {one_line(redact_text(str(exc)))} "
            f"(set {DEBUG_ENV}=1 for the traceback)\n"
        )
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

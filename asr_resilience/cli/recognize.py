"""``asr-resilience recognize FILE``: one-sentence recognition of a file, resilient, from a shell.

The token comes from ``--token``, else ``$NLS_TOKEN``, else CreateToken with the AccessKey pair
in ``$ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``$ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (PROTOCOL.md
"Authentication"); the appkey from ``--appkey``, else ``$NLS_APPKEY``. Mistakes of the caller
(credentials, appkey, audio, URLs) exit 2 with one line; a call that ends in a typed error exits
1 with its message and hint (``cli.main`` prints those). The transcript goes to stdout; with
``--verbose`` the call's events (retries, refreshes) go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import structlog
import websockets.exceptions as wsx

from ..clients import DEFAULT_GATEWAY, Recognition, Recognizer, load_audio
from ..clients.credentials import APPKEY_ENV, TOKEN_ENV
from ..errors import AsrResilienceError
from ..tokens import StaticToken, TokenManager

PROG = "asr-resilience recognize"


class _UsageError(Exception):
    """A mistake of the caller: one line on stderr, exit 2."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "recognize",
        help="recognise a short audio file (one-sentence recognition, up to 60 s)",
        description=(
            "Recognise an audio file with one-sentence recognition, under a policy: expired "
            "tokens are refreshed, throttling and dropped connections are retried."
        ),
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help="16-bit mono WAV at 8 or 16 kHz, or pcm/opus/mp3/... named by its extension",
    )
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY, metavar="URL", help="WebSocket URL")
    parser.add_argument(
        "--meta",
        default=None,
        metavar="URL",
        help="CreateToken endpoint for the AccessKey pair (default: the vendor's nls-meta)",
    )
    parser.add_argument("--appkey", default=None, help=f"the project's appkey (${APPKEY_ENV})")
    parser.add_argument("--token", default=None, help=f"an NLS token (${TOKEN_ENV})")
    parser.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="policy file or shipped name (default: $ASR_RESILIENCE_POLICY or default)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log the call's events (retries, token refreshes) on stderr",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = _recognize(args)
    except _UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2
    except AsrResilienceError:
        raise  # cli.main prints the message and the hint
    except Exception as exc:  # never a traceback
        sys.stderr.write(f"{PROG}: error: {type(exc).__name__}: {exc}\n")
        return 1
    if args.json:
        fields = {
            "text": result.text,
            "task_id": result.task_id,
            "duration": result.duration,
            "attempts": result.attempts,
        }
        sys.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(result.text + "\n")
    return 0


def _recognize(args: argparse.Namespace) -> Recognition:
    try:
        audio = load_audio(args.file)
    except OSError as exc:
        raise _UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    appkey = args.appkey or os.environ.get(APPKEY_ENV, "")
    if not appkey:
        raise _UsageError(f"no appkey: pass --appkey or set {APPKEY_ENV}")
    recognizer = Recognizer(args.gateway, appkey, _tokens(args), args.policy)
    with _events_to_stderr(args.verbose):
        try:
            return asyncio.run(
                recognizer.recognize(audio.data, format=audio.format, sample_rate=audio.sample_rate)
            )
        except wsx.InvalidURI as exc:
            raise _UsageError(f"--gateway: {exc}") from None


def _tokens(args: argparse.Namespace) -> TokenManager:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if token:
        return TokenManager(StaticToken(token))
    # Imported here: the provider needs an optional extra that only this path uses.
    from ..tokens.aliyun import ACCESS_KEY_ID_ENV, ACCESS_KEY_SECRET_ENV, AliyunTokenProvider

    key_id = os.environ.get(ACCESS_KEY_ID_ENV, "")
    secret = os.environ.get(ACCESS_KEY_SECRET_ENV, "")
    if not (key_id and secret):
        raise _UsageError(
            f"no credentials: pass --token, set {TOKEN_ENV}, or set {ACCESS_KEY_ID_ENV} and "
            f"{ACCESS_KEY_SECRET_ENV} to create tokens"
        )
    try:
        provider = AliyunTokenProvider(key_id, secret, endpoint=args.meta)
    except (ImportError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    return TokenManager(provider)


@contextlib.contextmanager
def _events_to_stderr(verbose: bool) -> Iterator[None]:
    """The call's structlog events on stderr (stdout is the transcript), and only if asked:
    a failure is reported once, by the error's own line."""
    was_configured = structlog.is_configured()
    previous = structlog.get_config()
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.CRITICAL
        ),
    )
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**previous)
        else:
            structlog.reset_defaults()

"""``asr-resilience recognize FILE``: one-sentence recognition of a file, resilient, from a shell.

The token comes from ``--token``, else ``$NLS_TOKEN``, else CreateToken with the AccessKey pair in
``$ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``$ALIBABA_CLOUD_ACCESS_KEY_SECRET``
(docs/protocol.md "CreateToken"); the appkey from ``--appkey``, else ``$NLS_APPKEY``. Mistakes of
the caller (credentials, appkey, audio, URLs) exit 2 with one line; a call that ends in a typed
error exits 1 with its message and hint (``cli.main`` prints those). The transcript goes to stdout;
with ``--verbose`` the call's events (retries, refreshes) go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import websockets.exceptions as wsx

from ..clients import Recognition, Recognizer
from . import _nls_args as nls_args

PROG = "asr-resilience recognize"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "recognize",
        help="recognise a short audio file (one-sentence recognition, up to 60 s)",
        description=(
            "Recognise an audio file with one-sentence recognition, under a policy: expired "
            "tokens are refreshed, throttling and dropped connections are retried."
        ),
    )
    nls_args.add_arguments(
        parser,
        json_help="print one JSON object",
        verbose_help="log the call's events (retries, token refreshes) on stderr",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return nls_args.run_guarded(PROG, lambda: _print(_recognize(args), args.json))


def _print(result: Recognition, as_json: bool) -> int:
    if as_json:
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
    gateway = nls_args.gateway(args)
    audio = nls_args.audio(args, one_sentence=True)
    recognizer = Recognizer(
        gateway,
        nls_args.appkey(args),
        nls_args.tokens(args),
        args.policy,
        **nls_args.network(args),
    )
    with nls_args.events_to_stderr(args.verbose):
        try:
            return asyncio.run(
                recognizer.recognize(audio.data, format=audio.format, sample_rate=audio.sample_rate)
            )
        except wsx.InvalidURI as exc:
            raise nls_args.UsageError(f"--gateway: {exc}") from None

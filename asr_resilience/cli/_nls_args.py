"""What the commands that call NLS share: their arguments, credentials, audio and error lines.

The token comes from ``--token``, else ``$NLS_TOKEN``, else CreateToken with Alibaba Cloud
credentials: the AccessKey pair in ``$ALIBABA_CLOUD_ACCESS_KEY_ID`` /
``$ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (plus ``$ALIBABA_CLOUD_SECURITY_TOKEN``), else the vendor's
credentials chain (docs/protocol.md "CreateToken", "Credentials"); the appkey from ``--appkey``,
else ``$NLS_APPKEY``. The gateway is ``--gateway``, else ``--region``'s, else ``$NLS_GATEWAY_URL``,
else ``$NLS_REGION``'s, else cn-shanghai's; CreateToken's host likewise with ``--meta`` and
``$NLS_META_URL`` (docs/protocol.md "Regions and endpoints"). ``--proxy``, ``--no-proxy`` and
``--cacert`` reach every connection, CreateToken's included (README "Proxies and TLS"). A mistake
of the caller exits 2 with one line; a typed resilience error is left to ``cli.main`` (message,
hint, exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import structlog

from .._endpoints import REGIONS, UnknownRegionError, resolve_url
from .._errors import AsrResilienceError
from .._extras import MissingExtraError
from .._network import shown_proxy
from ..clients import (
    ONE_SENTENCE_MAX_BYTES,
    ONE_SENTENCE_MAX_SECONDS,
    AudioData,
    load_audio,
)
from ..clients._credentials import APPKEY_ENV, TOKEN_ENV
from ..tokens import StaticToken, TokenManager
from ._text import one_line


class UsageError(Exception):
    """A mistake of the caller: one line on stderr, exit 2."""


def add_arguments(parser: Any, *, json_help: str, verbose_help: str) -> None:
    """FILE, --region, --gateway, --meta, --appkey, --token, --proxy, --no-proxy, --cacert,
    --policy, --json and -v/--verbose."""
    parser.add_argument(
        "file",
        metavar="FILE",
        help="16-bit mono WAV at 8 or 16 kHz, or pcm/opus/mp3/... named by its extension",
    )
    parser.add_argument(
        "--region",
        default=None,
        metavar="REGION",
        help=f"the service's region: {', '.join(REGIONS)} (default: $NLS_REGION or cn-shanghai)",
    )
    parser.add_argument(
        "--gateway",
        default=None,
        metavar="URL",
        help="WebSocket URL (default: the region's gateway, or $NLS_GATEWAY_URL)",
    )
    parser.add_argument(
        "--meta",
        default=None,
        metavar="URL",
        help="CreateToken endpoint (default: the region's nls-meta, or $NLS_META_URL)",
    )
    parser.add_argument("--appkey", default=None, help=f"the project's appkey (${APPKEY_ENV})")
    parser.add_argument("--token", default=None, help=f"an NLS token (${TOKEN_ENV})")
    parser.add_argument(
        "--proxy",
        default=None,
        metavar="URL",
        help="HTTP(S) proxy, e.g. http://user:pass@proxy:3128 "
        "(default: $https_proxy / $http_proxy / $all_proxy, minus $no_proxy)",
    )
    parser.add_argument(
        "--no-proxy",
        action="store_true",
        help="connect directly, whatever the proxy variables say",
    )
    parser.add_argument(
        "--cacert",
        default=None,
        metavar="FILE",
        help="CA bundle (PEM) that the gateway's and the meta service's certificates chain to",
    )
    parser.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="policy file or shipped name (default: $ASR_RESILIENCE_POLICY or default)",
    )
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)


def run_guarded(prog: str, work: Callable[[], int]) -> int:
    """Run a command's work: usage mistakes and unexpected errors become one line."""
    try:
        return work()
    except UsageError as exc:
        sys.stderr.write(f"{prog}: error: {one_line(str(exc))}\n")
        return 2
    except (AsrResilienceError, MissingExtraError):
        raise  # cli.main prints the message and the hint
    except Exception as exc:  # never a traceback
        sys.stderr.write(f"{prog}: error: {type(exc).__name__}: {one_line(str(exc))}\n")
        return 1


def audio(args: argparse.Namespace, *, one_sentence: bool = False) -> AudioData:
    """The FILE argument's audio; unreadable, unsupported or too long files are usage mistakes.

    ``one_sentence`` refuses audio past the one-sentence limits (60 s, 2 MB) before reading it.
    """
    try:
        if one_sentence:
            return load_audio(
                args.file, max_seconds=ONE_SENTENCE_MAX_SECONDS, max_bytes=ONE_SENTENCE_MAX_BYTES
            )
        return load_audio(args.file)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def checked_url(value: str, option: str, schemes: tuple[str, ...]) -> str:
    """``value`` if it is a URL with one of ``schemes``, a host and a valid port; else a
    UsageError naming ``option`` (checked before any I/O, so a typo is one line, exit 2)."""
    shown = repr(value if len(value) <= 100 else value[:97] + "...")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port outside 0..65535)
    except ValueError as exc:
        raise UsageError(f"{option}: {shown} is not a valid URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise UsageError(f"{option}: {shown} is not a URL starting with {wanted} and a host")
    return value


def gateway(args: argparse.Namespace) -> str:
    """The gateway by ``--gateway`` / ``--region`` / the environment, checked: a ws:// or wss://
    URL (one from the environment is named by its variable)."""
    url = resolve_url("gateway", args.gateway, region(args))
    where = "--gateway" if args.gateway else "$NLS_GATEWAY_URL"
    return checked_url(url, where, ("ws", "wss"))


def region(args: argparse.Namespace) -> str | None:
    """``--region`` if given and known; an unknown region (there or in ``$NLS_REGION``) is a
    usage mistake listing the known ones."""
    try:
        resolve_url("gateway", None, args.region)
    except UnknownRegionError as exc:
        text = str(exc).replace("region ", "--region ", 1) if args.region else str(exc)
        raise UsageError(text) from None
    return args.region  # type: ignore[no-any-return]


def network(args: argparse.Namespace) -> dict[str, Any]:
    """``proxy=`` and ``ssl=`` for the clients and the token provider, from ``--proxy``,
    ``--no-proxy`` and ``--cacert`` (checked: a bad value is one line, exit 2)."""
    if args.proxy is not None and args.no_proxy:
        raise UsageError("--proxy and --no-proxy contradict each other: pass one")
    proxy: str | bool | None = True
    if args.no_proxy:
        proxy = None
    elif args.proxy is not None:
        checked_url(shown_proxy(args.proxy), "--proxy", ("http", "https"))
        proxy = args.proxy
    if args.cacert is not None and not os.path.isfile(args.cacert):
        raise UsageError(f"--cacert: {args.cacert!r} is not a file")
    return {"proxy": proxy, "ssl": args.cacert}


def appkey(args: argparse.Namespace) -> str:
    """``--appkey`` or ``$NLS_APPKEY``."""
    value: str = args.appkey or os.environ.get(APPKEY_ENV, "")
    if not value:
        raise UsageError(f"no appkey: pass --appkey or set {APPKEY_ENV}")
    return value


def tokens(args: argparse.Namespace) -> TokenManager:
    """A static token, or tokens from CreateToken with Alibaba Cloud credentials (the pair in the
    environment, else the vendor's credentials chain)."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if token:
        return TokenManager(StaticToken(token))
    # Imported here: the provider needs an optional extra that only this path uses.
    from ..tokens._aliyun import (
        ACCESS_KEY_ID_ENV,
        ACCESS_KEY_SECRET_ENV,
        AliyunTokenProvider,
        CredentialsError,
    )

    if args.meta is not None and "://" in args.meta:
        checked_url(args.meta, "--meta", ("http", "https"))
    try:
        provider = AliyunTokenProvider(endpoint=args.meta, region=region(args), **network(args))
    except (ImportError, OSError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        where = "--meta: " if args.meta is not None and "endpoint" in str(exc) else ""
        raise UsageError(f"{where}{exc}") from None
    try:
        provider.find_credentials()  # before any audio is sent: a missing one is a usage mistake
    except CredentialsError:
        raise UsageError(
            f"no credentials: pass --token, set {TOKEN_ENV}, or set {ACCESS_KEY_ID_ENV} and "
            f"{ACCESS_KEY_SECRET_ENV} (or configure another source of the vendor's credentials "
            "chain, e.g. ~/.alibabacloud/credentials.ini) to create tokens"
        ) from None
    return TokenManager(provider)


@contextlib.contextmanager
def events_to_stderr(verbose: bool) -> Iterator[None]:
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

"""``asr-resilience simulate``: run the NLS gateway simulator until SIGINT / SIGTERM.

Prints one JSON line first (``gateway``, ``meta``, ``rest``, ``appkey``, ``access_key_id``,
``access_key_secret``, ``token``) so a script can read where to connect, then serves. With
``--env`` the same values come out as shell ``export`` lines under the names the library and the
examples read for the real service (``NLS_GATEWAY_URL``, ``NLS_APPKEY``, ``NLS_TOKEN``, ...),
followed by one empty line, so the same code runs against either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from .._extras import requires_extra

if TYPE_CHECKING:
    from ..simulator import AccountStore


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run a fault-injecting NLS gateway simulator (WebSocket, REST, CreateToken)",
        description=(
            "Run the NLS gateway simulator on loopback until interrupted. The first line of "
            "output is JSON (with --env: shell export lines): the URLs, the default account's "
            "appkey and AccessKey, and a token."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=0, help="WebSocket port (0: a free one)")
    parser.add_argument(
        "--http-port", type=_port, default=0, help="REST and CreateToken port (0: a free one)"
    )
    parser.add_argument("--accounts", metavar="FILE", help="accounts YAML (accounts: [...])")
    parser.add_argument("--scenario", metavar="FILE", help="fault scenario YAML")
    parser.add_argument(
        "--quota", type=_positive_int, help="concurrent connections per account (all accounts)"
    )
    parser.add_argument(
        "--token-ttl", type=_positive_float, metavar="SECONDS", help="lifetime of issued tokens"
    )
    parser.add_argument(
        "--realtime-factor",
        type=_positive_factor,
        metavar="X",
        help="process real-time transcription audio at most X times real time (e.g. 1: as the "
        "service; default: as fast as it arrives)",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="print the connection values as shell export lines instead of JSON",
    )
    parser.set_defaults(handler=run)


ENV_NAMES = (
    ("NLS_GATEWAY_URL", "gateway"),
    ("NLS_REST_URL", "rest"),
    ("NLS_META_URL", "meta"),
    ("NLS_APPKEY", "appkey"),
    ("NLS_TOKEN", "token"),
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", "access_key_id"),
    ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access_key_secret"),
)
"""``--env``: the variable for each key of ``Simulator.info()``. ``NLS_TOKEN``, ``NLS_APPKEY``
and the AccessKey pair are the names the clients, the CLI and ``AliyunTokenProvider`` read; the
URLs are the simulator's stand-ins for the service's endpoints (``NLS_META_URL``: CreateToken)."""


def env_lines(info: dict[str, str]) -> str:
    """``info`` as ``export NAME=value`` lines, shell-quoted."""
    return "".join(f"export {name}={shlex.quote(info[key])}\n" for name, key in ENV_NAMES)


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _positive_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    # Imported here: the simulator needs the optional ``simulator`` extra (numpy, aiohttp).
    with requires_extra("asr-resilience simulate"):  # a missing extra: cli.main says which
        from ..simulator import Scenario, Simulator, SimulatorConfig
    try:
        store = _accounts(args.accounts, args.quota)
        scenario = Scenario.from_yaml(args.scenario) if args.scenario else Scenario()
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        return _error(_one_line(exc))
    config = SimulatorConfig(token_ttl=args.token_ttl, realtime_factor=args.realtime_factor)
    simulator = Simulator(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        accounts=store,
        scenario=scenario,
        config=config,
    )
    try:
        asyncio.run(_serve(simulator, env=args.env))
    except OSError as exc:  # e.g. the port is taken
        return _error(_one_line(exc))
    return 0


def _accounts(path: str | None, quota: int | None) -> AccountStore:
    from ..simulator import Account, AccountStore

    if path is None:
        return AccountStore([Account(quota=quota)])
    try:
        store = AccountStore.from_file(path)
        if quota is not None:
            # The store does not list its accounts; the file (valid: from_file read it) does.
            with open(path, encoding="utf-8") as handle:
                for item in yaml.safe_load(handle)["accounts"]:
                    store.get(item.get("name", Account.name)).quota = quota
    except (ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        message = _one_line(exc)
        raise ValueError(message if message.startswith(path) else f"{path}: {message}") from None
    return store


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError | ValueError):
        return text
    return f"{type(exc).__name__}: {text}"


async def _serve(simulator: Any, *, env: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with simulator:
        info = simulator.info()
        # --env ends with an empty line: a reader knows the block is complete.
        sys.stdout.write(env_lines(info) + "\n" if env else json.dumps(info) + "\n")
        sys.stdout.flush()
        await stop.wait()


def _error(message: str) -> int:
    sys.stderr.write(f"asr-resilience simulate: error: {message}\n")
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr_resilience.cli._simulate [options]``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="asr-resilience")
    register(parser.add_subparsers())
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    status: int = args.handler(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

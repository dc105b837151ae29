"""The simulator: the WebSocket gateway, the REST endpoint, the meta service and a source of STS
credentials, in one loop.

:class:`Simulator` runs in the caller's asyncio loop; :class:`SimulatorThread` runs the same
simulator in a background thread with its own loop, for synchronous code and for tests whose
loop must not host the server.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from ssl import SSLContext
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.protocol import State

from ..observe._stdlib import redacting_logger
from ._accounts import Account, AccountStore, StsCredentials
from ._config import MAX_REST_BYTES, SimulatorConfig
from ._context import SimulatorContext
from ._gateway import PATH, Gateway
from ._rest import PATH as REST_PATH
from ._rest import add_rest_routes
from ._scenario import Fault, Scenario, as_scenario
from ._stats import SimulatorStats
from ._sts import STS_PATH, add_sts_routes

ScenarioLike = Scenario | Iterable[Fault] | Mapping[str, Any] | None
MetaRoutes = Callable[..., None]
STOP_GRACE = 5.0
"""Seconds stop() lets connections close before it cancels their handlers."""


def _meta_routes() -> MetaRoutes | None:
    """``meta.add_meta_routes`` (CreateToken), or None in an installation without it."""
    name = f"{__package__}._meta"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # meta exists but is broken: say so rather than serve without it
        return None
    routes: MetaRoutes = module.add_meta_routes
    return routes


class Simulator:
    """A fault-injecting NLS gateway on loopback; an async context manager.

    ``ssl``: a server-side :class:`ssl.SSLContext` (its certificate chain loaded) to serve TLS
    on both ports: the URLs are then ``wss://`` and ``https://``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int = 0,
        accounts: Iterable[Account] | AccountStore | None = None,
        scenario: ScenarioLike = None,
        config: SimulatorConfig | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl = ssl
        self.port = port
        self.http_port = http_port
        if isinstance(accounts, AccountStore):
            self.store = accounts
        else:
            self.store = AccountStore(accounts or ())
        self.stats = SimulatorStats()
        self._ctx = SimulatorContext(
            self.store, config or SimulatorConfig(), as_scenario(scenario), self.stats
        )
        if self._ctx.config.token_ttl is not None:
            self.store.token_ttl = self._ctx.config.token_ttl
        self.gateway_url = ""
        self.meta_url = ""
        self.rest_url = ""
        self._ws: Server | None = None
        self._gateway: Gateway | None = None
        self._runner: web.AppRunner | None = None

    # -- what tests change while it runs -----------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self._ctx.config

    @config.setter
    def config(self, value: SimulatorConfig) -> None:
        self._ctx.config = value

    @property
    def scenario(self) -> Scenario:
        return self._ctx.scenario

    @scenario.setter
    def scenario(self, value: ScenarioLike) -> None:
        self.set_scenario(value)

    def set_scenario(self, scenario: ScenarioLike) -> Scenario:
        """Replace the faults (a Scenario, a list of Fault, a mapping, or None for none)."""
        self._ctx.scenario = as_scenario(scenario)
        return self._ctx.scenario

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change config fields in place, e.g. ``configure(idle_timeout=0.2)``."""
        config = self._ctx.config
        unknown = set(changes) - {f.name for f in fields(config)}
        if unknown:
            raise TypeError(f"unknown SimulatorConfig fields: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(config, name, value)
        if changes.get("token_ttl") is not None:
            self.store.token_ttl = changes["token_ttl"]
        return config

    def add_account(self, account: Account | None = None, **fields: Any) -> Account:
        """Add an account (or build one from ``Account`` fields)."""
        return self.store.add(account if account is not None else Account(**fields))

    @property
    def appkey(self) -> str:
        """The default account's first appkey."""
        return self.store.default.appkeys[0]

    def token(self, account: str | None = None, ttl: float | None = None) -> str:
        """A valid token of ``account`` (default: the default account)."""
        owner = self.store.get(account) if account is not None else self.store.default
        lifetime = ttl if ttl is not None else self.config.token_ttl
        return self.store.issue_token(owner, lifetime).value

    def issue_sts(self, account: str | None = None, ttl: float = 3600.0) -> StsCredentials:
        """New STS credentials of ``account`` (default: the default account) that CreateToken
        accepts for ``ttl`` seconds (negative: already expired)."""
        owner = self.store.get(account) if account is not None else self.store.default
        return self.store.issue_sts(owner, ttl)

    def credentials_uri(self, ttl: float = 3600.0, account: str | None = None) -> str:
        """A URL that hands out fresh STS credentials at every GET, in the form the vendor's
        credentials library reads from ``ALIBABA_CLOUD_CREDENTIALS_URI``."""
        query = urlencode({"ttl": f"{ttl:g}", **({"account": account} if account else {})})
        return f"{self.meta_url.rstrip('/')}{STS_PATH}?{query}"

    def info(self) -> dict[str, str]:
        """What a client needs: URLs, appkey, AccessKey pair and a fresh token."""
        account = self.store.default
        return {
            "gateway": self.gateway_url,
            "meta": self.meta_url,
            "rest": self.rest_url,
            "appkey": self.appkey,
            "access_key_id": account.access_key_id,
            "access_key_secret": account.access_key_secret,
            "token": self.token(),
        }

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the gateway and HTTP ports (0 = free ones); URLs are set afterwards."""
        ctx = self._ctx
        ctx.begin()
        gateway = self._gateway = Gateway(ctx)
        self._ws = await serve(
            gateway.handler,
            self.host,
            self.port,
            process_request=gateway.process_request,
            # Speed and predictability over features: no compression of audio frames, no
            # keepalive pings interfering with stall faults (the session's idle timers close
            # dead clients), and no handshake timeout cutting a handshake stall short.
            compression=None,
            ping_interval=None,
            open_timeout=None,
            close_timeout=2,
            server_header="nls-simulator",
            ssl=self.ssl,
            # websockets logs request headers at DEBUG: keep tokens out of them.
            logger=redacting_logger("asr_resilience.simulator.websockets"),
        )
        port = self._ws.sockets[0].getsockname()[1]
        app = web.Application(client_max_size=MAX_REST_BYTES * 2)
        add_rest_routes(app, ctx)
        meta_routes = _meta_routes()
        if meta_routes is not None:
            meta_routes(app, self.store, throttle_interval=ctx.config.meta_throttle_interval)
        add_sts_routes(app, self.store)
        # handler_cancellation: a REST client that leaves ends its request (and frees its slot),
        # as a WebSocket client that closes ends a stalled session.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port, ssl_context=self.ssl)
        await site.start()
        http_port = self._runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.port, self.http_port = port, http_port
        tls = "s" if self.ssl is not None else ""
        self.gateway_url = f"ws{tls}://{host}:{port}{PATH}"
        self.meta_url = f"http{tls}://{host}:{http_port}/"
        self.rest_url = f"http{tls}://{host}:{http_port}{REST_PATH}"

    async def close_leftover_connections(self, grace: float = 1.0) -> list[str]:
        """Drop the WebSocket connections still there after ``grace`` seconds; describe the
        ones the client left open.

        Connections already closing get ``grace`` seconds to finish (waited for, not polled).
        Then every connection left is aborted at once, instead of :meth:`stop` waiting up to
        two seconds for a close handshake that will not come. The result names each one the
        client left open (session, task, client address, age) for a report; one whose client
        had begun to close but did not finish the close handshake (the official SDK's shutdown
        sometimes) is dropped without being named.
        """
        server, gateway = self._ws, self._gateway
        if server is None or gateway is None:
            return []
        present = [c for c in _every_connection(server) if c.state is not State.CLOSED]
        if present:
            waits = [asyncio.ensure_future(c.wait_closed()) for c in present]
            try:
                await asyncio.wait(waits, timeout=grace)
            finally:
                for wait in waits:
                    wait.cancel()
        left = [c for c in present if c.state is not State.CLOSED]
        described = [
            gateway.describe(c)
            for c in sorted(left, key=lambda c: str(c.remote_address))
            if c.state is State.OPEN
        ]
        for connection in left:
            connection.transport.abort()
        return described

    async def stop(self) -> None:
        """Close every connection and stop listening; injected stalls end at once."""
        self._ctx.stopping.set()
        if self._ws is not None:
            server, self._ws = self._ws, None
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), STOP_GRACE)
            except asyncio.TimeoutError:
                for task in list(server.handler_tasks):
                    task.cancel()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class SimulatorThread:
    """The simulator in a background thread with its own event loop; a context manager.

    Takes :class:`Simulator`'s keyword arguments. Everything here may be called from any thread:
    the account store and scenario are thread-safe, and config changes are plain assignments.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.simulator = Simulator(**kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        """Start serving; returns once the ports listen."""
        if self._thread is not None:
            raise RuntimeError("the simulator thread is already running")
        self._ready.clear()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="nls-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        error = self._take_error()
        if error is not None:
            self._thread.join()
            self._thread = None
            raise error
        return self

    def _take_error(self) -> BaseException | None:
        error, self._error = self._error, None
        return error

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.simulator.start())
        except BaseException as exc:  # handed to start()'s caller
            self._error = exc
            loop.run_until_complete(self.simulator.stop())  # whatever did start
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.simulator.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close_leftover_connections(self, grace: float = 1.0) -> list[str]:
        """:meth:`Simulator.close_leftover_connections`, run in the simulator's thread."""
        loop = self._loop
        if self._thread is None or loop is None:
            return []
        future = asyncio.run_coroutine_threadsafe(
            self.simulator.close_leftover_connections(grace), loop
        )
        return future.result(grace + 10.0)

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the simulator's attributes --------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return self.simulator.gateway_url

    @property
    def meta_url(self) -> str:
        return self.simulator.meta_url

    @property
    def rest_url(self) -> str:
        return self.simulator.rest_url

    @property
    def store(self) -> AccountStore:
        return self.simulator.store

    @property
    def stats(self) -> SimulatorStats:
        return self.simulator.stats

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    @config.setter
    def config(self, value: SimulatorConfig) -> None:
        self.simulator.config = value

    @property
    def scenario(self) -> Scenario:
        return self.simulator.scenario

    @scenario.setter
    def scenario(self, value: ScenarioLike) -> None:
        self.simulator.set_scenario(value)

    @property
    def appkey(self) -> str:
        return self.simulator.appkey

    def set_scenario(self, scenario: ScenarioLike) -> Scenario:
        return self.simulator.set_scenario(scenario)

    def configure(self, **changes: Any) -> SimulatorConfig:
        return self.simulator.configure(**changes)

    def add_account(self, account: Account | None = None, **fields: Any) -> Account:
        return self.simulator.add_account(account, **fields)

    def token(self, account: str | None = None, ttl: float | None = None) -> str:
        return self.simulator.token(account, ttl)

    def issue_sts(self, account: str | None = None, ttl: float = 3600.0) -> StsCredentials:
        return self.simulator.issue_sts(account, ttl)

    def credentials_uri(self, ttl: float = 3600.0, account: str | None = None) -> str:
        return self.simulator.credentials_uri(ttl, account)

    def info(self) -> dict[str, str]:
        return self.simulator.info()


def _every_connection(server: Server) -> list[ServerConnection]:
    """Every connection of ``server``, those in their closing handshake included (the public
    ``connections`` leaves them out): websockets >= 17 keeps them in ``all_connections``, earlier
    releases (the last for Python 3.10 is 16) as the keys of ``handlers``."""
    found = getattr(server, "all_connections", None)
    if found is None:
        found = getattr(server, "handlers", {})
    return list(found)

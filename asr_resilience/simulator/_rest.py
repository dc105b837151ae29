"""RESTful one-sentence recognition: ``POST /stream/v1/asr``.

docs/protocol.md "REST one-sentence recognition".

The same checks as a ``SpeechRecognizer`` task — token, parameters, appkey, account, quota, then
the audio — answered with one JSON body ``{"task_id", "result", "status", "message"}``.

The HTTP status of an error is not documented ([?] in
docs/protocol.md "REST one-sentence recognition"; the SDK examples treat any non-200 as a failure
and still read the body). We answer (docs/protocol.md "Simulator choices"): 200 for 20000000; 403
for 40000001 (token missing, unknown, expired, revoked); 429 for 40000005; 500 for 5xxxxxxx; 400 for
every other code. A missing ``appkey`` is 41000002 (the "appkey is null" code users report); a
``sample_rate`` or flag that does not parse is 40000003 (``Failed to decode url params`` /
``PARAMETER_INVALID``, the seed's REST row); any other path under ``/stream/`` is 40010001.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..protocol import RECOGNIZER, GatewayReject, new_id, validate_start
from ..protocol._gateway import BOOL_PARAMS
from ._accounts import Account
from ._admission import APPKEY_NULL, TOKEN_INVALID, TOO_MANY_REQUESTS, check_task
from ._context import SimulatorContext, drop
from ._recognition import TOO_LONG_SPEECH, Recognition
from ._scenario import Phase

PATH = "/stream/v1/asr"
SUCCESS = 20000000
SUCCESS_MESSAGE = "SUCCESS"
BAD_URL_PARAMS = (40000003, "Failed to decode url params")
PATH_ILLEGAL = (40010001, "Gateway:NAMESPACE_NOT_FOUND:RESTful url path illegal")
CHUNK = 16 * 1024
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def http_status(code: int) -> int:
    """The HTTP status we answer a vendor code with (see the module docstring)."""
    if code == SUCCESS:
        return 200
    if code == TOKEN_INVALID:
        return 403
    if code == TOO_MANY_REQUESTS[0]:
        return 429
    if 50_000_000 <= code <= 59_999_999:
        return 500
    return 400


def add_rest_routes(app: web.Application, ctx: SimulatorContext) -> None:
    """Serve REST one-sentence recognition on ``app``."""

    async def recognize(request: web.Request) -> web.StreamResponse:
        return await RestCall(ctx, request).run()

    async def illegal(request: web.Request) -> web.StreamResponse:
        # Counted like any request: a numbered session that failed with 40010001.
        ctx.next_session()
        ctx.stats.rest_requests += 1
        ctx.stats.count_failure(PATH_ILLEGAL[0])
        return _body(new_id(), *PATH_ILLEGAL)

    app.router.add_post(PATH, recognize)
    app.router.add_route("*", "/stream/{tail:.*}", illegal)


def _body(task_id: str, code: int, message: str, result: str = "") -> web.Response:
    data = {"task_id": task_id, "result": result, "status": code, "message": message}
    return web.json_response(data, status=http_status(code), dumps=_dumps)


class _Dropped(Exception):
    """A fault closed the connection: there is nobody to answer."""


def _params(query: Mapping[str, str]) -> dict[str, Any]:
    """The start payload the query stands for; GatewayReject 40000003 when it does not parse."""
    payload: dict[str, Any] = {"format": query.get("format", "pcm")}
    if "sample_rate" in query:
        try:
            payload["sample_rate"] = int(query["sample_rate"])
        except ValueError:
            raise GatewayReject(*BAD_URL_PARAMS) from None
    for key in BOOL_PARAMS:
        if key in query:
            value = query[key].lower()
            if value not in ("true", "false"):
                raise GatewayReject(40000003, f"Gateway:PARAMETER_INVALID:Invalid '{key}'!")
            payload[key] = value == "true"
    validate_start(RECOGNIZER, payload, max_vocabulary=0)
    return payload


class RestCall:
    """One REST request: one numbered session."""

    def __init__(self, ctx: SimulatorContext, request: web.Request) -> None:
        self.ctx = ctx
        self.request = request
        self.number = ctx.next_session()
        self.task_id = new_id()
        self.token = request.headers.get("X-NLS-Token") or request.query.get("token", "")
        self.slow = 0.0
        self.trickle = 0.0
        self.fired: set[int] = set()
        self.account: Account | None = None

    async def run(self) -> web.StreamResponse:
        self.ctx.stats.rest_requests += 1
        try:
            response = await self._run()
            if self.slow and await self.ctx.pause(self.slow):
                raise _Dropped
            if self.trickle and isinstance(response, web.Response):
                return await self._drip(response)
            return response
        except _Dropped:
            # aiohttp must still get a response object; the transport is gone, nothing is sent.
            drop(self.request.transport)
            return web.Response(status=503)
        finally:
            if self.account is not None:
                self.ctx.store.release_slot(self.account)
                self.ctx.stats.slot_released(self.account.name)

    async def _drip(self, response: web.Response) -> web.StreamResponse:
        """Send ``response`` with its body one byte each ``trickle`` seconds (a slowloris).

        The headers (Content-Length included) go at once; every byte then keeps a client's
        per-read timeout alive, so only a bound on the whole exchange ends the wait. The slot
        stays taken until the last byte: the answer is still being given.
        """
        body = response.body
        data = body if isinstance(body, bytes) else b""
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        stream.content_length = len(data)
        await stream.prepare(self.request)
        for at in range(len(data)):
            if at and await self.ctx.pause(self.trickle):
                raise _Dropped
            await stream.write(data[at : at + 1])
        await stream.write_eof()
        return stream

    def _error(self, code: int, message: str) -> web.Response:
        self.ctx.stats.count_failure(code)
        return _body(self.task_id, code, message)

    async def _run(self) -> web.StreamResponse:
        ctx = self.ctx
        early = await self._fault("handshake")
        if early is not None:
            return early
        if not self.token or not ctx.store.known_token(self.token):
            code, text = TOKEN_INVALID, f"Meta:ACCESS_DENIED:The token '{self.token}' is invalid!"
            return self._error(code, text)
        query = self.request.query
        try:
            params = _params(query)
            if not query.get("appkey"):
                raise GatewayReject(*APPKEY_NULL)
            account = check_task(ctx.store, self.token, query["appkey"])
        except GatewayReject as reject:
            return self._error(reject.code, reject.status_text)
        if not ctx.store.acquire_slot(account):
            ctx.stats.throttled += 1
            return self._error(*TOO_MANY_REQUESTS)
        self.account = account
        ctx.stats.slot_taken(account.name)
        early = await self._fault("start")
        if early is not None:
            return early
        ctx.stats.sessions_started += 1
        audio = Recognition(
            audio_format=params["format"],
            sample_rate=params.get("sample_rate", 16000),
            max_sentence_silence=ctx.config.max_sentence_silence,
            transcripts=ctx.config.transcripts,
            max_ms=ctx.config.max_sentence_ms,
        )
        try:
            async for chunk in self.request.content.iter_chunked(CHUNK):
                if audio.received_bytes + len(chunk) > ctx.config.max_rest_bytes:
                    raise GatewayReject(*TOO_LONG_SPEECH)  # docs/protocol.md "Limits": ≤ 2 MB
                audio.feed(chunk)
                ctx.stats.audio_bytes += len(chunk)
                early = await self._fault("audio", audio.audio_ms)
                if early is not None:
                    return early
            early = await self._fault("stop")
            if early is not None:
                return early
            text, _ = audio.one_sentence_result()
        except GatewayReject as reject:
            return self._error(reject.code, reject.status_text)
        if ctx.config.service_time and await ctx.pause(ctx.config.service_time):
            raise _Dropped
        ctx.stats.sessions_completed += 1
        return _body(self.task_id, SUCCESS, SUCCESS_MESSAGE, text)

    async def _fault(self, phase: Phase, audio_ms: int | None = None) -> web.StreamResponse | None:
        """Fire the scenario's fault here; the response that ends the call, or None."""
        picked = self.ctx.scenario.select(
            phase, self.number, "rest", audio_ms=audio_ms, skip=self.fired
        )
        if picked is None:
            return None
        index, fault = picked
        self.fired.add(index)
        self.ctx.stats.count_fault(fault.action)
        if fault.action == "code":
            if phase == "handshake":
                # Before any NLS processing: a bare HTTP error, as a proxy or gateway gives it.
                return web.Response(status=fault.http_status, text="Injected fault\n")
            return self._error(fault.code or 0, fault.status_text(self.token))
        if fault.action in ("close", "reset"):
            drop(self.request.transport, reset=fault.action == "reset")
            raise _Dropped
        if fault.action == "stall":
            if await self.ctx.pause(fault.delay):
                raise _Dropped
        elif fault.action == "slow":
            self.slow = fault.delay or 0.0
        elif fault.action == "trickle":
            self.trickle = fault.delay or 0.0
        elif fault.action == "garbage":
            # One response only, so the garbage is the answer.
            if fault.frame == "binary":
                binary = b"\x00\xffNLS\x00"
                return web.Response(body=binary, content_type="application/octet-stream")
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        elif fault.action == "revoke_token":
            self.ctx.store.revoke(self.token)
        return None

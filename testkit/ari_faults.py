"""A fault-injecting proxy between ``callpilot serve`` and Asterisk's ARI (tests and bench only).

serve is pointed at it with ``asterisk.ari_url``; it relays REST requests and the events
WebSocket to Asterisk and, following :class:`Rule` s, delays, holds, fails or cuts chosen requests
(method + path regex, optionally a query regex, for the first N matches or always).  The
events socket can be cut on demand (and reconnection refused until allowed), as a network
fault or an Asterisk hiccup would.  Everything seen is recorded for assertions: every REST
exchange with its timing and what was done to it, and every event relayed to serve with the
wall-clock time it passed (``StasisStart`` carries Asterisk's channel creation time).

REST requests that serve sends over the events socket (``RESTRequest`` frames, Asterisk
22.4+, docs/decisions.md D26) meet the same rules and are recorded the same way
(``Exchange.transport == "websocket"``, path ``/ari/<uri>``).  There a ``Cut`` cuts the
events socket (the connection the request rode on) and a ``CutEvents`` relays the request
and its answer, then cuts: as over HTTP, serve learns the result and loses the events.

    async with AriFaultProxy(config.ari_url) as proxy:
        config.asterisk.ari_url = proxy.url
        proxy.add(Rule("POST", r"/ari/bridges/[^/]+/addChannel", Fail(500), times=1))
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp
from aiohttp import web
from yarl import URL

logger = logging.getLogger(__name__)

EVENTS_PATH = "/ari/events"
PASSED_HEADERS = ("Authorization", "Content-Type", "Accept")


# -- what a rule does ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delay:
    """Hold the request ``seconds`` before it reaches Asterisk (``after``: forward it at once
    and hold Asterisk's answer instead: the action happened, serve learns it late)."""
    seconds: float
    after: bool = False


@dataclass(frozen=True)
class Fail:
    """Answer ``status`` with ``body`` without asking Asterisk (``forward``: Asterisk does it,
    serve is told it failed)."""
    status: int = 500
    body: str = '{"message": "Internal Server Error (injected by the ARI fault proxy)"}'
    forward: bool = False


@dataclass(frozen=True)
class Cut:
    """Close serve's connection with no answer (``forward``: after Asterisk has done it)."""
    forward: bool = False


@dataclass(frozen=True)
class CutEvents:
    """Cut the events WebSocket at the moment this request passes, then relay the request;
    ``hold``: refuse serve's reconnection until :meth:`AriFaultProxy.allow_events`."""
    hold: bool = False


@dataclass(frozen=True)
class Hold:
    """Hold the request until :meth:`AriFaultProxy.release`, then forward it: a test reads what
    serve shows while it waits on Asterisk, for as long as it needs, without a guessed delay."""


Action = Delay | Fail | Cut | CutEvents | Hold


@dataclass
class Rule:
    method: str
    path: str                      # regex, matched against the whole path: /ari/channels/[^/]+
    action: Action
    query: str = ""                # regex searched in the decoded query: callerId=15550001
    times: int | None = None       # the first N matching requests; None: every one
    hits: int = 0

    def take(self, method: str, path: str, query: str) -> bool:
        """True (and counted) when this request is one the rule acts on."""
        if self.times is not None and self.hits >= self.times:
            return False
        if method != self.method.upper() or not re.fullmatch(self.path, path):
            return False
        if self.query and not re.search(self.query, query):
            return False
        self.hits += 1
        return True


# -- what was seen ---------------------------------------------------------------------------


@dataclass
class Exchange:
    """One REST request as the proxy handled it."""
    method: str
    path: str
    query: str
    at: datetime                   # wall clock (UTC) when serve's request arrived
    started: float                 # monotonic, same moment
    fault: Action | None = None
    status: int | None = None      # what serve got; None: the connection was cut
    ended: float | None = None     # monotonic, when serve got its answer (or the cut)
    body: str = ""
    transport: str = "http"        # or "websocket": a RESTRequest frame on the events socket

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass
class SeenEvent:
    at: datetime                   # wall clock (UTC) when the proxy relayed it to serve
    socket: int                    # which events connection (1, 2, ... after reconnects)
    event: dict[str, Any]


@dataclass(eq=False)
class _EventLink:
    number: int
    request: web.Request
    upstream: aiohttp.ClientWebSocketResponse
    downstream: web.WebSocketResponse
    answers: dict[str, asyncio.Future] = field(default_factory=dict)  # request_id -> answer
    tasks: set[asyncio.Task] = field(default_factory=set)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def ari_time(text: str) -> datetime:
    """Asterisk's timestamps: '2026-12-01T13:05:18.123+0000'."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


# -- the proxy -------------------------------------------------------------------------------


class AriFaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream.rstrip("/")
        self.host, self.port = host, port
        self.rules: list[Rule] = []
        self.exchanges: list[Exchange] = []
        self.events: list[SeenEvent] = []
        self.sockets = 0               # events connections relayed so far
        self.refused_sockets = 0       # events connections refused while held
        self._hold_events = False
        self._links: set[_EventLink] = set()
        self._changed = asyncio.Event()
        self._released = asyncio.Event()   # held requests go on (Hold)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "AriFaultProxy":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        logger.info("ARI fault proxy %s -> %s", self.url, self.upstream)
        return self

    async def stop(self) -> None:
        await self.cut_events()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> "AriFaultProxy":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- rules --------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def _fault_for(self, method: str, path: str, query: str) -> Action | None:
        for rule in self.rules:
            if rule.take(method, path, query):
                return rule.action
        return None

    # -- the events socket on demand ----------------------------------------------------
    async def cut_events(self, hold: bool = False) -> int:
        """Cut every events WebSocket abruptly (no close frame: a network fault); ``hold``
        refuses reconnection until :meth:`allow_events`.  Returns how many were cut."""
        self._hold_events = self._hold_events or hold
        links = list(self._links)
        for link in links:
            await self._cut_link(link)
        if links:
            logger.info("ARI fault proxy: cut %d events socket(s)%s", len(links),
                        " and holding" if hold else "")
        self._notify()
        return len(links)

    @staticmethod
    async def _cut_link(link: _EventLink) -> None:
        if link.request.transport is not None:
            link.request.transport.abort()
        await link.upstream.close()

    def allow_events(self) -> None:
        self._hold_events = False

    def release(self) -> None:
        """Let every request held by a :class:`Hold` rule (and any later one) go on."""
        self._released.set()

    @property
    def events_connected(self) -> int:
        return len(self._links)

    # -- waiting on what was seen -------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()

    async def wait_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``check()`` returns something truthy (returned); AssertionError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not (found := check()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"ARI fault proxy: no {what} within {timeout:.0f}s")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return found

    async def wait_exchange(self, check: Callable[[Exchange], bool], timeout: float = 20.0,
                            what: str = "matching request") -> Exchange:
        return await self.wait_until(lambda: next((x for x in self.exchanges if check(x)), None),
                                     timeout, what)

    def faulted(self) -> list[Exchange]:
        return [x for x in self.exchanges if x.fault is not None]

    def stasis_starts(self) -> dict[str, SeenEvent]:
        """Channel id -> the first StasisStart relayed for it."""
        found: dict[str, SeenEvent] = {}
        for seen in self.events:
            if seen.event.get("type") == "StasisStart":
                found.setdefault(seen.event["channel"]["id"], seen)
        return found

    # -- relaying -----------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == EVENTS_PATH and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_events(request)
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        exchange = Exchange(request.method, request.path, query, utcnow(), time.monotonic(),
                            fault=self._fault_for(request.method, request.path, query))
        self.exchanges.append(exchange)
        self._notify()
        try:
            return await self._answer(request, exchange)
        finally:
            exchange.ended = time.monotonic()
            self._notify()

    async def _answer(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        fault = exchange.fault
        if fault is not None:
            logger.info("ARI fault proxy: %s %s?%s -> %s", exchange.method, exchange.path,
                        exchange.query, fault)
        if isinstance(fault, Delay) and not fault.after:
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Hold):
            await self._released.wait()
        if isinstance(fault, CutEvents):
            await self.cut_events(hold=fault.hold)
        if isinstance(fault, Fail) and not fault.forward:
            return self._reply(exchange, fault.status, fault.body.encode(), "application/json")
        if isinstance(fault, Cut) and not fault.forward:
            return self._cut(request)
        status, body, content_type = await self._forward(request)
        if isinstance(fault, Delay) and fault.after:
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Cut):
            return self._cut(request)
        if isinstance(fault, Fail):
            return self._reply(exchange, fault.status, fault.body.encode(), "application/json")
        return self._reply(exchange, status, body, content_type)

    async def _forward(self, request: web.Request) -> tuple[int, bytes, str]:
        headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
        url = URL(self.upstream + request.raw_path, encoded=True)
        body = await request.read()
        try:
            async with self._session.request(request.method, url, headers=headers,
                                             data=body or None) as resp:
                return resp.status, await resp.read(), resp.headers.get("Content-Type", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("ARI fault proxy: Asterisk unreachable for %s %s: %r",
                           request.method, request.path, exc)
            return 502, json.dumps({"message": f"proxy: {exc!r}"}).encode(), "application/json"

    @staticmethod
    def _reply(exchange: Exchange, status: int, body: bytes, content_type: str) -> web.Response:
        exchange.status = status
        exchange.body = body[:500].decode(errors="replace")
        response = web.Response(status=status, body=body)
        if content_type:
            response.headers["Content-Type"] = content_type
        return response

    @staticmethod
    def _cut(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)    # never written: the connection is gone

    # -- the events WebSocket -----------------------------------------------------------
    async def _relay_events(self, request: web.Request) -> web.StreamResponse:
        exchange = Exchange("GET", request.path, request.query_string, utcnow(), time.monotonic())
        self.exchanges.append(exchange)
        if self._hold_events:
            self.refused_sockets += 1
            body = b'{"message": "events socket refused (held by the ARI fault proxy)"}'
            return self._reply(exchange, 503, body, "application/json")
        upstream = await self._connect_upstream(request, exchange)
        if not isinstance(upstream, aiohttp.ClientWebSocketResponse):
            return upstream
        downstream = web.WebSocketResponse(autoping=True)
        await downstream.prepare(request)
        exchange.status = 101
        self.sockets += 1
        link = _EventLink(self.sockets, request, upstream, downstream)
        self._links.add(link)
        self._notify()
        try:
            await self._pump(link)
        finally:
            self._links.discard(link)
            exchange.ended = time.monotonic()
            await upstream.close()
            await downstream.close()
            self._notify()
        return downstream

    async def _connect_upstream(self, request: web.Request, exchange: Exchange):
        headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
        url = URL(self.upstream.replace("http", "ws", 1) + request.raw_path, encoded=True)
        try:
            return await self._session.ws_connect(url, headers=headers, autoping=True, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return self._reply(exchange, exc.status, str(exc.message).encode(), "text/plain")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return self._reply(exchange, 502, repr(exc).encode(), "text/plain")

    async def _pump(self, link: _EventLink) -> None:
        down = asyncio.create_task(self._to_serve(link))
        up = asyncio.create_task(self._to_asterisk(link))
        try:
            await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = {down, up, *link.tasks}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _to_serve(self, link: _EventLink) -> None:
        async for msg in link.upstream:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = _json(msg.data)
            if frame.get("type") == "RESTResponse":
                answer = link.answers.pop(str(frame.get("request_id")), None)
                if answer is not None and not answer.done():
                    answer.set_result(frame)
                    continue
            elif frame:
                self.events.append(SeenEvent(utcnow(), link.number, frame))
            await link.downstream.send_str(msg.data)
            self._notify()

    async def _to_asterisk(self, link: _EventLink) -> None:
        async for msg in link.downstream:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = _json(msg.data)
            if frame.get("type") == "RESTRequest":
                task = asyncio.create_task(self._ws_request(link, frame))
                link.tasks.add(task)
                task.add_done_callback(link.tasks.discard)
            else:
                await link.upstream.send_str(msg.data)

    # -- REST requests on the events socket ---------------------------------------------
    async def _ws_request(self, link: _EventLink, frame: dict[str, Any]) -> None:
        method = str(frame.get("method", "")).upper()
        path = "/ari/" + str(frame.get("uri", "")).split("?", 1)[0]
        query = "&".join(f"{q.get('name')}={q.get('value')}" for q in frame.get("query_strings") or [])
        exchange = Exchange(method, path, query, utcnow(), time.monotonic(),
                            fault=self._fault_for(method, path, query), transport="websocket")
        self.exchanges.append(exchange)
        self._notify()
        try:
            await self._ws_answer(link, frame, exchange)
        finally:
            exchange.ended = time.monotonic()
            self._notify()

    async def _ws_answer(self, link: _EventLink, frame: dict[str, Any], exchange: Exchange) -> None:
        fault = exchange.fault
        if fault is not None:
            logger.info("ARI fault proxy (websocket): %s %s?%s -> %s", exchange.method,
                        exchange.path, exchange.query, fault)
        if isinstance(fault, Delay) and not fault.after:
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Hold):
            await self._released.wait()
        if isinstance(fault, Fail) and not fault.forward:
            return await self._ws_reply(link, exchange, _injected(frame, fault))
        if isinstance(fault, Cut) and not fault.forward:
            return await self._cut_link(link)
        answer = asyncio.get_running_loop().create_future()
        link.answers[str(frame.get("request_id"))] = answer
        await link.upstream.send_str(json.dumps(frame))
        reply = await answer
        if isinstance(fault, Delay) and fault.after:
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Cut):
            return await self._cut_link(link)
        if isinstance(fault, Fail):
            reply = _injected(frame, fault)
        await self._ws_reply(link, exchange, reply)
        if isinstance(fault, CutEvents):
            await self.cut_events(hold=fault.hold)

    @staticmethod
    async def _ws_reply(link: _EventLink, exchange: Exchange, reply: dict[str, Any]) -> None:
        exchange.status = int(reply.get("status_code", 0))
        exchange.body = str(reply.get("message_body") or "")[:500]
        await link.downstream.send_str(json.dumps(reply))


def _json(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _injected(frame: dict[str, Any], fault: Fail) -> dict[str, Any]:
    """The answer a failed request gets over the events socket."""
    return {"type": "RESTResponse", "transaction_id": frame.get("transaction_id", ""),
            "request_id": frame.get("request_id", ""), "status_code": fault.status,
            "reason_phrase": "Injected by the ARI fault proxy", "uri": frame.get("uri", ""),
            "content_type": "application/json", "message_body": fault.body}

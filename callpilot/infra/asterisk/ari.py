"""Thin asyncio ARI client on aiohttp (REST + events WebSocket).

Why not ari-py: PyPI ``ari`` 0.1.3 does not import on Python 3 (docs/decisions.md).
Reconnection is a state: CONNECTING -> RESYNCING -> CONNECTED -> BACKOFF -> CONNECTING ...,
each transition logged.  RESYNCING: the socket is up and ``on_connect`` runs (the application
resyncs the channels that stayed parked in Stasis while the socket was down); CONNECTED (and
``connected``) only once every ``on_connect`` handler has returned, so that a status read in
between never shows the resync's half-done state as settled.  A handler that fails is logged
and the next one runs: one failed resync does not keep the link from being used (D39).

Events go into lanes (``event_lanes``), one per call when the application passes ``lane_of``,
so events of one call stay in order while a slow handler never holds up another call's
events.  An event whose lane is idle is handled by the task that read it, which first hands
the socket to a new reader task (no task hop before a call's StasisStart handler, D35).
Every REST request has a deadline (``request_timeout``).

``events``: the event types the application handles.  After every (re)connect Asterisk is
told to send only those (``PUT /applications/{app}/eventFilter``): an IVR call otherwise
brings dozens of events nobody reads (variable sets, dialplan steps, bridge and state
changes), each one serialised by Asterisk, decoded here and routed (docs/decisions.md D21).

``rest_transport``: REST requests go over the events socket itself when it is up
(``ari_ws_rest``; ``auto`` checks once per connect that Asterisk answers there, with a
``GET asterisk/ping``), else over HTTP.  A request caught by a dropped socket fails at once
(``WsLinkLost``); only a GET, which changes nothing, is then tried again over HTTP: a POST
such as an originate or a play is never sent twice (docs/decisions.md D26).  While the
connect phase runs (probe, filter, ``on_connect`` resync) events are held and pushed to the
lanes after it, in order, as before.  ``requests`` counts the requests per transport,
``not_found`` the 404 answers per method and kind of object (a 404 is tolerated everywhere,
but one on every call is a request that need not have been sent: D39).
"""
from __future__ import annotations

import asyncio
import base64
import enum
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import aiohttp

from callpilot.infra.asterisk.ari_ws_rest import (RESPONSE_TYPE, RestTransport, WsLinkLost,
                                                  WsRestChannel, decode)
from callpilot.infra.asterisk.event_lanes import EventLanes

logger = logging.getLogger(__name__)

POOL_SIZE = 100           # REST connections at most: aiohttp's default, Asterisk's session_limit
KEEPALIVE_SECONDS = 10.0  # below Asterisk's session_keep_alive (15 s)
HISTORY = 16              # the last state transitions kept for serve's status
PROBE_SECONDS = 2.0       # auto: an Asterisk silent this long on the socket has no REST there
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
ConnectHandler = Callable[[], Awaitable[None]]


class AriError(Exception):
    def __init__(self, status: int, method: str, path: str, text: str):
        super().__init__(f"ARI {method} {path} -> {status}: {text[:200]}")
        self.status = status


class AriNotFound(AriError):
    """404: the channel, bridge or playback is gone (usually: the caller hung up)."""


class AriState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    RESYNCING = "resyncing"     # socket up, on_connect handlers running
    CONNECTED = "connected"
    BACKOFF = "backoff"
    CLOSED = "closed"


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0,
                 lane_of: Callable[[dict[str, Any]], str] = lambda _event: "",
                 request_timeout: float = 10.0, events: Collection[str] | None = None,
                 rest_transport: RestTransport | str = RestTransport.AUTO):
        self.base_url = base_url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}  # aiohttp 3.14 deprecates auth=
        self._session: aiohttp.ClientSession | None = None
        self._handlers: list[EventHandler] = []
        self._connect_handlers: list[ConnectHandler] = []
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.state = AriState.IDLE
        self.connects = 0
        self.connected = asyncio.Event()
        self.request_timeout = request_timeout
        self.lanes = EventLanes(self._dispatch, lane_of)
        self.events = sorted(events) if events is not None else None
        self.rest_transport = RestTransport(rest_transport)
        self._ws_rest: WsRestChannel | None = None     # set while requests may use the socket
        self._ws_rest_up = asyncio.Event()
        self.requests: Counter[str] = Counter()        # transport -> requests sent
        self.not_found: Counter[str] = Counter()       # "DELETE /channels" -> 404 replies
        self.history: deque[tuple[str, float]] = deque(maxlen=HISTORY)  # (state, time.time())
        self._held: list[dict[str, Any]] | None = None  # events held during the connect phase
        self._reader: asyncio.Task | None = None        # the task reading the events socket

    @property
    def transport_in_use(self) -> str:
        return "websocket" if self._ws_rest is not None else "http"

    # -- wiring -------------------------------------------------------------------------
    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_connect(self, handler: ConnectHandler) -> None:
        self._connect_handlers.append(handler)

    def _set_state(self, state: AriState, why: str = "") -> None:
        if state is not self.state:
            logger.info("ARI %s -> %s %s", self.state.value, state.value, why)
            self.history.append((state.value, time.time()))
        self.state = state
        if state is AriState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    # -- REST ---------------------------------------------------------------------------
    async def _http(self) -> aiohttp.ClientSession:
        """One session, kept-alive connections: independent requests (``asyncio.gather``)
        go out side by side on connections of the pool, none waits for a TCP handshake.
        Idle connections are dropped before Asterisk's ``session_keep_alive`` (15 s) would
        close them under a request in flight.  The size stays aiohttp's 100: with 64,
        bench.load (300 calls at 20/s) used all 64 while serve was busy, requests queued for
        a connection, answers reached the bridge after the agent had hung up (D20)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        return self._session

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      body: dict | None = None) -> Any:
        clean = {k: _param(v) for k, v in params.items() if v is not None} if params else {}
        channel = self._ws_rest
        if channel is None and self.rest_transport is RestTransport.WEBSOCKET:
            channel = await self._ws_channel()
        if channel is not None and self.rest_transport is not RestTransport.HTTP:
            self.requests["websocket"] += 1
            try:
                reply = await channel.request(method, path, clean, body, self.request_timeout)
                return self._result(reply.status, method, path, reply.body)
            except WsLinkLost:
                if method != "GET" or self.rest_transport is not RestTransport.AUTO:
                    raise                 # never twice: it may have been done
                logger.info("ARI GET %s: events socket lost, asking over HTTP", path)
        return await self._over_http(method, path, clean, body)

    async def _ws_channel(self) -> WsRestChannel:
        """``websocket`` mode: the socket's REST channel, waited for (up to
        ``request_timeout``) while the socket is down; never HTTP."""
        try:
            await asyncio.wait_for(self._ws_rest_up.wait(), self.request_timeout)
        except asyncio.TimeoutError:
            pass
        if self._ws_rest is None:
            raise WsLinkLost("ARI events socket down (ari_rest_transport = websocket)")
        return self._ws_rest

    async def _over_http(self, method: str, path: str, params: dict[str, Any],
                         body: dict | None) -> Any:
        self.requests["http"] += 1
        session = await self._http()
        url = f"{self.base_url}/ari{path}"
        async with session.request(method, url, params=params, json=body) as resp:
            return self._result(resp.status, method, path, await resp.text())

    def _result(self, status: int, method: str, path: str, text: str) -> Any:
        if status == 404:
            self._count_not_found(method, path)
            raise AriNotFound(status, method, path, text)
        if status >= 400:
            raise AriError(status, method, path, text)
        return decode(text) if text else None

    def _count_not_found(self, method: str, path: str) -> None:
        kind = f"{method} /{path.strip('/').split('/', 1)[0]}"
        self.not_found[kind] += 1
        logger.debug("ARI %s %s: 404 (%s: %d so far)", method, path, kind, self.not_found[kind])

    # The verbs hand back ``request``'s coroutine (no coroutine of their own per request).
    def get(self, path: str, **params: Any) -> Awaitable[Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict | None = None, **params: Any) -> Awaitable[Any]:
        return self.request("POST", path, params=params, body=body)

    def delete(self, path: str, **params: Any) -> Awaitable[Any]:
        return self.request("DELETE", path, params=params)

    def put(self, path: str, body: dict | None = None, **params: Any) -> Awaitable[Any]:
        return self.request("PUT", path, params=params, body=body)

    # -- events -------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the event socket up until ``close()``; never raises on a dropped link."""
        delay = self._backoff_initial
        while self.state is not AriState.CLOSED:
            self._set_state(AriState.CONNECTING)
            try:
                await self._session_loop()
                delay = self._backoff_initial
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                logger.warning("ARI link failed: %s", exc)
            if self.state is AriState.CLOSED:
                break
            self._set_state(AriState.BACKOFF, f"retry in {delay:.1f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _session_loop(self) -> None:
        session = await self._http()
        url = f"{self.base_url}/ari/events"
        params = {"app": self.app, "subscribeAll": "false"}
        # no size limit (aiohttp's default is 4 MB): a resync's GET /channels with thousands
        # of calls comes back as one frame, and a frame too big would drop the socket forever
        async with session.ws_connect(url, params=params, heartbeat=10, max_msg_size=0,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            self._ws = ws
            channel = WsRestChannel(ws)
            self._held = []
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._start_reader(ws, channel, done)
            try:
                await self._connect_phase(channel, done)
                await done
            finally:
                self._ws_gone(channel)
                if self._reader is not None:
                    self._reader.cancel()
        self._ws = None
        logger.warning("ARI event socket closed")

    async def _connect_phase(self, channel: WsRestChannel, done: asyncio.Future[None]) -> None:
        """Pick the REST transport, filter, resync; then release the events held meanwhile
        and say CONNECTED, unless the socket closed (or ``close()`` came) during the resync."""
        self.connects += 1
        self._set_state(AriState.RESYNCING, f"(connect #{self.connects})")
        if await self._ws_rest_usable(channel):
            self._ws_rest = channel
            self._ws_rest_up.set()
        logger.info("ARI %s: REST over %s (ari_rest_transport = %s)", self.app,
                    self.transport_in_use, self.rest_transport.value)
        await self._filter_events()
        await self._run_connect_handlers()
        held, self._held = self._held or [], None
        for event in held:
            self.lanes.push(event)
        if self.state is AriState.RESYNCING and not done.done():
            self._set_state(AriState.CONNECTED, f"(connect #{self.connects} resynced)")

    async def _ws_rest_usable(self, channel: WsRestChannel) -> bool:
        """``auto``: one cheap request on the socket; an Asterisk before 22.4 never answers."""
        if self.rest_transport is not RestTransport.AUTO:
            return self.rest_transport is RestTransport.WEBSOCKET
        try:
            reply = await channel.request("GET", "/asterisk/ping", {}, None,
                                          min(PROBE_SECONDS, self.request_timeout))
        except (asyncio.TimeoutError, WsLinkLost) as exc:
            logger.warning("ARI %s: no REST over the events socket (%r): HTTP", self.app, exc)
            return False
        return 200 <= reply.status < 300

    def _start_reader(self, ws: aiohttp.ClientWebSocketResponse, channel: WsRestChannel,
                      done: asyncio.Future[None]) -> None:
        self._reader = asyncio.create_task(self._read(ws, channel, done), name="ari-events-reader")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, channel: WsRestChannel,
                    done: asyncio.Future[None]) -> None:
        """Read the socket until it closes (then ``done``).  An event whose lane is idle is
        handled right here: a new task reads on, this one becomes the lane's (no task hop
        and no loop turn between a call's StasisStart and its role handler)."""
        lane = None
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    lane = self._received(_frame_of(msg.data), channel)
                    if lane is not None:
                        break
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        except Exception as exc:     # seen by _session_loop, as when it awaited the reader
            if not done.done():
                done.set_exception(exc)
            return
        if lane is not None:     # the next reader starts a loop turn later, off this path
            asyncio.get_running_loop().call_soon(self._start_reader, ws, channel, done)
            await self.lanes.drain_here(lane)
            return
        self._ws_gone(channel)
        if not done.done():
            done.set_result(None)

    def _received(self, message: dict[str, Any] | None, channel: WsRestChannel) -> str | None:
        """An answer, a held event or an event for the lanes; returns the lane to run in the
        calling task, if the event's lane was idle."""
        if message is None:
            return None
        if message.get("type") == RESPONSE_TYPE:
            channel.take(message)
        elif self._held is not None:
            self._held.append(message)
        else:
            return self.lanes.push_here(message)
        return None

    def _ws_gone(self, channel: WsRestChannel) -> None:
        """No request uses the socket any more; those in flight fail now."""
        if self._ws_rest is channel:
            self._ws_rest = None
            self._ws_rest_up.clear()
        channel.close("socket closed")

    def allowed_events(self) -> list[str]:
        """The handled events and ``RESTResponse``: Asterisk filters its answers on the socket
        like events (without it the filter request's own answer never comes back, nor any
        after it: measured on 22.10)."""
        return sorted({*(self.events or ()), RESPONSE_TYPE})

    async def _filter_events(self) -> None:
        """Ask Asterisk for the handled event types only (a registration resets the filter:
        re-applied on every connect).  On failure every event keeps coming: logged, harmless."""
        if self.events is None:
            return
        try:
            await self.put(f"/applications/{self.app}/eventFilter",
                           {"allowed": [{"type": kind} for kind in self.allowed_events()]})
        except (AriError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            logger.warning("ARI %s: event filter not applied (%s): receiving every event",
                           self.app, exc)

    async def _run_connect_handlers(self) -> None:
        for handler in self._connect_handlers:
            try:
                await handler()
            except Exception:  # a failed resync must not kill the event loop
                logger.exception("ARI on_connect handler failed")

    async def _dispatch(self, event: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                await handler(event)
            except Exception:
                logger.exception("ARI handler failed on %s", event.get("type"))

    async def drop_connection(self) -> None:
        """Close the event socket (tests use this to prove reconnect + resync)."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        self._set_state(AriState.CLOSED)
        self.lanes.close()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()


def _frame_of(text: str) -> dict[str, Any] | None:
    """A text frame's JSON object; None (logged) for anything else: one bad frame must not
    end the events socket's reader."""
    try:
        message = decode(text)
    except ValueError:
        logger.warning("ARI frame that is not JSON dropped: %.200s", text)
        return None
    if not isinstance(message, dict):
        logger.warning("ARI frame that is not a JSON object dropped: %.200s", text)
        return None
    return message


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value

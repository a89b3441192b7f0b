"""Thin asyncio ARI client on aiohttp (REST + events WebSocket).

Why not ari-py: PyPI ``ari`` 0.1.3 does not import on Python 3 (docs/decisions.md).
Reconnection is a state: CONNECTING -> CONNECTED -> BACKOFF -> CONNECTING ..., each transition
logged; after every (re)connect ``on_connect`` runs so the application can resync the
channels that stayed parked in Stasis while the socket was down.

Events are not handled on the socket reader: they go into lanes (``event_lanes``), one per
call when the application passes ``lane_of``, so events of one call stay in order while a
slow handler never holds up another call's events.  Every REST request has a deadline
(``request_timeout``).

``events``: the event types the application handles.  After every (re)connect Asterisk is
told to send only those (``PUT /applications/{app}/eventFilter``): an IVR call otherwise
brings dozens of events nobody reads (variable sets, dialplan steps, bridge and state
changes), each one serialised by Asterisk, decoded here and routed (docs/decisions.md D21).
"""
from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import aiohttp

from callpilot.infra.asterisk.event_lanes import EventLanes

logger = logging.getLogger(__name__)

POOL_SIZE = 100           # REST connections at most: aiohttp's default, Asterisk's session_limit
KEEPALIVE_SECONDS = 10.0  # below Asterisk's session_keep_alive (15 s)
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
    CONNECTED = "connected"
    BACKOFF = "backoff"
    CLOSED = "closed"


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0,
                 lane_of: Callable[[dict[str, Any]], str] = lambda _event: "",
                 request_timeout: float = 10.0, events: Collection[str] | None = None):
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

    # -- wiring -------------------------------------------------------------------------
    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_connect(self, handler: ConnectHandler) -> None:
        self._connect_handlers.append(handler)

    def _set_state(self, state: AriState, why: str = "") -> None:
        if state is not self.state:
            logger.info("ARI %s -> %s %s", self.state.value, state.value, why)
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
        session = await self._http()
        url = f"{self.base_url}/ari{path}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        async with session.request(method, url, params=clean, json=body) as resp:
            text = await resp.text()
            if resp.status == 404:
                raise AriNotFound(resp.status, method, path, text)
            if resp.status >= 400:
                raise AriError(resp.status, method, path, text)
            return json.loads(text) if text else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: dict | None = None, **params: Any) -> Any:
        return await self.request("POST", path, params=params, body=body)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, params=params)

    async def put(self, path: str, body: dict | None = None, **params: Any) -> Any:
        return await self.request("PUT", path, params=params, body=body)

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
        async with session.ws_connect(url, params=params, heartbeat=10,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            self._ws = ws
            self.connects += 1
            self._set_state(AriState.CONNECTED, f"(connect #{self.connects})")
            await self._filter_events()
            await self._run_connect_handlers()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.lanes.push(json.loads(msg.data))
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        self._ws = None
        logger.warning("ARI event socket closed")

    async def _filter_events(self) -> None:
        """Ask Asterisk for the handled event types only (a registration resets the filter:
        re-applied on every connect).  On failure every event keeps coming: logged, harmless."""
        if self.events is None:
            return
        try:
            await self.put(f"/applications/{self.app}/eventFilter",
                           {"allowed": [{"type": kind} for kind in self.events]})
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


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value

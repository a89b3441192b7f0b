"""The floor of any ARI application in Python on this machine: a StasisStart answered by an
originate, with no ACD at all (``python -m bench.acd``'s third live path, D41).

``bench.acd --only live`` starts this as its own process beside ``callpilot serve``.  Calls to
``asterisk.bare_bench_did`` are answered by the dialplan exactly like the other two bench DIDs,
then enter Stasis application ``<app_name>-bare`` here.  For each caller the app rings the next
agent of a fixed round-robin list with the very request serve's ``CallControl.ring`` sends (same
channel id scheme, endpoint, ``originator``, ``callerId``, timeout), over the same
``AriClient`` (REST over the events WebSocket, the same lanes and JSON): only the decision is
missing, i.e. the dispatcher, the router, the call record and the queue.  After the originate it
bridges the caller, then the agent when it answers, and hangs the agent up when the caller
leaves.  What serve's share (StasisStart frame -> originate frame) is on top of this app's is
the cost of CallPilot's ACD; what this app's own is, is the cost of Python, aiohttp and two
loop turns on this box, which no ACD written in this stack can go under.

Not part of the product: the bench's round-robin is safe only because the bench's calls are
fewer than its agents at any moment (2 calls/s, ~2 s each, 10 agents).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import logging
import os
import signal
import time
from typing import Any

import orjson

from callpilot.infra.asterisk.ari import AriClient, AriError
from callpilot.infra.asterisk.ari_ws_rest import _frame as request_frame
from callpilot.infra.asterisk.ari_helpers import (agent_channel_id, call_bridge_id,
                                                  call_id_of_agent_channel)
from callpilot.infra.asterisk.channel_events import lane_of

logger = logging.getLogger(__name__)

EVENTS = ("StasisStart", "StasisEnd")
RING_SECONDS = 15            # as the bench's queue (bench.acd.live.bench_config)
DEADLINE = 8.0


class BareApp:
    def __init__(self, ari: AriClient, agents: list[str]):
        self.ari = ari
        self._next_agent = itertools.cycle(agents)
        self.calls = 0

    async def on_event(self, event: dict[str, Any]) -> None:
        channel = event.get("channel") or {}
        channel_id = channel.get("id", "")
        if event.get("type") == "StasisStart":
            args = event.get("args") or []
            if args[:1] == ["agent"] and len(args) > 1:
                await self._request("bridge agent", self.ari.post(
                    f"/bridges/{call_bridge_id(args[1])}/addChannel", channel=channel_id))
            else:
                await self._ring(channel)
        elif call_id_of_agent_channel(channel_id) is None:   # the caller left: the rest goes
            await self._request("hang up agent", self.ari.delete(f"/channels/{agent_channel_id(channel_id, 1)}"))
            await self._request("drop bridge", self.ari.delete(f"/bridges/{call_bridge_id(channel_id)}"))

    async def _ring(self, channel: dict[str, Any]) -> None:
        call_id = channel["id"]
        number = (channel.get("caller") or {}).get("number", "")
        self.calls += 1
        await self._request("originate", self.ari.post(
            f"/channels/{agent_channel_id(call_id, 1)}", endpoint=f"PJSIP/{next(self._next_agent)}",
            app=self.ari.app, appArgs=f"agent,{call_id}", timeout=RING_SECONDS, callerId=number,
            originator=call_id))
        await self._request("bridge", self.ari.post(f"/bridges/{call_bridge_id(call_id)}", type="mixing"))
        await self._request("bridge caller", self.ari.post(
            f"/bridges/{call_bridge_id(call_id)}/addChannel", channel=call_id))

    async def _request(self, what: str, action) -> None:
        try:
            async with asyncio.timeout(DEADLINE):
                await action
        except (AriError, asyncio.TimeoutError, OSError) as exc:
            logger.info("%s: %s", what, exc)


class RawBareApp(asyncio.Protocol):
    """``--raw``: the same requests on a bare ``asyncio.Protocol`` (no aiohttp, no lanes, no
    futures): the event is parsed and the originate frame written inside ``data_received``.
    The floor of Python itself on this box, not a client anyone should run: no reconnect, no
    deadlines, answers ignored, frames assumed whole and unfragmented (Asterisk sends them so)."""

    def __init__(self, app: str, agents: list[str], auth: str, host: str):
        self.app = app
        self._next_agent = itertools.cycle(agents)
        self._auth, self._host = auth, host
        self._buffer = b""
        self._upgraded = False
        self._ids = itertools.count(1)
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self.calls = 0
        self.inside_us: list[float] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write((f"GET /ari/events?app={self.app}&subscribeAll=false HTTP/1.1\r\n"
                         f"Host: {self._host}\r\nAuthorization: Basic {self._auth}\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    def data_received(self, data: bytes) -> None:
        started = time.perf_counter_ns()
        calls = self.calls
        self._received(data)
        if self.calls != calls:      # an originate written: its time inside Python (D41)
            self.inside_us.append((time.perf_counter_ns() - started) / 1000)

    def _received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"no WebSocket upgrade: {head[:200]!r}")
            self._upgraded, self._buffer = True, rest
            self._send("PUT", f"applications/{self.app}/eventFilter", body={"allowed": [
                {"type": kind} for kind in (*EVENTS, "RESTResponse")]})
            self.ready.set_result(None)
        while (frame := self._frame()) is not None:
            self._event(frame)

    def _frame(self) -> bytes | None:
        b = self._buffer
        if len(b) < 2:
            return None
        length, start = b[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(b[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(b[2:10], "big"), 10
        if len(b) < start + length:
            return None
        self._buffer = b[start + length:]
        return b[start:start + length] if b[0] & 0x0F == 1 else None   # text frames only

    def _event(self, payload: bytes) -> None:
        if b'"StasisStart"' not in payload and b'"StasisEnd"' not in payload:
            return
        event = orjson.loads(payload)
        channel = event.get("channel") or {}
        call_id = channel.get("id", "")
        if call_id_of_agent_channel(call_id) is not None:
            return
        if event["type"] == "StasisStart":
            self.calls += 1
            self._send("POST", f"channels/{agent_channel_id(call_id, 1)}", query={
                "endpoint": f"PJSIP/{next(self._next_agent)}", "app": self.app,
                "appArgs": f"agent,{call_id}", "timeout": str(RING_SECONDS),
                "callerId": (channel.get("caller") or {}).get("number", ""), "originator": call_id})
        else:
            self._send("DELETE", f"channels/{agent_channel_id(call_id, 1)}")

    def _send(self, method: str, uri: str, *, query: dict | None = None, body: Any = None) -> None:
        # serve's own request frame (the same orjson pass), on a socket of this app's own
        payload = request_frame(str(next(self._ids)), method, uri, query or {}, body).encode()
        n = len(payload)        # masked with a zero key (RFC 6455 allows any key): payload as is
        head = (bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
                if n < 65536 else bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big"))
        self.transport.write(head + b"\0\0\0\0" + payload)


async def main_raw(url: str, app: str, agents: list[str], user: str, password: str,
                   stop: asyncio.Event) -> None:
    host, port = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: RawBareApp(app, agents, auth, f"{host}:{port}"),
                                            host, int(port))
    await proto.ready
    print("bare ARI app ready (raw)", flush=True)
    await asyncio.wait([asyncio.ensure_future(stop.wait()), proto.lost], return_when=asyncio.FIRST_COMPLETED)
    inside = sorted(proto.inside_us)
    logger.warning("raw bare ARI app: %d calls rung; frame read -> originate written inside "
                   "data_received p50 %.0f us, max %.0f us", proto.calls,
                   inside[len(inside) // 2] if inside else 0, inside[-1] if inside else 0)
    proto.transport.close()


class Marks:
    """``BARE_ARI_MARKS=1``: where the bare app's time goes on its own clock (D41): aiohttp's
    ``data_received`` of a StasisStart -> the app's handler -> the originate's frame written.
    Bench-only wrappers around aiohttp's classes; they cost a few microseconds themselves."""

    def __init__(self) -> None:
        self.read_ns = 0
        self.handler_ns = 0
        self.to_handler_us: list[float] = []
        self.to_written_us: list[float] = []

    def install(self, app: BareApp) -> None:
        import aiohttp.client_proto as proto
        import aiohttp.client_ws as client_ws
        marks, received, send_str, on_event = self, proto.ResponseHandler.data_received, \
            client_ws.ClientWebSocketResponse.send_str, app.on_event

        def data_received(handler, data: bytes) -> None:
            if b'"StasisStart"' in data and b'"agent"' not in data:
                marks.read_ns = time.perf_counter_ns()
            received(handler, data)

        async def send(ws, data: str, *args, **kwargs) -> None:
            await send_str(ws, data, *args, **kwargs)
            if marks.handler_ns and '"POST"' in data and "cp-agent-" in data:
                marks.to_written_us.append((time.perf_counter_ns() - marks.handler_ns) / 1000)
                marks.handler_ns = 0

        async def event(message: dict[str, Any]) -> None:
            if message.get("type") == "StasisStart" and not message.get("args") and marks.read_ns:
                marks.handler_ns = time.perf_counter_ns()
                marks.to_handler_us.append((marks.handler_ns - marks.read_ns) / 1000)
                marks.read_ns = 0
            await on_event(message)

        proto.ResponseHandler.data_received = data_received
        client_ws.ClientWebSocketResponse.send_str = send
        app.on_event = event

    def summary(self) -> str:
        def p50(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] if values else 0.0
        return (f"data_received -> handler p50 {p50(self.to_handler_us):.0f} us, handler -> "
                f"originate frame written p50 {p50(self.to_written_us):.0f} us "
                f"({len(self.to_handler_us)} / {len(self.to_written_us)} calls)")


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.acd.bare_ari", description=__doc__)
    p.add_argument("--url", required=True, help="ARI base URL (http://127.0.0.1:<port>)")
    p.add_argument("--app", required=True, help="Stasis application name")
    p.add_argument("--agents", required=True, help="comma-separated agent endpoints")
    p.add_argument("--raw", action="store_true", help="a bare asyncio.Protocol, not AriClient")
    args = p.parse_args(argv)
    user, password = os.environ["BARE_ARI_USER"], os.environ["BARE_ARI_PASSWORD"]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if args.raw:
        await main_raw(args.url, args.app, args.agents.split(","), user, password, stop)
        return
    ari = AriClient(args.url, user, password, args.app, lane_of=lane_of, events=EVENTS)
    app = BareApp(ari, args.agents.split(","))
    marks = Marks() if os.environ.get("BARE_ARI_MARKS") else None
    if marks is not None:
        marks.install(app)
    ari.on_event(app.on_event)
    runner = asyncio.create_task(ari.run(), name="ari")
    await ari.connected.wait()
    print("bare ARI app ready", flush=True)
    await stop.wait()
    logger.warning("bare ARI app: %d calls rung%s", app.calls, f"; {marks.summary()}" if marks else "")
    await ari.close()
    runner.cancel()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main())

"""The ARI fault proxy (testkit/ari_faults.py) in front of a small ARI-like server, driven by
serve's own ARI client (callpilot.infra.asterisk.ari.AriClient).  The e2e tests use it in
front of a real Asterisk (tests/e2e/test_ari_faults.py)."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from callpilot.infra.asterisk.ari import AriClient, AriError, AriState
from testkit.ari_faults import (AriFaultProxy, Cut, CutEvents, Delay, Fail, Hold, Rule, ari_time)

AUTH = ("callpilot", "pw")


class FakeAri:
    """REST: echoes what it got as JSON, over HTTP or as ``RESTRequest`` frames on the events
    socket (as Asterisk 22.4+ does; ``ws_rest=False``: an older Asterisk, silent there);
    ``/ari/events``: one WebSocket per client, events pushed with :meth:`push`."""

    def __init__(self, ws_rest: bool = True):
        self.ws_rest = ws_rest
        self.requests: list[tuple[str, str, dict, str]] = []
        self.transports: list[str] = []           # "http" / "websocket", one per request
        self.arrived: dict[str, float] = {}       # path -> monotonic time it got here
        self.sockets: list[web.WebSocketResponse] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> "FakeAri":
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._rest)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    async def answer(self, method: str, path: str, query: dict, body: object) -> tuple[int, object]:
        """Status and JSON body of one request (whatever carried it)."""
        return 200, {"method": method, "path": path, "query": query}

    def _seen(self, method: str, path: str, query: dict, auth: str, transport: str) -> None:
        self.requests.append((method, path, query, auth))
        self.transports.append(transport)
        self.arrived[path] = time.monotonic()

    async def _rest(self, request: web.Request) -> web.Response:
        self._seen(request.method, request.path, dict(request.query),
                   request.headers.get("Authorization", ""), "http")
        body = await request.json() if request.can_read_body else None
        status, answer = await self.answer(request.method, request.path, dict(request.query), body)
        return web.json_response(answer, status=status)

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        auth = request.headers.get("Authorization", "")
        async for msg in ws:
            frame = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
            if self.ws_rest and frame.get("type") == "RESTRequest":
                asyncio.create_task(self._ws_rest(ws, frame, auth))
        return ws

    async def _ws_rest(self, ws: web.WebSocketResponse, frame: dict, auth: str) -> None:
        path = "/ari/" + frame["uri"]
        query = {q["name"]: q["value"] for q in frame.get("query_strings", [])}
        self._seen(frame["method"], path, query, auth, "websocket")
        body = json.loads(frame["message_body"]) if frame.get("message_body") else None
        status, answer = await self.answer(frame["method"], path, query, body)
        await ws.send_str(json.dumps({
            "type": "RESTResponse", "request_id": frame.get("request_id", ""),
            "transaction_id": "", "status_code": status, "reason_phrase": "OK", "uri": frame["uri"],
            "content_type": "application/json", "message_body": json.dumps(answer)}))

    async def push(self, event: dict) -> None:
        for ws in self.sockets:
            if not ws.closed:
                await ws.send_str(json.dumps(event))


@pytest.fixture
async def upstream():
    async with FakeAri() as ari:
        yield ari


@pytest.fixture
async def proxy(upstream):
    async with AriFaultProxy(upstream.url) as p:
        yield p


@pytest.fixture
async def client(proxy):
    ari = AriClient(proxy.url, *AUTH, "callpilot", backoff_initial=0.05, backoff_max=0.2)
    received: list[dict] = []

    async def on_event(event: dict) -> None:
        received.append(event)
    ari.on_event(on_event)
    ari.received = received
    yield ari
    await ari.close()


async def test_relays_rest_with_query_and_credentials(upstream, proxy, client):
    got = await client.post("/channels/cp-agent-x-1", endpoint="PJSIP/1001", callerId="155 01")
    assert got == {"method": "POST", "path": "/ari/channels/cp-agent-x-1",
                   "query": {"endpoint": "PJSIP/1001", "callerId": "155 01"}}
    assert upstream.requests[0][3].startswith("Basic ")
    [seen] = proxy.exchanges
    assert (seen.method, seen.path, seen.status, seen.fault) == \
        ("POST", "/ari/channels/cp-agent-x-1", 200, None)
    assert "callerId=155 01" in seen.query


async def test_fail_first_n_matches_then_relays(upstream, proxy, client):
    proxy.add(Rule("POST", r"/ari/bridges/[^/]+/addChannel", Fail(503, '{"message": "busy"}'),
                   times=1))
    with pytest.raises(AriError) as err:
        await client.post("/bridges/cp-hold-q/addChannel", channel="c1")
    assert err.value.status == 503 and "busy" in str(err.value)
    await client.post("/bridges/cp-hold-q/addChannel", channel="c2")   # the rule is spent
    await client.post("/bridges/cp-hold-q", type="holding")          # path must match fully
    assert [r[2].get("channel") for r in upstream.requests] == ["c2", None]
    assert [x.status for x in proxy.exchanges] == [503, 200, 200]
    assert len(proxy.faulted()) == 1


async def test_query_regex_picks_one_call(upstream, proxy, client):
    proxy.add(Rule("POST", r"/ari/channels/cp-agent-.*", Fail(500), query=r"callerId=15559$"))
    await client.post("/channels/cp-agent-a-1", callerId="15551")
    with pytest.raises(AriError):
        await client.post("/channels/cp-agent-b-1", callerId="15559")
    assert [r[1] for r in upstream.requests] == ["/ari/channels/cp-agent-a-1"]


async def test_forwarded_failure_reaches_asterisk_but_reports_an_error(upstream, proxy, client):
    proxy.add(Rule("DELETE", r"/ari/channels/.*", Fail(500, forward=True)))
    with pytest.raises(AriError):
        await client.delete("/channels/c9")
    assert upstream.requests[-1][:2] == ("DELETE", "/ari/channels/c9")


async def test_delay_holds_the_request_before_asterisk_sees_it(upstream, proxy, client):
    proxy.add(Rule("POST", r"/ari/channels/[^/]+", Delay(0.4), times=1))
    slow = asyncio.create_task(client.post("/channels/slow", endpoint="PJSIP/1"))
    await proxy.wait_exchange(lambda x: x.path == "/ari/channels/slow", timeout=5)
    await client.post("/channels/fast")                    # not queued behind the slow one
    assert [r[1] for r in upstream.requests] == ["/ari/channels/fast"]
    await slow
    assert [r[1] for r in upstream.requests] == ["/ari/channels/fast", "/ari/channels/slow"]
    slow_x = next(x for x in proxy.exchanges if x.path.endswith("/slow"))
    assert upstream.arrived["/ari/channels/slow"] - slow_x.started >= 0.4
    assert isinstance(slow_x.fault, Delay)


async def test_delay_after_lets_asterisk_act_first(upstream, proxy, client):
    proxy.add(Rule("POST", r"/ari/channels/[^/]+", Delay(0.3, after=True)))
    await client.post("/channels/a")
    [x] = proxy.exchanges
    assert upstream.arrived["/ari/channels/a"] - x.started < x.seconds
    assert x.ended - upstream.arrived["/ari/channels/a"] >= 0.3


async def _held_until_released(upstream, proxy, client) -> None:
    proxy.add(Rule("GET", r"/ari/channels", Hold(), times=1))
    held = asyncio.create_task(client.get("/channels"))
    await proxy.wait_exchange(lambda x: x.path == "/ari/channels", timeout=5, what="the held request")
    await client.get("/channels/other")                    # not queued behind the held one
    assert "/ari/channels" not in upstream.arrived and not held.done()
    proxy.release()
    assert (await held)["path"] == "/ari/channels"
    assert isinstance(next(x for x in proxy.exchanges if x.path == "/ari/channels").fault, Hold)


async def test_hold_keeps_an_http_request_until_released(upstream, proxy, client):
    await _held_until_released(upstream, proxy, client)
    assert client.transport_in_use == "http"


async def test_hold_keeps_a_request_on_the_events_socket_until_released(upstream, proxy, connected):
    assert connected.transport_in_use == "websocket"
    await _held_until_released(upstream, proxy, connected)


@pytest.mark.parametrize("forward", [False, True])
async def test_cut_closes_the_connection_without_an_answer(upstream, proxy, client, forward):
    proxy.add(Rule("POST", r"/ari/channels/[^/]+", Cut(forward=forward), times=1))
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/channels/c1")
    assert len(upstream.requests) == (1 if forward else 0)
    assert proxy.exchanges[0].status is None
    await client.post("/channels/c2")                       # a new connection works


@pytest.fixture
async def connected(proxy, client):
    """The client's events loop running through the proxy, connected."""
    runner = asyncio.create_task(client.run())
    await proxy.wait_until(lambda: client.state is AriState.CONNECTED, 5, "connected")
    yield client
    await client.close()
    runner.cancel()


async def test_events_are_relayed_and_recorded(upstream, proxy, connected):
    event = {"type": "StasisStart", "args": ["enqueue", "q"],
             "channel": {"id": "c1", "creationtime": "2026-12-01T13:05:18.123+0000"}}
    await upstream.push(event)
    await proxy.wait_until(lambda: connected.received, 5, "event at the client")
    assert connected.received == [event]
    seen = proxy.stasis_starts()["c1"]
    assert seen.socket == 1 and seen.at >= ari_time(event["channel"]["creationtime"])


async def test_cut_events_on_demand_hold_then_allow(upstream, proxy, connected):
    assert await proxy.cut_events(hold=True) == 1
    await proxy.wait_until(lambda: proxy.refused_sockets >= 2, 5, "refused reconnects")
    assert connected.state is not AriState.CONNECTED and connected.connects == 1
    proxy.allow_events()
    await proxy.wait_until(lambda: connected.connects == 2 and connected.state is AriState.CONNECTED,
                           5, "reconnected")
    assert proxy.sockets == 2
    await upstream.push({"type": "Ping"})
    await proxy.wait_until(lambda: connected.received, 5, "event after reconnect")


async def test_cut_events_rule_fires_with_the_request(upstream, proxy, connected):
    proxy.add(Rule("POST", r"/ari/bridges/cp-call-[^/]+/addChannel", CutEvents(), times=1))
    await connected.post("/bridges/cp-call-1/addChannel", channel="a,b")   # still relayed
    assert upstream.requests[-1][1] == "/ari/bridges/cp-call-1/addChannel"
    await proxy.wait_until(lambda: connected.connects == 2, 5, "reconnect after the cut")

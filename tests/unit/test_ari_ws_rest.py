"""ARI REST over the events WebSocket (callpilot.infra.asterisk.ari, ari_ws_rest), against a
real aiohttp server that speaks Asterisk's RESTRequest / RESTResponse frames
(tests.unit.test_ari_faults.FakeAri): answers matched by request id out of order, many in
flight, deadlines, 404 and other errors, a socket lost with requests in flight, the HTTP
fallback for an Asterisk that does not answer there, events held during the connect phase;
and the fault proxy's rules applied to such requests (docs/decisions.md D26)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from callpilot.infra.asterisk.ari import AriClient, AriError, AriNotFound, AriState
from callpilot.infra.asterisk.ari_ws_rest import RestTransport, WsLinkLost
from testkit.ari_faults import AriFaultProxy, Cut, CutEvents, Delay, Fail, Rule
from tests.unit.test_ari_event_filter import _until as until
from tests.unit.test_ari_faults import AUTH, FakeAri


class ScriptedAri(FakeAri):
    """FakeAri whose answers the test controls: paths under ``/ari/held/`` wait until
    :meth:`release` (in the order given), ``/ari/missing/...`` is 404, ``/ari/broken`` 500,
    ``/ari/never`` is never answered."""

    def __init__(self, ws_rest: bool = True):
        super().__init__(ws_rest)
        self.held: dict[str, asyncio.Event] = {}
        self.answered: list[str] = []

    async def answer(self, method, path, query, body):
        if path.startswith("/ari/held/"):
            await self.held.setdefault(path, asyncio.Event()).wait()
        elif path.startswith("/ari/missing/"):
            return 404, {"message": "Channel not found"}
        elif path == "/ari/broken":
            return 500, {"message": "Internal Server Error"}
        elif path == "/ari/never":
            await asyncio.Event().wait()
        elif path == "/ari/channels":
            return 200, [{"id": f"c{n}", "name": "PJSIP/x" * 20} for n in range(40_000)]
        self.answered.append(path)
        return 200, {"path": path, "query": query, "body": body}

    async def release(self, *paths: str) -> None:
        for path in paths:
            self.held.setdefault(path, asyncio.Event()).set()
            await until(lambda: path in self.answered, f"{path} answered")


@pytest.fixture
async def fake():
    async with ScriptedAri() as server:
        yield server


async def connected_client(url: str, **kwargs) -> tuple[AriClient, asyncio.Task]:
    ari = AriClient(url, *AUTH, "callpilot", backoff_initial=0.01, backoff_max=0.05, **kwargs)
    runner = asyncio.create_task(ari.run())
    await until(lambda: ari.state is AriState.CONNECTED and ari.connects >= 1, "connected")
    return ari, runner


@pytest.fixture
async def client(fake):
    ari, runner = await connected_client(fake.url, request_timeout=2.0)
    await until(lambda: ari.transport_in_use == "websocket", "REST over the socket")
    yield ari
    await ari.close()
    runner.cancel()


async def test_answers_are_matched_by_request_id_out_of_order(fake, client):
    first = asyncio.create_task(client.get("/held/a"))
    second = asyncio.create_task(client.post("/held/b", {"x": 1}, mode="both", early=True,
                                             timeout=15))
    await until(lambda: len(fake.requests) == 3, "both requests in flight at once")  # + probe
    await fake.release("/ari/held/b")
    assert await second == {"path": "/ari/held/b", "body": {"x": 1},
                            "query": {"mode": "both", "early": "true", "timeout": "15"}}
    assert not first.done()
    await fake.release("/ari/held/a")
    assert (await first)["path"] == "/ari/held/a"
    assert set(fake.transports) == {"websocket"} and client.requests == {"websocket": 2}


async def test_many_requests_in_flight_at_once(fake, client):
    paths = [f"/held/{n}" for n in range(20)]
    calls = [asyncio.create_task(client.get(p)) for p in paths]
    await until(lambda: len(fake.requests) == 21, "all 20 sent before any answer")
    await fake.release(*[f"/ari{p}" for p in reversed(paths)])
    assert [(await c)["path"] for c in calls] == [f"/ari{p}" for p in paths]


async def test_404_and_other_errors_map_as_over_http(client):
    with pytest.raises(AriNotFound) as gone:
        await client.post("/missing/c1/answer")
    with pytest.raises(AriError) as broken:
        await client.delete("/broken")
    assert gone.value.status == 404 and "Channel not found" in str(gone.value)
    assert broken.value.status == 500 and not isinstance(broken.value, AriNotFound)


async def test_an_answer_bigger_than_aiohttps_default_frame_limit(client):
    """A resync's GET /channels at thousands of calls: one frame of several MB."""
    channels = await client.get("/channels")
    assert len(channels) == 40_000 and client.transport_in_use == "websocket"
    assert client.connects == 1


async def test_a_request_never_answered_meets_its_deadline_alone(fake, client):
    client.request_timeout = 0.2
    with pytest.raises(asyncio.TimeoutError):
        await client.get("/never")
    assert client._ws_rest.in_flight == 0                 # forgotten with its deadline
    assert (await client.get("/asterisk/info"))["path"] == "/ari/asterisk/info"


async def test_socket_lost_in_flight_post_fails_get_is_asked_over_http(fake, client):
    post = asyncio.create_task(client.post("/held/originate"))
    get = asyncio.create_task(client.get("/held/channels"))
    await until(lambda: len(fake.requests) == 3, "both in flight")
    await fake.sockets[0].close()              # Asterisk drops the socket, no answer sent
    with pytest.raises(WsLinkLost):
        await post                             # failed at once, not sent again
    fake.held["/ari/held/channels"].set()
    assert (await get)["path"] == "/ari/held/channels"
    assert [(r[1], t) for r, t in zip(fake.requests, fake.transports)][1:] == [
        ("/ari/held/originate", "websocket"), ("/ari/held/channels", "websocket"),
        ("/ari/held/channels", "http")]
    assert isinstance(post.exception(), aiohttp.ClientConnectionError)   # as a cut HTTP link


async def test_requests_while_the_socket_is_down_use_http(fake, client):
    await fake.sockets[0].close()
    await until(lambda: client.transport_in_use == "http", "socket gone")
    await client.post("/channels/c1/answer")
    assert fake.transports[-1] == "http"
    await until(lambda: client.connects == 2 and client.transport_in_use == "websocket", "back")
    await client.post("/channels/c1/answer")
    assert fake.transports[-1] == "websocket"


async def test_an_asterisk_silent_on_the_socket_is_asked_over_http() -> None:
    """An Asterisk before 22.4 ignores the probe: after its deadline, HTTP for this connect."""
    async with ScriptedAri(ws_rest=False) as old:
        ari = AriClient(old.url, *AUTH, "callpilot", request_timeout=0.3)
        resynced = asyncio.Event()

        async def resync() -> None:
            resynced.set()
        ari.on_connect(resync)
        runner = asyncio.create_task(ari.run())
        try:
            await asyncio.wait_for(resynced.wait(), 5)
            await ari.get("/asterisk/info")
        finally:
            await ari.close()
            runner.cancel()
    assert ari.transport_in_use == "http" and old.transports == ["http"]
    assert ari.requests == {"http": 1}       # the probe is not counted


async def test_http_transport_never_uses_the_socket(fake) -> None:
    ari, runner = await connected_client(fake.url, rest_transport="http")
    try:
        await ari.get("/asterisk/info")
    finally:
        await ari.close()
        runner.cancel()
    assert fake.transports == ["http"] and ari.requests == {"http": 1}


async def test_websocket_transport_waits_for_the_socket(fake) -> None:
    ari = AriClient(fake.url, *AUTH, "callpilot", rest_transport=RestTransport.WEBSOCKET)
    early = asyncio.create_task(ari.get("/asterisk/info"))      # before any connect
    runner = asyncio.create_task(ari.run())
    try:
        assert (await early)["path"] == "/ari/asterisk/info"
    finally:
        await ari.close()
        runner.cancel()
    assert fake.transports == ["websocket"]                     # no probe in this mode


async def test_events_wait_for_the_connect_phase_then_keep_their_order(fake) -> None:
    """The resync (on_connect) runs its requests on the socket; events arriving meanwhile
    reach the handlers after it, in order, as when the reader started after the resync."""
    seen: list[str] = []
    ari = AriClient(fake.url, *AUTH, "callpilot", backoff_initial=0.01)

    async def resync() -> None:
        await until(lambda: fake.sockets, "socket")
        for n in range(3):
            await fake.push({"type": "StasisStart", "n": n})
        await ari.get("/held/resync")
        seen.append("resync done")

    async def on_event(event: dict) -> None:
        seen.append(f"event {event['n']}")
    ari.on_connect(resync)
    ari.on_event(on_event)
    runner = asyncio.create_task(ari.run())
    try:
        await until(lambda: len(fake.requests) == 2, "resync request sent")
        await asyncio.sleep(0.05)
        assert seen == []
        await fake.release("/ari/held/resync")
        await until(lambda: len(seen) == 4, "events after the resync")
    finally:
        await ari.close()
        runner.cancel()
    assert seen == ["resync done", "event 0", "event 1", "event 2"]


# -- the fault proxy's rules on requests carried by the socket ------------------------------


@pytest.fixture
async def proxied(fake):
    async with AriFaultProxy(fake.url) as proxy:
        ari, runner = await connected_client(proxy.url, request_timeout=2.0)
        await until(lambda: ari.transport_in_use == "websocket", "REST over the socket")
        yield proxy, ari
        await ari.close()
        runner.cancel()


async def test_proxy_records_and_fails_socket_requests(fake, proxied):
    proxy, ari = proxied
    proxy.add(Rule("POST", r"/ari/bridges/[^/]+/addChannel", Fail(503, '{"message": "busy"}'),
                   times=1))
    with pytest.raises(AriError) as err:
        await ari.post("/bridges/b1/addChannel", channel="c1")
    await ari.post("/bridges/b1/addChannel", channel="c2")
    assert err.value.status == 503
    x = [x for x in proxy.exchanges if x.path == "/ari/bridges/b1/addChannel"]
    assert [(e.transport, e.query, e.status) for e in x] == [
        ("websocket", "channel=c1", 503), ("websocket", "channel=c2", 200)]
    assert [r[2] for r in fake.requests if r[1].endswith("addChannel")] == [{"channel": "c2"}]


async def test_proxy_delay_holds_one_socket_request_only(fake, proxied):
    proxy, ari = proxied
    proxy.add(Rule("POST", r"/ari/channels/slow", Delay(0.4), times=1))
    slow = asyncio.create_task(ari.post("/channels/slow"))
    await proxy.wait_exchange(lambda x: x.path == "/ari/channels/slow", timeout=5)
    await ari.post("/channels/fast")
    assert [r[1] for r in fake.requests][-1] == "/ari/channels/fast"
    await slow
    x = next(x for x in proxy.exchanges if x.path == "/ari/channels/slow")
    assert x.seconds >= 0.4 and x.status == 200


@pytest.mark.parametrize("forward", [False, True])
async def test_proxy_cut_of_a_socket_request_loses_the_socket(fake, proxied, forward):
    proxy, ari = proxied
    proxy.add(Rule("POST", r"/ari/channels/[^/]+", Cut(forward=forward), times=1))
    with pytest.raises(WsLinkLost):
        await ari.post("/channels/c1")
    assert [r[1] for r in fake.requests].count("/ari/channels/c1") == (1 if forward else 0)
    await until(lambda: ari.connects == 2 and ari.transport_in_use == "websocket", "reconnected")
    await ari.post("/channels/c2")


async def test_proxy_cut_events_answers_the_request_then_cuts(fake, proxied):
    proxy, ari = proxied
    proxy.add(Rule("POST", r"/ari/bridges/[^/]+/addChannel", CutEvents(), times=1))
    assert (await ari.post("/bridges/b/addChannel", channel="a"))["query"] == {"channel": "a"}
    await until(lambda: ari.connects == 2, "reconnect after the cut")

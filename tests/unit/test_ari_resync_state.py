"""The ARI link says RESYNCING while its ``on_connect`` handlers run and CONNECTED only once
they have all returned (D39): serve's status, its metrics and whoever waits on ``connected``
never take a half-done resync for a settled one.  Against a small ARI-like aiohttp server
(tests.unit.test_ari_faults.FakeAri); and the client's count of 404 answers."""
from __future__ import annotations

import asyncio
import logging

import pytest

from callpilot.infra.asterisk.ari import AriClient, AriNotFound, AriState
from tests.unit.test_ari_event_filter import _until as until
from tests.unit.test_ari_faults import AUTH, FakeAri, upstream  # noqa: F401  (fixture)


class Gate:
    """An on_connect handler that waits until released and notes the link's state it saw."""

    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.saw: list[tuple[AriState, bool]] = []

    async def __call__(self) -> None:
        self.saw.append((self.ari.state, self.ari.connected.is_set()))
        self.entered.set()
        await self.release.wait()


@pytest.fixture
async def link(upstream):
    ari = AriClient(upstream.url, *AUTH, "callpilot", backoff_initial=0.01, backoff_max=0.05)
    runner = asyncio.create_task(ari.run())
    ari.runner = runner
    yield ari
    await ari.close()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_resyncing_until_every_connect_handler_has_returned(link):
    gate = Gate(link)
    link.on_connect(gate)
    await asyncio.wait_for(gate.entered.wait(), 5)
    assert gate.saw == [(AriState.RESYNCING, False)]
    assert link.state is AriState.RESYNCING and not link.connected.is_set()
    gate.release.set()
    await asyncio.wait_for(link.connected.wait(), 5)
    assert link.state is AriState.CONNECTED
    assert [state for state, _at in link.history] == ["connecting", "resyncing", "connected"]


async def test_every_reconnect_resyncs_before_it_says_connected(link):
    gate = Gate(link)
    gate.release.set()
    link.on_connect(gate)
    await asyncio.wait_for(link.connected.wait(), 5)
    gate.release.clear()
    gate.entered.clear()
    await link.drop_connection()
    await asyncio.wait_for(gate.entered.wait(), 5)
    assert link.state is AriState.RESYNCING and link.connects == 2
    gate.release.set()
    await until(lambda: link.state is AriState.CONNECTED, "connected again")
    assert gate.saw == [(AriState.RESYNCING, False)] * 2
    states = [state for state, _at in link.history]
    assert states[-3:] == ["connecting", "resyncing", "connected"] and "backoff" in states


async def test_a_failing_handler_is_logged_and_the_link_still_comes_up(link, caplog):
    ran: list[str] = []

    async def broken() -> None:
        ran.append("broken")
        raise RuntimeError("resync failed")

    async def after() -> None:
        ran.append("after")
    link.on_connect(broken)
    link.on_connect(after)
    with caplog.at_level(logging.ERROR, logger="callpilot.infra.asterisk.ari"):
        await asyncio.wait_for(link.connected.wait(), 5)
    assert ran == ["broken", "after"] and link.state is AriState.CONNECTED
    assert any("on_connect handler failed" in r.getMessage() for r in caplog.records)


async def test_a_socket_lost_during_the_resync_is_never_reported_connected(upstream, link):
    gate = Gate(link)
    link.on_connect(gate)
    await asyncio.wait_for(gate.entered.wait(), 5)
    for ws in upstream.sockets:
        await ws.close()
    await until(lambda: link.transport_in_use == "http", "the lost socket seen by the reader")
    gate.release.set()
    await until(lambda: link.connects == 2 and link.state is AriState.CONNECTED, "the next connect")
    states = [state for state, _at in link.history]
    assert states == ["connecting", "resyncing", "backoff", "connecting", "resyncing", "connected"]


async def test_close_during_the_resync_stays_closed(link):
    gate = Gate(link)
    link.on_connect(gate)
    await asyncio.wait_for(gate.entered.wait(), 5)
    await link.close()
    gate.release.set()
    await asyncio.wait_for(link.runner, 5)
    assert link.state is AriState.CLOSED and not link.connected.is_set()
    assert "connected" not in [state for state, _at in link.history]


class GoneChannels(FakeAri):
    async def answer(self, method: str, path: str, query: dict, body: object) -> tuple[int, object]:
        if path.startswith("/ari/channels/gone"):
            return 404, {"message": "Channel not found"}
        return await super().answer(method, path, query, body)


@pytest.mark.parametrize("ws_rest", [True, False], ids=["websocket", "http"])
async def test_404_answers_are_counted_by_method_and_kind(ws_rest):
    async with GoneChannels(ws_rest=ws_rest) as fake:
        ari = AriClient(fake.url, *AUTH, "callpilot", backoff_initial=0.01)
        runner = asyncio.create_task(ari.run())
        try:
            await asyncio.wait_for(ari.connected.wait(), 5)
            for _ in range(2):
                with pytest.raises(AriNotFound):
                    await ari.delete("/channels/gone-1")
            await ari.delete("/channels/here")
            with pytest.raises(AriNotFound):
                await ari.get("/channels/gone-2")
        finally:
            await ari.close()
            runner.cancel()
    assert ari.not_found == {"DELETE /channels": 2, "GET /channels": 1}

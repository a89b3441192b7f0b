"""AriClient asks Asterisk for the handled event types only, after every (re)connect
(``PUT /applications/{app}/eventFilter``; docs/decisions.md D21)."""
from __future__ import annotations

import asyncio


from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.channel_events import HANDLED_EVENTS
from tests.unit.test_ari_faults import AUTH, FakeAri


class FilterRecordingAri(FakeAri):
    """FakeAri that also keeps the JSON body of every PUT (over HTTP or the events socket)."""

    def __init__(self):
        super().__init__()
        self.bodies: list[tuple[str, object]] = []

    async def answer(self, method: str, path: str, query: dict, body: object) -> tuple[int, object]:
        if method == "PUT":
            self.bodies.append((path, body))
        return await super().answer(method, path, query, body)


async def _until(predicate, what: str, turns: int = 500) -> None:
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_filter_is_applied_on_every_connect() -> None:
    async with FilterRecordingAri() as fake:
        ari = AriClient(fake.url, *AUTH, "callpilot", backoff_initial=0.01,
                        events={"StasisStart", "ChannelDtmfReceived"})
        runner = asyncio.create_task(ari.run())
        try:
            await _until(lambda: len(fake.bodies) == 1, "first filter")
            await ari.drop_connection()
            await _until(lambda: ari.connects == 2 and len(fake.bodies) == 2, "filter after reconnect")
        finally:
            await ari.close()
            runner.cancel()
    expected = {"allowed": [{"type": "ChannelDtmfReceived"}, {"type": "RESTResponse"},
                            {"type": "StasisStart"}]}
    assert fake.bodies == [("/ari/applications/callpilot/eventFilter", expected)] * 2


async def test_no_filter_without_an_event_list() -> None:
    async with FilterRecordingAri() as fake:
        ari = AriClient(fake.url, *AUTH, "callpilot")
        runner = asyncio.create_task(ari.run())
        try:
            await _until(lambda: ari.connects == 1, "connect")
            await ari.get("/asterisk/info")          # a request after the connect handlers
        finally:
            await ari.close()
            runner.cancel()
    assert fake.bodies == []
    assert [r[:2] for r in fake.requests] == [("GET", "/ari/asterisk/ping"), ("GET", "/ari/asterisk/info")]


def test_the_handled_events_cover_what_the_router_and_inboxes_read() -> None:
    assert {"StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest",
            "ChannelDtmfReceived", "PlaybackFinished"} <= HANDLED_EVENTS

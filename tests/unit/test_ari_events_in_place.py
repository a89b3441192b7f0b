"""An event whose lane is idle is handled by the task that read it off the events socket (a new
task reads on): no task hop between a call's StasisStart and its role handler (docs/decisions.md
D35).  What must still hold, against a real aiohttp server (tests.unit.test_ari_faults.FakeAri):
one call's events in order, a stuck call never holds up the socket or another call, a socket
dropped under such a handler reconnects, and events held during the connect phase still go
through the lanes in order."""
from __future__ import annotations

import asyncio
import random

import pytest

from callpilot.infra.asterisk.ari import AriClient, AriState
from callpilot.infra.asterisk.channel_events import lane_of
from tests.unit.test_ari_event_filter import _until as until
from tests.unit.test_ari_faults import AUTH, upstream  # noqa: F401  (fixture)


def event(kind: str, channel: str, n: int = 0) -> dict:
    return {"type": kind, "channel": {"id": channel}, "n": n}


class Recorder:
    """The client's one event handler: records (channel, type, n) and the task it ran in;
    a channel listed in ``stuck`` waits on its first event until released."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.tasks: dict[tuple[str, int], asyncio.Task] = {}
        self.stuck: dict[str, asyncio.Event] = {}
        self.yields = random.Random(7)

    async def __call__(self, ev: dict) -> None:
        channel = ev["channel"]["id"]
        self.tasks[(channel, ev["n"])] = asyncio.current_task()
        gate = self.stuck.get(channel)
        if gate is not None:
            await gate.wait()
        for _ in range(self.yields.randrange(3)):     # handlers that await, as real ones do
            await asyncio.sleep(0)
        self.seen.append((channel, ev["type"], ev["n"]))

    def of(self, channel: str) -> list[int]:
        return [n for c, _kind, n in self.seen if c == channel]


@pytest.fixture
async def client(upstream):
    ari = AriClient(upstream.url, *AUTH, "callpilot", backoff_initial=0.01, backoff_max=0.05,
                    lane_of=lane_of)
    ari.recorder = Recorder()
    ari.on_event(ari.recorder)
    runner = asyncio.create_task(ari.run())
    await until(lambda: ari.state is AriState.CONNECTED and upstream.sockets and ari._held is None,
                "connected, connect phase over")
    yield ari
    await ari.close()
    runner.cancel()


async def test_the_first_event_of_a_call_runs_in_the_task_that_read_it(upstream, client):
    await upstream.push(event("StasisStart", "c1", 1))
    await until(lambda: client.recorder.seen, "handled")
    ran_in = client.recorder.tasks[("c1", 1)]
    assert ran_in.get_name() == "ari-events-reader"      # not a lane task of its own
    assert ran_in is not client._reader                  # reading went on in a new task
    assert client.lanes.busy == 0
    await upstream.push(event("StasisEnd", "c1", 2))         # the new reader reads on
    await until(lambda: len(client.recorder.seen) == 2, "second event handled")


async def test_one_calls_events_stay_in_order_behind_a_stuck_first_one(upstream, client):
    rec = client.recorder
    rec.stuck["a"] = asyncio.Event()
    await upstream.push(event("StasisStart", "a", 1))
    await until(lambda: ("a", 1) in rec.tasks, "a's StasisStart in its handler")
    for n in (2, 3):
        await upstream.push(event("ChannelDtmfReceived", "a", n))
    await upstream.push(event("StasisStart", "b", 1))
    await upstream.push(event("StasisEnd", "b", 2))
    await until(lambda: rec.of("b") == [1, 2], "b handled while a is stuck")
    assert rec.of("a") == []
    rec.stuck.pop("a").set()
    await until(lambda: rec.of("a") == [1, 2, 3], "a's events, in order")
    assert rec.tasks[("a", 2)] is rec.tasks[("a", 1)]    # queued behind, drained by a's task


async def test_interleaved_calls_each_keep_their_order(upstream, client):
    channels = [f"c{k}" for k in range(6)]
    sent = {c: [] for c in channels}
    order = random.Random(3)
    for n in range(1, 121):
        channel = order.choice(channels)
        sent[channel].append(n)
        await upstream.push(event("ChannelDtmfReceived", channel, n))
    await until(lambda: len(client.recorder.seen) == 120, "all 120 handled")
    assert {c: client.recorder.of(c) for c in channels} == sent
    await until(lambda: client.lanes.busy == 0, "lanes drained")


async def test_a_socket_dropped_under_a_stuck_handler_reconnects_and_its_lane_goes_on(upstream, client):
    rec = client.recorder
    rec.stuck["a"] = asyncio.Event()
    await upstream.push(event("StasisStart", "a", 1))
    await until(lambda: ("a", 1) in rec.tasks, "a stuck in its handler")
    await upstream.sockets[0].close()
    await until(lambda: client.connects == 2 and client.state is AriState.CONNECTED
                and len(upstream.sockets) == 2 and client._held is None, "reconnected")
    await upstream.push(event("StasisStart", "b", 1))
    await upstream.push(event("StasisEnd", "a", 2))        # after the reconnect, behind a's first
    await until(lambda: rec.of("b") == [1], "b handled on the new socket")
    assert rec.of("a") == []
    rec.stuck.pop("a").set()
    await until(lambda: rec.of("a") == [1, 2], "a's lane went on, in order")


async def test_a_frame_that_is_not_a_json_object_is_dropped_and_reading_goes_on(upstream, client):
    for ws in upstream.sockets:
        await ws.send_str("{not json")
        await ws.send_str("[1, 2]")
    await upstream.push(event("StasisStart", "c1", 1))
    await until(lambda: client.recorder.of("c1") == [1], "the next event handled")
    assert client.connects == 1 and client.state is AriState.CONNECTED

"""ARI events in lanes: one call's events in order, a stuck handler holds up only its own call,
and no handler runs past its deadline."""
from __future__ import annotations

import asyncio

from callpilot.infra.asterisk.channel_events import ChannelInboxes, StasisRouter, lane_of
from callpilot.infra.asterisk.event_lanes import EventLanes


def event(kind: str, channel: str, **extra) -> dict:
    return {"type": kind, "channel": {"id": channel}, **extra}


def hanging_on(kind: str, seen: list[str]):
    """A handler that never returns from ``kind`` events and records the others' types."""
    async def handle(ev: dict) -> None:
        if ev["type"] == kind:
            await asyncio.Event().wait()
        seen.append(ev["type"])
    return handle


def test_an_agent_leg_shares_its_call_lane_and_a_playback_its_channel_lane():
    assert lane_of(event("StasisStart", "cp-agent-1700.12-3")) == "1700.12"
    assert lane_of(event("StasisEnd", "1700.12")) == "1700.12"
    assert lane_of({"type": "PlaybackFinished", "playback": {"target_uri": "channel:1700.12"}}) == "1700.12"
    assert lane_of({"type": "ApplicationReplaced"}) == ""


async def test_a_stuck_call_does_not_hold_up_another_and_one_call_stays_in_order():
    seen: list[tuple[str, str]] = []
    release = asyncio.Event()

    async def handle(ev: dict) -> None:
        if ev["type"] == "Stuck":
            await release.wait()
        seen.append((ev["channel"]["id"], ev["type"]))

    lanes = EventLanes(handle, lane_of, deadline=5)
    lanes.push(event("Stuck", "a"))
    lanes.push(event("StasisEnd", "a"))              # must wait behind a's stuck event
    lanes.push(event("StasisStart", "b"))
    lanes.push(event("StasisEnd", "b"))
    await asyncio.wait_for(_until(lambda: len(seen) == 2), 2)
    assert seen == [("b", "StasisStart"), ("b", "StasisEnd")]
    release.set()
    await asyncio.wait_for(lanes.idle(), 2)
    assert seen[2:] == [("a", "Stuck"), ("a", "StasisEnd")]
    assert lanes.busy == 0                           # drained lanes are forgotten


def hang_then_end(deadline: float) -> tuple[list[str], EventLanes]:
    """Lane "a" holding a handler that hangs, then its StasisEnd."""
    seen: list[str] = []
    lanes = EventLanes(hanging_on("Hang", seen), lane_of, deadline=deadline)
    lanes.push(event("Hang", "a"))
    lanes.push(event("StasisEnd", "a"))
    return seen, lanes


async def test_a_handler_past_its_deadline_is_cancelled_and_the_lane_goes_on():
    seen, lanes = hang_then_end(deadline=0.1)
    await asyncio.wait_for(lanes.idle(), 2)
    assert seen == ["StasisEnd"]


async def test_a_failing_handler_does_not_stop_its_lane():
    seen: list[str] = []

    async def handle(ev: dict) -> None:
        if ev["type"] == "Boom":
            raise RuntimeError("boom")
        seen.append(ev["type"])

    lanes = EventLanes(handle, lane_of)
    lanes.push(event("Boom", "a"))
    lanes.push(event("StasisEnd", "a"))
    await asyncio.wait_for(lanes.idle(), 2)
    assert seen == ["StasisEnd"]


async def test_the_router_dispatches_on_the_role_and_falls_back_for_unknown_ones():
    router = StasisRouter(ChannelInboxes())
    calls: list[tuple[str, list[str]]] = []
    heard: list[str] = []

    def role(name):
        async def handler(channel, args):
            calls.append((name, args))
        return handler

    async def listener(ev):
        heard.append(ev["type"])

    router.role("enqueue", role("enqueue"))
    router.fallback(role("fallback"))
    router.listen(listener)
    await router.on_event(event("StasisStart", "c1", args=["enqueue", "billing"]))
    await router.on_event(event("StasisStart", "c2", args=["bogus"]))
    await router.on_event(event("StasisEnd", "c1"))
    assert calls == [("enqueue", ["enqueue", "billing"]), ("fallback", ["bogus"])]
    assert heard == ["StasisStart", "StasisStart", "StasisEnd"]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_the_router_tells_a_soft_hangup_from_the_far_ends():
    router = StasisRouter(ChannelInboxes())
    await router.on_event(event("ChannelHangupRequest", "a", cause=16, soft=True))
    await router.on_event(event("ChannelHangupRequest", "b", cause=16))
    assert router.hangup_of("a").soft and not router.hangup_of("b").soft
    await router.on_event(event("ChannelDestroyed", "a", cause=16))
    assert router.hangup_of("a") is None                  # forgotten with the channel


async def test_a_lane_run_in_place_keeps_the_deadline_and_its_order():
    """push_here / drain_here (the socket reader running an idle lane itself, D35)."""
    seen: list[str] = []
    handle = hanging_on("Hang", seen)
    lanes = EventLanes(handle, lane_of, deadline=0.1)

    async def reader() -> None:
        lane = lanes.push_here(event("Hang", "a"))
        assert lane == "a" and lanes.push_here(event("StasisEnd", "a")) is None
        lanes.push(event("StasisStart", "b"))              # another lane: a task of its own
        await lanes.drain_here(lane)

    await asyncio.wait_for(reader(), 2)
    await asyncio.wait_for(lanes.idle(), 2)
    assert seen == ["StasisStart", "StasisEnd"] and lanes.busy == 0


async def test_shutdown_is_not_taken_for_a_deadline_and_the_watchdog_stops_when_idle():
    seen, lanes = hang_then_end(deadline=30)
    await asyncio.sleep(0.05)
    [task] = lanes._tasks.values()
    lanes.close()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and seen == []                # the lane stopped, nothing after
    quick = EventLanes(hanging_on("Hang", seen), lane_of, deadline=0.1)
    quick.push(event("StasisStart", "b"))
    await asyncio.wait_for(quick.idle(), 2)
    await asyncio.sleep(0.05)                             # the watchdog's next look
    assert quick._watchdog is None and seen == ["StasisStart"]

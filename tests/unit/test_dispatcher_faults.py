"""ARI faults under the dispatcher: a request that fails (500) or never answers stalls one call
at most, for at most the action deadline, and leaves it somewhere safe.  Fake call control
(the e2e fault-injection suite drives real Asterisk)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from acd.actions import Bridged
from acd.agents import AgentRoster
from acd.dispatcher import MAX_BRIDGE_FAILURES, CallEntry, Dispatcher
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState
from callpilot.infra.asterisk.ari import AriError
from callpilot.infra.db.call_vocabulary import CallOutcome, RoutingTicket
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent

DEADLINE = 0.2


class FaultyControl(FakeControl):
    """``faults[action]``: 'error' raises an ARI 500, 'hang' never returns."""

    def __init__(self, **faults: str):
        super().__init__()
        self.faults = faults
        self.connected: list[str] = []
        self.parks = 0

    async def _maybe_fail(self, action: str) -> None:
        fault = self.faults.get(action)
        if fault == "error":
            raise AriError(500, "POST", f"/{action}", "Internal Server Error")
        if fault == "hang":
            await asyncio.Event().wait()

    async def park(self, call_id, queue, moh_class="default"):
        self.parks += 1
        await self._maybe_fail("park")
        return True

    async def ring(self, call_id, endpoint, channel_id, *, timeout, caller_id):
        self.rung.append((call_id, endpoint))
        if call_id in self.faults.get("ring_calls", ""):
            await self._maybe_fail("ring")
        return True

    async def connect(self, call_id, agent_channel, queue):
        await self._maybe_fail("connect")
        self.connected.append(call_id)
        return Bridged.CONNECTED


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

    def monotonic(self) -> float:
        return self.mono

    def utcnow(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def build(control, *agents, clock=None):
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
    records = FakeRecords()
    d = Dispatcher(control, roster, records, ring_timeout=5, wrapup_seconds=0, queues=queues,
                   action_deadline=DEADLINE, clock=clock)
    return d, records


def entry(call_id: str, **ticket) -> CallEntry:
    return CallEntry(call_id, "", "", RoutingTicket(queue="q", **ticket))


async def within(coro, seconds: float = 5.0):
    """Bounded wait for the test itself: a stall fails the test instead of hanging it."""
    return await asyncio.wait_for(coro, seconds)


@pytest.mark.parametrize("fault", ["error", "hang"])
async def test_a_failed_park_neither_drops_the_caller_nor_blocks_the_answer(fault):
    a1 = agent("1")
    control = FaultyControl(park=fault)
    d, _ = build(control, a1)
    await within(d.adopt(entry("a")))
    await d.settle()
    call = d.calls["a"]
    assert call.state is CallState.RINGING and call.parked.done()
    await within(d.agent_answered(call.agent_channel, "a"))
    assert control.connected == ["a"] and call.state is CallState.CONNECTED
    assert a1.state is AgentState.ON_CALL


async def test_an_answer_never_waits_longer_than_the_deadline_for_a_pending_park():
    a1 = agent("1")
    control = FaultyControl(park="hang")
    d, _ = build(control, a1)
    enter = asyncio.create_task(d.adopt(entry("a")))      # stays inside the park
    await asyncio.sleep(0.01)
    await d.settle()
    call = d.calls["a"]
    assert not call.parked.done()
    await within(d.agent_answered(call.agent_channel, "a"))
    assert call.state is CallState.CONNECTED
    await within(enter)                                    # the park gave up at its deadline


@pytest.mark.parametrize("fault", ["error", "hang"])
async def test_a_failed_bridge_puts_the_caller_back_in_line_and_frees_the_agent(fault):
    a1 = agent("1")
    control = FaultyControl(connect=fault)
    d, records = build(control, a1)
    await within(d.adopt(entry("a")))
    await d.settle()
    channel = d.calls["a"].agent_channel
    await within(d.agent_answered(channel, "a"))
    assert channel in control.hung_up
    assert a1.state is not AgentState.RINGING and a1.pause_reason == ""   # not blamed
    await d.settle()
    assert d.calls["a"].state in (CallState.QUEUED, CallState.RINGING)     # offered again
    assert ("a", {"state": CallState.QUEUED, "agent": None}) in records.writes
    assert control.parks == 2                  # back to the holding bridge


async def test_a_hanging_originate_stalls_only_its_own_call():
    a1, a2 = agent("1"), agent("2")
    control = FaultyControl(ring="hang", ring_calls="a")
    d, _ = build(control, a1, a2)
    await within(d.adopt(entry("a")))
    await within(d.adopt(entry("b")))          # routed while a's originate hangs
    assert sorted(c for c, _ in control.rung) == ["a", "b"]
    await within(d.settle())                   # a's originate gives up at the deadline
    rung_a = {"PJSIP/1": a1, "PJSIP/2": a2}[dict(control.rung)["a"]]
    assert rung_a.state is AgentState.AVAILABLE and rung_a.missed_offers == 1   # a missed offer
    assert d.calls["a"].state is CallState.QUEUED
    assert d.calls["b"].state is CallState.RINGING


async def test_a_hanging_release_does_not_keep_the_agent():
    a1 = agent("1")
    control = FaultyControl()
    d, records = build(control, a1)
    await within(d.adopt(entry("a")))
    await d.settle()
    await within(d.agent_answered(d.calls["a"].agent_channel, "a"))

    async def hang(*_args):
        await asyncio.Event().wait()
    control.release = hang
    await within(d.caller_gone("a"))
    assert a1.state is AgentState.AVAILABLE
    assert records.writes[-1][1]["outcome"] == "answered"


async def test_waits_and_records_follow_the_injected_clock():
    clock = FakeClock()
    d, records = build(FaultyControl(), clock=clock)       # no agent: the call waits
    await within(d.adopt(entry("a")))
    clock.advance(42)
    assert d.waiting_calls()[0]["waited"] == 42.0
    assert ("a", {"state": CallState.QUEUED, "queue": "q", "enqueued_at": clock.wall - timedelta(seconds=42),
                  "ticket": RoutingTicket("q").to_json()}) in records.writes
    await d.caller_gone("a")
    assert records.writes[-1][1]["ended_at"] == clock.wall


async def test_a_readopted_call_keeps_its_place_by_the_injected_clock():
    clock = FakeClock()
    d, _ = build(FaultyControl(), clock=clock)
    await d.adopt(CallEntry("old", "", "", RoutingTicket("q"), readopted=True,
                            enqueued_at=clock.wall - timedelta(seconds=30)))
    assert d.waiting_calls()[0]["waited"] == 30.0


async def test_a_caller_hung_up_by_asterisk_is_system_not_abandoned():
    events: list[str] = []

    class Events:
        def __getattr__(self, name):
            return lambda *args, **kwargs: events.append(name)

    d, records = build(FaultyControl())
    d.events = Events()
    await d.adopt(entry("a"))
    await d.caller_gone("a", by_system=True, cause=16)
    assert records.writes[-1][1]["outcome"] == "system" and records.writes[-1][1]["hangup_cause"] == 16
    assert "abandon" not in events
    await d.adopt(entry("b"))
    await d.caller_gone("b", cause=16)
    assert records.writes[-1][1]["outcome"] == "abandoned" and "abandon" in events


async def test_a_bridge_that_keeps_failing_is_given_up_not_bounced_between_agents():
    """Every bridge fails (a fault that persists): after MAX_BRIDGE_FAILURES answered legs the
    caller is told and the call ends as ``system``; no further agent is rung."""
    agents = [agent(str(n)) for n in range(1, MAX_BRIDGE_FAILURES + 3)]
    control = FaultyControl(connect="error")
    d, records = build(control, *agents)
    told: list[tuple[str, str]] = []

    async def give_up(call_id: str, why: str) -> None:
        told.append((call_id, why))
        await d.end(call_id, CallOutcome.SYSTEM, why)
    d.give_up = give_up
    await answer_every_offer(d, "a")
    assert len(control.rung) == MAX_BRIDGE_FAILURES
    assert told == [("a", f"Asterisk failed the bridge {MAX_BRIDGE_FAILURES} times")]
    assert records.writes[-1][1]["outcome"] == CallOutcome.SYSTEM
    assert all(a.state is AgentState.AVAILABLE for a in agents)      # none blamed, none held


async def test_without_a_give_up_hook_the_call_still_ends_as_system():
    control = FaultyControl(connect="error")
    d, records = build(control, agent("1"))
    await answer_every_offer(d, "a")
    assert len(control.rung) == MAX_BRIDGE_FAILURES
    assert records.writes[-1][1]["outcome"] == CallOutcome.SYSTEM


async def answer_every_offer(d: Dispatcher, call_id: str, rounds: int = MAX_BRIDGE_FAILURES + 2) -> None:
    """Take the call, then answer each agent leg it is offered, until it ends (or ``rounds``)."""
    d.start()
    try:
        await within(d.adopt(entry(call_id)))
        for _ in range(rounds):
            await within(_until(lambda: call_id not in d.calls
                                or d.calls[call_id].state is CallState.RINGING))
            if call_id not in d.calls:
                return
            await d.settle()
            await within(d.agent_answered(d.calls[call_id].agent_channel, call_id))
        raise AssertionError(f"call {call_id} still offered after {rounds} answered legs")
    finally:
        await d.stop()


async def test_a_park_that_failed_once_is_tried_again_for_a_waiting_caller(monkeypatch):
    import acd.dispatcher as dispatcher_module
    monkeypatch.setattr(dispatcher_module, "PARK_RETRY_SECONDS", 0.05)
    control = FaultyControl(park="error")
    d, _ = build(control)                                  # no agent: the caller waits
    await within(d.adopt(entry("a")))
    control.faults.pop("park")
    await within(_until(lambda: control.parks == 2))
    assert d.calls["a"].state is CallState.QUEUED


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


class VanishingAgents(FaultyControl):
    """The first ``vanish`` agent legs hang up between their answer and the bridge (under
    load Asterisk then answers the bridge's addChannel 400 "Channel not found"): connect
    reports AGENT_GONE."""

    def __init__(self, vanish: int):
        super().__init__()
        self.vanish = vanish

    async def connect(self, call_id, agent_channel, queue):
        if self.vanish > 0:
            self.vanish -= 1
            return Bridged.AGENT_GONE
        return await super().connect(call_id, agent_channel, queue)


async def test_agents_that_vanish_before_the_bridge_never_cost_the_caller_the_call():
    """More vanished agent legs than MAX_BRIDGE_FAILURES: not Asterisk's fault, so never
    counted against the call; the caller reaches the next agent, no agent is paused."""
    agents = [agent(str(n)) for n in range(1, MAX_BRIDGE_FAILURES + 3)]
    control = VanishingAgents(vanish=MAX_BRIDGE_FAILURES + 1)
    d, records = build(control, *agents)
    d.start()
    try:
        await within(d.adopt(entry("a")))
        for _ in range(MAX_BRIDGE_FAILURES + 2):
            await within(_until(lambda: d.calls["a"].state is CallState.RINGING))
            await d.settle()
            await within(d.agent_answered(d.calls["a"].agent_channel, "a"))
    finally:
        await d.stop()
    call = d.calls["a"]
    assert call.state is CallState.CONNECTED and control.connected == ["a"]
    assert call.bridge_failures == 0
    assert len(control.rung) == MAX_BRIDGE_FAILURES + 2
    assert not any(w[1].get("outcome") for w in records.writes)          # never ended
    vanished = [a for a in agents if a.extension != call.agent]
    assert all(a.state is AgentState.AVAILABLE and a.pause_reason == "" for a in vanished)
    assert all(f"cp-agent-a-{n}" in control.hung_up for n in range(1, MAX_BRIDGE_FAILURES + 2))


async def test_a_caller_whose_agent_vanished_is_back_at_the_head_of_the_line():
    """One agent; the older caller's agent leg vanishes before the bridge: the caller keeps
    its original entry time, so the freed agent is offered it again before the newer one."""
    clock = FakeClock()
    only = agent("1")
    control = VanishingAgents(vanish=1)
    d, _ = build(control, only, clock=clock)
    await within(d.adopt(entry("old")))
    await d.settle()
    entered = d.calls["old"].enqueued_at
    clock.advance(5)
    await within(d.adopt(entry("new")))
    await d.settle()
    assert d.calls["new"].state is CallState.QUEUED
    await within(d.agent_answered(d.calls["old"].agent_channel, "old"))
    await within(d._dispatch_once())
    await d.settle()
    old = d.calls["old"]
    assert old.enqueued_at == entered and old.state is CallState.RINGING and old.agent == "1"
    assert old.agent_channel == "cp-agent-old-2" and d.calls["new"].state is CallState.QUEUED
    assert {c["id"]: c["position"] for c in d.waiting_calls()} == {"old": 1, "new": 2}
    assert control.parks == 3                      # both callers parked, the old one again

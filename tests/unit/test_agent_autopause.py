"""Autopause (acd.autopause): offers an agent's phone misses in a row (rang out, rejected,
unreachable, hung up before the bridge) pause it after ``autopause_after``; an answer, a pause
or a logout starts the count again; 0 turns it off.  Fake call control; the e2e test is
tests/e2e/test_autopause.py."""
from __future__ import annotations

import pytest

from acd.agents import AgentRoster, LiveAgent
from acd.autopause import PAUSE_REASON, AutoPause, after_miss
from acd.dispatcher import Dispatcher
from acd.events import NullEventSink
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue
from tests.unit.test_dispatcher_faults import FakeClock, VanishingAgents

REJECTED = 21      # Q.850 call rejected (a 603 / 486 from the phone)


class Pauses(NullEventSink):
    def __init__(self) -> None:
        self.paused: list[tuple[str, list[str], str]] = []

    def agent_pause(self, agent: str, queues: list[str], reason: str) -> None:
        self.paused.append((agent, queues, reason))


def ringing(ext: str = "1") -> LiveAgent:
    a = agent(ext)
    a.move(AgentState.RINGING, "offered", call_id="c")
    a.call_id = "c"
    return a


@pytest.mark.parametrize(("missed", "after", "state"), [
    (1, 3, AgentState.AVAILABLE), (2, 3, AgentState.AVAILABLE), (3, 3, AgentState.PAUSED),
    (4, 3, AgentState.PAUSED), (1, 1, AgentState.PAUSED), (1, 0, AgentState.AVAILABLE),
    (50, 0, AgentState.AVAILABLE)])
def test_after_miss_pauses_from_the_limit_on_and_never_when_off(missed, after, state):
    assert after_miss(missed, after) is state


def test_misses_below_the_limit_free_the_agent_and_the_limit_pauses_it_with_a_reason():
    events = Pauses()
    autopause = AutoPause(3, events, FakeClock())
    a = ringing()
    for n in (1, 2):
        assert autopause.missed(a, "c", "rang out") is AgentState.AVAILABLE
        assert (a.state, a.missed_offers, a.pause_reason, events.paused) == (AgentState.AVAILABLE, n, "", [])
        a.move(AgentState.RINGING, "offered", call_id="c")
    assert autopause.missed(a, "c", "rejected") is AgentState.PAUSED
    assert (a.state, a.pause_reason) == (AgentState.PAUSED, PAUSE_REASON)
    assert events.paused == [("1", ["q"], PAUSE_REASON)]
    assert a.missed_offers == 0, "the pause starts the count again"


def test_off_never_pauses():
    autopause = AutoPause(0, Pauses(), FakeClock())
    a = ringing()
    for _ in range(10):
        assert autopause.missed(a, "c", "rang out") is AgentState.AVAILABLE
        a.move(AgentState.RINGING, "offered", call_id="c")
    assert a.missed_offers == 10


def test_a_negative_limit_is_refused():
    with pytest.raises(ValueError):
        AutoPause(-1, Pauses(), FakeClock())


@pytest.mark.parametrize("fresh", [AgentState.ON_CALL, AgentState.PAUSED, AgentState.LOGGED_OUT])
def test_an_answer_a_pause_or_a_logout_starts_the_count_again(fresh):
    a = ringing()
    a.missed_offers = 2
    a.move(fresh, "test")
    assert a.missed_offers == 0


def test_back_to_available_or_to_ringing_keeps_the_count():
    a = ringing()
    a.missed_offers = 2
    a.move(AgentState.AVAILABLE, "missed")
    a.move(AgentState.RINGING, "offered")
    assert a.missed_offers == 2


def build(*agents: LiveAgent, after: int, control=None):
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    events = Pauses()
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
    d = Dispatcher(control or FakeControl(), roster, FakeRecords(), ring_timeout=5, wrapup_seconds=0,
                   queues=queues, events=events, autopause_after=after)
    return d, d.control, events


async def routing_pass(d: Dispatcher) -> None:
    """What the dispatcher's loop does when kicked: a pass, its originates sent."""
    await d._dispatch_once()
    await d.settle()


async def reject(d: Dispatcher, call_id: str) -> None:
    await d.agent_leg_gone(d.calls[call_id].agent_channel, cause=REJECTED)
    await routing_pass(d)


async def test_a_rejecting_agent_alone_gets_the_caller_until_autopaused_then_never_again():
    only = agent("1")
    d, control, events = build(only, after=3)
    await enqueue(d, "a")
    for missed in (1, 2):
        await reject(d, "a")
        assert only.state is AgentState.RINGING and d.calls["a"].agent == "1", f"after miss {missed}"
    await reject(d, "a")
    assert (only.state, only.pause_reason) == (AgentState.PAUSED, PAUSE_REASON)
    assert events.paused == [("1", ["q"], PAUSE_REASON)]
    assert d.calls["a"].state is CallState.QUEUED, "the caller waits, not lost"
    await routing_pass(d)
    assert len(control.rung) == 3
    d.agent_command("1", "unpause")                  # back the usual way
    await routing_pass(d)
    assert len(control.rung) == 4 and d.calls["a"].state is CallState.RINGING


async def test_after_a_miss_the_caller_goes_to_another_free_agent_first():
    first, second = agent("1"), agent("2")          # 1 idle longest: offered first
    d, control, events = build(first, second, after=3)
    await enqueue(d, "a")
    await reject(d, "a")
    assert [endpoint for _, endpoint in control.rung] == ["PJSIP/1", "PJSIP/2"]
    assert (first.state, first.missed_offers) == (AgentState.AVAILABLE, 1)
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    assert d.calls["a"].state is CallState.CONNECTED and d.calls["a"].agent == "2"
    assert events.paused == []


async def test_an_answered_call_starts_the_count_again():
    only = agent("1")
    d, control, events = build(only, after=3)
    await enqueue(d, "a")
    await reject(d, "a")
    await reject(d, "a")
    assert only.missed_offers == 2
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    assert only.missed_offers == 0
    await d.caller_gone("a")
    await enqueue(d, "b")
    await reject(d, "b")
    await reject(d, "b")
    assert only.state is AgentState.RINGING and events.paused == [], "two misses after an answer"


async def test_with_autopause_off_a_rejecting_agent_is_never_paused():
    only = agent("1")
    d, control, events = build(only, after=0)
    await enqueue(d, "a")
    for _ in range(6):
        await reject(d, "a")
    assert only.state is AgentState.RINGING and events.paused == [] and len(control.rung) == 7


async def test_agent_legs_that_vanish_before_the_bridge_count_as_missed_offers():
    only = agent("1")
    d, control, events = build(only, after=2, control=VanishingAgents(vanish=5))
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")       # answered, then gone
    await routing_pass(d)
    assert only.state is AgentState.RINGING and only.missed_offers == 1
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    await routing_pass(d)
    assert (only.state, only.pause_reason) == (AgentState.PAUSED, PAUSE_REASON)
    assert d.calls["a"].state is CallState.QUEUED and d.calls["a"].bridge_failures == 0
    assert events.paused == [("1", ["q"], PAUSE_REASON)] and len(control.rung) == 2


async def test_a_callback_agent_leg_not_answered_is_a_missed_offer_too():
    a = ringing()
    d, _, events = build(a, after=2)
    d.not_responding(a, "callback: agent leg ended (cause 19)")
    assert (a.state, a.missed_offers) == (AgentState.AVAILABLE, 1)
    a.move(AgentState.RINGING, "callback offered", call_id="callback-1-agent")
    d.not_responding(a, "callback: agent leg ended (cause 21)")
    assert (a.state, a.pause_reason) == (AgentState.PAUSED, PAUSE_REASON)
    assert events.paused == [("1", ["q"], PAUSE_REASON)]

"""The ACD's edge hooks: queue opening hours (closed message / closed queue) and the
post-call survey hand-back.  Fake call control; the e2e tests drive real Asterisk."""
from __future__ import annotations

import pytest

from acd.agents import AgentRoster
from acd.dispatcher import Dispatcher
from acd.hooks import CallHooks
from callpilot.infra.messages import builtin_messages
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue


class Recorder:
    def __init__(self, open_calendars=()):
        self.open_calendars = set(open_calendars)
        self.closed: list[tuple[str, str]] = []
        self.surveys: list[tuple[str, str, str | None]] = []

    def hooks(self) -> CallHooks:
        return CallHooks(queue_open=lambda name: name in self.open_calendars,
                         closed=lambda call_id, text: self.closed.append((call_id, text)),
                         survey=lambda call, flow: self.surveys.append((call.id, flow, call.agent)))


def build(recorder: Recorder, *agents, **settings):
    queues = QueueBook({
        "q": QueueSettings(name="q", announce_frequency=0, steps=(), **settings),
        "night": QueueSettings(name="night", announce_frequency=0, steps=())})
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    control, records = FakeControl(), FakeRecords()
    d = Dispatcher(control, roster, records, ring_timeout=5, wrapup_seconds=0, queues=queues,
                   hooks=recorder.hooks())
    return d, control, records


async def test_a_call_to_a_closed_queue_hears_the_message_and_ends_closed():
    rec = Recorder()
    d, control, records = build(rec, agent("1"), calendar="bank")
    await enqueue(d, "a")
    assert rec.closed == [("a", builtin_messages().say("queue.closed", None))]
    assert "a" not in d.calls and control.rung == []
    assert records.writes[-1][1]["outcome"] == "closed"


async def test_a_closed_queue_with_a_closed_queue_sends_calls_there():
    rec = Recorder()
    d, control, _ = build(rec, agent("1", queues=("night",)), calendar="bank", closed_queue="night",
                          closed_message="Closed.")
    await enqueue(d, "a")
    assert rec.closed == [] and d.calls["a"].queue == "night" and control.rung == [("a", "PJSIP/1")]


async def test_an_open_queue_and_a_queue_without_calendar_take_calls():
    rec = Recorder(open_calendars={"bank"})
    d, control, _ = build(rec, agent("1"), calendar="bank")
    await enqueue(d, "a")
    assert rec.closed == [] and control.rung == [("a", "PJSIP/1")]


@pytest.mark.parametrize("who, surveyed", [("agent", True), ("caller", False)])
async def test_survey_only_when_the_agent_hangs_up_first(who, surveyed):
    rec = Recorder()
    one = agent("1")
    d, control, records = build(rec, one, survey_flow="survey")
    await enqueue(d, "a")
    channel = d.calls["a"].agent_channel
    await d.agent_answered(channel, "a")
    if who == "agent":
        await d.agent_leg_gone(channel)
    else:
        await d.caller_gone("a")
    assert rec.surveys == ([("a", "survey", "1")] if surveyed else [])
    assert ("a" in control.hung_up) is not surveyed        # a surveyed caller stays up
    assert channel in control.hung_up
    assert records.writes[-1][1]["outcome"] == "answered"
    assert one.state is AgentState.AVAILABLE


async def test_no_survey_without_a_survey_flow_or_before_answer():
    rec = Recorder()
    d, control, _ = build(rec, agent("1"))
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    await d.agent_leg_gone(d.calls["a"].agent_channel)
    assert rec.surveys == [] and "a" in control.hung_up

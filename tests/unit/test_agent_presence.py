"""An agent's presence shared by two nodes' dispatchers on one database (a real SQLite file):
a pause, log-out or autopause asked on one node is applied on the other, once, quietly
(the queue log has it from the asking node only); a node's start never overrides it; a
pause asked elsewhere while the agent talks here waits for the call's end; a restarted
node finds its agents' presence again."""
from __future__ import annotations

import asyncio

import pytest

from acd.agent_presence import EPOCH, WAIT, PresenceState, SharedPresence, presence_move
from acd.agents import AgentRoster
from acd.dispatcher import Dispatcher
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from callpilot.infra.db.shared_state import AgentPresenceStore
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue


class Events:
    def __init__(self):
        self.seen: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args, **kw: self.seen.append((name, args[0] if args else None))


class Node:
    def __init__(self, sessions, name: str, *, autopause_after: int = 3):
        self.roster = AgentRoster()
        self.events = Events()
        queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
        self.control = FakeControl()
        self.d = Dispatcher(self.control, self.roster, FakeRecords(), ring_timeout=5, wrapup_seconds=0,
                            queues=queues, events=self.events, autopause_after=autopause_after)
        self.presence = SharedPresence(AgentPresenceStore(sessions, name), self.roster, self.d.kick)
        self.agent = agent("1001")                  # auto-logged-in at start: first sight
        self.d.adopt_roster([self.agent])

    async def settle(self) -> None:
        await self.d.settle()
        while self.presence._tasks:
            await asyncio.gather(*self.presence._tasks)


@pytest.fixture
def nodes(sessions):
    return lambda name, **kw: Node(sessions, name, **kw)


@pytest.mark.parametrize("state, wanted, move", [
    (AgentState.AVAILABLE, PresenceState.PAUSED, AgentState.PAUSED),
    (AgentState.WRAP_UP, PresenceState.PAUSED, AgentState.PAUSED),
    (AgentState.RINGING, PresenceState.PAUSED, WAIT),
    (AgentState.ON_CALL, PresenceState.LOGGED_OUT, WAIT),
    (AgentState.PAUSED, PresenceState.AVAILABLE, AgentState.AVAILABLE),
    (AgentState.LOGGED_OUT, PresenceState.AVAILABLE, AgentState.AVAILABLE),
    (AgentState.ON_CALL, PresenceState.AVAILABLE, None),
    (AgentState.PAUSED, PresenceState.PAUSED, None),
    (AgentState.LOGGED_OUT, PresenceState.PAUSED, AgentState.PAUSED),
])
def test_the_move_for_a_presence_asked_elsewhere(state, wanted, move):
    assert presence_move(state, wanted) == move


async def test_a_pause_on_one_node_is_applied_on_the_other_and_logged_once(nodes):
    a, b = nodes("a"), nodes("b")
    await a.presence.follow(), await b.presence.follow()     # starts: nothing published
    assert a.presence.store.since(EPOCH) == []
    a.d.agent_command("1001", "pause", "lunch")
    await a.settle()
    await b.presence.follow()
    assert b.agent.state is AgentState.PAUSED and b.agent.pause_reason == "lunch"
    assert ("agent_pause", "1001") in a.events.seen and ("agent_pause", "1001") not in b.events.seen
    await b.presence.follow()                                # applied once: nothing new
    b.d.agent_command("1001", "unpause")
    await b.settle()
    await a.presence.follow()
    assert a.agent.state is AgentState.AVAILABLE
    a.d.agent_command("1001", "logout")
    await a.settle()
    await b.presence.follow()
    assert b.agent.state is AgentState.LOGGED_OUT


async def test_a_starting_node_does_not_override_a_pause_asked_before(nodes):
    a = nodes("a")
    a.d.agent_command("1001", "pause", "meeting")
    await a.settle()
    late = nodes("b")                                        # auto-login at its start...
    assert late.agent.state is AgentState.AVAILABLE
    await late.presence.follow()
    await late.settle()
    assert late.agent.state is AgentState.PAUSED             # ...gives way to the pause
    assert [r.presence for r in late.presence.store.since(EPOCH)] == ["paused"]
    again = nodes("a")                                       # node a restarted: its own pause back
    await again.presence.follow()
    assert again.agent.state is AgentState.PAUSED and again.agent.pause_reason == "meeting"


async def test_a_pause_asked_elsewhere_while_the_agent_talks_here_waits_for_the_call(nodes):
    a, b = nodes("a"), nodes("b")
    await enqueue(b.d, "call-b")
    await b.d.agent_answered(b.d.calls["call-b"].agent_channel, "call-b")
    assert b.agent.state is AgentState.ON_CALL
    a.d.agent_command("1001", "pause", "break")
    await a.settle()
    await b.presence.follow()
    assert b.agent.state is AgentState.ON_CALL and "1001" in b.presence.waiting
    await b.d.caller_gone("call-b")                          # no wrap-up: available, then...
    await asyncio.sleep(0)
    assert b.agent.state is AgentState.PAUSED and not b.presence.waiting


async def test_an_autopause_on_one_node_pauses_the_agent_on_the_other(nodes):
    a, b = nodes("a", autopause_after=1), nodes("b")
    await enqueue(a.d, "call-a")
    await a.d.agent_leg_gone(a.d.calls["call-a"].agent_channel, cause=19)   # not answered
    assert a.agent.state is AgentState.PAUSED
    await a.settle()
    await b.presence.follow()
    assert b.agent.state is AgentState.PAUSED and b.agent.pause_reason == "not responding"

"""Two nodes' dispatchers sharing one agent through the agent holds on one database (a real
SQLite file; the store's own race is tests/unit/test_agent_hold_store.py): the agent is rung
by one node at a time, the other's caller waits without blaming the agent, and is offered
the agent once the first node's call and wrap-up are over."""
from __future__ import annotations

import asyncio
import threading

import pytest

from acd.agent_holds import AgentHolds
from acd.agents import AgentRoster
from acd.model import AgentState
from acd.state import CallState
from callpilot.infra.db.shared_state import AgentHoldStore
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue
from acd.dispatcher import Dispatcher
from acd.queues import QueueBook, QueueSettings


class Node:
    def __init__(self, sessions, name: str, wrapup: float = 0.0, store=None):
        self.roster = AgentRoster()
        self.agent = agent("1001")
        self.roster.add(self.agent)
        self.control, self.records = FakeControl(), FakeRecords()
        queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
        self.d = Dispatcher(self.control, self.roster, self.records, ring_timeout=5, wrapup_seconds=wrapup,
                            queues=queues)
        self.store = store or AgentHoldStore(sessions, name)
        self.holds = AgentHolds(self.store, self.roster, self.d.kick)
        self.d.holds = self.holds

    async def answer_and_end(self, call_id: str) -> None:
        await self.d.agent_answered(self.d.calls[call_id].agent_channel, call_id)
        await self.d.caller_gone(call_id)
        await self.settle()

    async def settle(self) -> None:
        await self.d.settle()
        while self.holds._tasks:
            await asyncio.gather(*self.holds._tasks)


@pytest.fixture
async def nodes(sessions):
    made = []

    def build(name: str, **options) -> Node:
        node = Node(sessions, name, **options)
        node.d.start()
        made.append(node)
        return node
    yield build
    for node in made:
        await node.d.stop()


async def test_one_agent_two_nodes_rung_by_one_at_a_time(nodes):
    a, b = nodes("a"), nodes("b")
    await asyncio.gather(enqueue(a.d, "call-a"), enqueue(b.d, "call-b"))
    rung = a.control.rung + b.control.rung
    assert len(rung) == 1, rung                              # one node rang 1001, not both
    winner, loser = (a, b) if a.control.rung else (b, a)
    lost = "call-b" if winner is a else "call-a"
    assert loser.d.calls[lost].state is CallState.QUEUED and loser.d.calls[lost].agent is None
    assert loser.agent.held_by == winner.store.node and not loser.agent.routable
    assert loser.agent.state is AgentState.AVAILABLE and loser.agent.missed_offers == 0   # not blamed
    assert (lost, {"state": "queued", "agent": None}) in loser.records.writes

    await winner.answer_and_end(winner.control.rung[0][0])
    assert winner.store.live(winner.holds.now()) == []      # released when the call ended
    await loser.holds.watch()                                # its next look at the table
    assert loser.agent.held_by is None
    await asyncio.sleep(0.05)                                # the pass the watch woke
    await loser.d.settle()
    assert loser.control.rung == [(lost, "PJSIP/1001")]
    assert [h.node for h in loser.store.live(loser.holds.now())] == [loser.store.node]


async def test_the_hold_lasts_through_the_wrap_up(nodes):
    a, b = nodes("a", wrapup=0.3), nodes("b")
    await enqueue(a.d, "call-a")
    await a.answer_and_end("call-a")
    assert a.agent.state is AgentState.WRAP_UP
    assert [h.call_id for h in a.store.live(a.holds.now())] == ["call-a"]
    await b.holds.watch()
    await enqueue(b.d, "call-b")
    assert b.control.rung == [] and not b.agent.routable    # held elsewhere: not even tried
    await asyncio.sleep(0.5)                                 # the wrap-up ends on node a
    await a.settle()
    assert a.agent.state is AgentState.AVAILABLE and a.store.live(a.holds.now()) == []
    await b.holds.watch()
    await asyncio.sleep(0.05)
    await b.d.settle()
    assert b.control.rung == [("call-b", "PJSIP/1001")]


class SlowStore(AgentHoldStore):
    def __init__(self, sessions, node):
        super().__init__(sessions, node)
        self.entered, self.go = threading.Event(), threading.Event()

    def take(self, *args):
        self.entered.set()
        self.go.wait(10)
        return super().take(*args)


async def test_a_caller_gone_while_the_hold_is_taken_rings_no_one_and_leaves_no_hold(nodes, sessions):
    a = nodes("a", store=SlowStore(sessions, "a"))
    adopt = asyncio.create_task(enqueue(a.d, "call-a"))
    await asyncio.to_thread(a.store.entered.wait, 10)
    await a.d.caller_gone("call-a")
    assert a.agent.state is AgentState.AVAILABLE
    a.store.go.set()
    await adopt
    await a.settle()
    assert a.control.rung == []
    assert a.store.live(a.holds.now()) == []


async def test_a_hold_this_node_left_is_freed_and_one_still_on_its_call_kept(nodes, sessions):
    a = nodes("a")
    now = a.holds.now()
    assert a.store.take("1001", "previous-run-call", now, now) is None
    await a.holds.watch()
    await a.settle()                                         # calls not yet re-adopted: kept
    assert [h.call_id for h in a.store.live(now)] == ["previous-run-call"]
    await a.holds.resynced()                                 # ARI's first resync is over
    await a.settle()
    assert a.store.live(now) == []                           # 1001 is on no call here
    await enqueue(a.d, "call-a")
    a.holds.mine.clear()                                     # as after a restart
    await a.holds.watch()
    assert a.holds.mine == {"1001": "call-a"}                # still ringing for it: kept
    assert [h.call_id for h in a.store.live(now)] == ["call-a"]


async def test_a_callback_keeps_the_hold_when_its_attempt_renames_the_agents_call(nodes):
    """The callback service reserves the agent as ``callback:<id>`` and, once the attempt is
    claimed, names its call by the agent leg: the hold lasts until the agent is free."""
    a = nodes("a")
    a.agent.move(AgentState.RINGING, "callback reserved")
    a.agent.call_id = "callback:cb-7"
    assert await a.holds.take(a.agent, "callback:cb-7") is None
    a.agent.call_id = "callback-12-agent"                    # the attempt's leg (no move)
    a.agent.move(AgentState.ON_CALL, "callback: whisper")
    a.agent.move(AgentState.WRAP_UP, "callback ended")
    await a.settle()
    assert [h.call_id for h in a.store.live(a.holds.now())] == ["callback:cb-7"]
    a.agent.move(AgentState.AVAILABLE, "wrap-up over")
    await a.settle()
    assert a.store.live(a.holds.now()) == []


class AwayStore(AgentHoldStore):
    def take(self, *args):
        raise OSError("connection refused")


async def test_with_the_database_away_the_agent_is_rung_without_a_hold(nodes, sessions):
    """Callers come first: a take that fails rings the agent anyway (once, no retry loop)."""
    a = nodes("a", store=AwayStore(sessions, "a"))
    await enqueue(a.d, "call-a")
    assert a.control.rung == [("call-a", "PJSIP/1001")]
    assert a.agent.state is AgentState.RINGING and a.agent.held_by is None

"""Dispatcher state handling with a fake call control (the e2e tests drive real Asterisk)."""
from __future__ import annotations

import asyncio

import pytest

from acd.actions import Bridged
from acd.agents import AgentRoster, LiveAgent
from acd.dispatcher import AgentCommandError, CallEntry, Dispatcher
from acd.hooks import CallHooks
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState, LiveCall
from callpilot.infra.db.call_vocabulary import RoutingTicket


class FakeControl:
    def __init__(self):
        self.rung: list[tuple[str, str]] = []
        self.hung_up: list[str] = []
        self.bridges_made: list[str] = []

    async def park(self, call_id, queue, moh_class="default"):
        return True

    async def unpark(self, call_id, queue):
        pass

    async def ring(self, call_id, endpoint, channel_id, *, timeout, caller_id):
        self.rung.append((call_id, endpoint))
        await asyncio.sleep(0)
        return True

    async def prepare_bridge(self, call_id):
        self.bridges_made.append(call_id)

    async def connect(self, call_id, agent_channel, queue):
        return Bridged.CONNECTED

    async def release(self, call_id, *channels):
        self.hung_up.extend(c for c in channels if c)

    async def hangup(self, channel_id):
        self.hung_up.append(channel_id)

    async def cancel_ring(self, channel_id):
        self.hung_up.append(channel_id)

    async def play(self, channel_id, uri):
        pass


class FakeRecords:
    def __init__(self):
        self.writes: list[tuple[str, dict]] = []

    def post(self, call_id, **fields):
        self.writes.append((call_id, fields))

    async def update(self, call_id, **fields):
        self.writes.append((call_id, fields))


async def enqueue(d: Dispatcher, call_id: str, queue: str = "q", **ticket) -> None:
    """A call taken by the dispatcher, its offers (if any) sent."""
    await d.adopt(CallEntry(call_id, "", "", RoutingTicket(queue=queue, **ticket)))
    await d.settle()


def agent(ext: str, queues=("q",), wrapup=None) -> LiveAgent:
    a = LiveAgent(extension=ext, queues=frozenset(queues), skills={"q": 3}, wrapup_seconds=wrapup)
    a.move(AgentState.AVAILABLE, "test")
    a.device_state = "NOT_INUSE"
    return a


@pytest.fixture
def make():
    def build(*agents: LiveAgent, wrapup: float = 0.0, **options):
        roster = AgentRoster()
        for a in agents:
            roster.add(a)
        control, records = FakeControl(), FakeRecords()
        queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
        return Dispatcher(control, roster, records, ring_timeout=5, wrapup_seconds=wrapup,
                          queues=queues, **options), control, records
    return build


async def test_two_calls_two_agents_never_share(make):
    d, control, _ = make(agent("1"), agent("2"))
    await asyncio.gather(enqueue(d, "a"), enqueue(d, "b"))
    assert sorted(call for call, _ in control.rung) == ["a", "b"]
    assert sorted(endpoint for _, endpoint in control.rung) == ["PJSIP/1", "PJSIP/2"]
    assert {c.state for c in d.calls.values()} == {CallState.RINGING}


async def test_third_call_waits_while_both_agents_ring(make):
    d, control, _ = make(agent("1"), agent("2"))
    for cid in "abc":
        await enqueue(d, cid)
    assert len(control.rung) == 2
    assert d.calls["c"].state is CallState.QUEUED


async def test_agent_own_wrapup_overrides_the_default(make):
    quick = agent("1", wrapup=0)
    d, _, _ = make(quick, wrapup=30)
    await enqueue(d, "a")
    channel = d.calls["a"].agent_channel
    await d.agent_answered(channel, "a")
    assert quick.state is AgentState.ON_CALL
    await d.caller_gone("a")
    assert quick.state is AgentState.AVAILABLE        # no wrap-up for this agent


async def test_default_wrapup_applies_without_an_override(make):
    slow = agent("1")
    d, _, _ = make(slow, wrapup=30)
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    await d.caller_gone("a")
    assert slow.state is AgentState.WRAP_UP
    await d.stop()


async def test_ring_failure_requeues_call_and_counts_a_missed_offer(make):
    deaf = agent("1")
    d, _, records = make(deaf)
    await enqueue(d, "a")
    await d.agent_leg_gone(d.calls["a"].agent_channel, cause=19)
    assert deaf.state is AgentState.AVAILABLE and deaf.missed_offers == 1   # autopause: after 3
    assert d.calls["a"].state is CallState.QUEUED and d.calls["a"].agent is None
    assert ("a", {"state": "queued", "agent": None}) in records.writes


async def test_caller_hangup_while_ringing_frees_agent_and_cancels_leg(make):
    a1 = agent("1")
    d, control, records = make(a1)
    await enqueue(d, "a")
    channel = d.calls["a"].agent_channel
    await d.caller_gone("a")
    assert a1.state is AgentState.AVAILABLE
    assert channel in control.hung_up
    assert records.writes[-1][1]["outcome"] == "abandoned"


async def test_agent_commands_refuse_what_cannot_apply(make):
    a1 = agent("1")
    d, _, _ = make(a1)
    with pytest.raises(AgentCommandError):
        d.agent_command("1", "login")                 # already logged in
    with pytest.raises(AgentCommandError):
        d.agent_command("9", "pause")                 # no such agent
    await enqueue(d, "a")       # 1 now rings
    with pytest.raises(AgentCommandError):
        d.agent_command("1", "logout")
    with pytest.raises(AgentCommandError):
        d.agent_command("1", "dance")


async def test_pause_then_unpause_round_trip(make):
    a1 = agent("1")
    d, _, _ = make(a1)
    assert d.agent_command("1", "pause", "lunch").pause_reason == "lunch"
    assert a1.state is AgentState.PAUSED and not a1.routable
    assert d.agent_command("1", "unpause").state is AgentState.AVAILABLE
    assert d.agent_command("1", "logout").state is AgentState.LOGGED_OUT
    with pytest.raises(AgentCommandError):
        d.agent_command("1", "pause")                 # logged out agents cannot pause


def test_age_bands_come_from_the_config(tmp_path):
    from callpilot.infra import config as config_mod
    cfg = config_mod.load(env={"CALLPILOT_STATE_DIR": str(tmp_path)})
    assert cfg.acd.age_bands == [25, 35, 45, 55]
    path = tmp_path / "c.toml"
    path.write_text("[acd]\nage_bands = [30, 50]\n")
    assert config_mod.load(path, env={"CALLPILOT_STATE_DIR": str(tmp_path)}).acd.age_bands == [30, 50]
    path.write_text("[acd]\nage_bands = [50, 30]\n")
    with pytest.raises(config_mod.ConfigError, match="age_bands"):
        config_mod.load(path, env={"CALLPILOT_STATE_DIR": str(tmp_path)})


async def test_a_vanished_channel_is_lost_not_abandoned(make):
    d, _, records = make()                           # no agent: the call waits
    await enqueue(d, "a")
    await d.channel_lost("a", "channel gone while ARI was away")
    assert "a" not in d.calls
    assert records.writes[-1][1]["outcome"] == "lost"


def test_positions_in_one_pass_agree_with_one_call_at_a_time():
    import random
    from acd.announcements import position_of, positions
    rng = random.Random(7)
    calls = []
    for i in range(60):
        c = LiveCall(f"c{i}", "", "", queue=rng.choice(["q", "r"]), priority=rng.randint(0, 2),
                     state=rng.choice([CallState.QUEUED, CallState.RINGING, CallState.CONNECTED]))
        c.enqueued_mono = rng.random()
        calls.append(c)
    waiting = [c for c in calls if c.state is not CallState.CONNECTED]
    assert positions(calls) == {c.id: position_of(c, calls) for c in waiting}


async def test_the_offer_path_logs_its_transitions_after_the_originate_and_none_is_lost(make, caplog):
    """The call's queued and ringing moves and the agent's ringing move are written once
    the originate has gone out (D29), all of them, in order."""
    caplog.set_level("INFO")
    d, control, _ = make(agent("1"))
    caplog.clear()
    seen_at_ring: list[str] = []
    ring = control.ring

    async def ring_and_look(*args, **kwargs):
        seen_at_ring.extend(r.getMessage() for r in caplog.records)
        return await ring(*args, **kwargs)
    control.ring = ring_and_look
    await enqueue(d, "a")
    moves = [r.getMessage() for r in caplog.records if r.name in ("acd.state", "acd.agents")]
    assert [m.split(": ", 1)[1].split(" ", 3)[:3] for m in moves] == [
        ["ivr", "->", "queued"], ["AVAILABLE", "->", "RINGING"], ["queued", "->", "ringing"]]
    assert not any("->" in line for line in seen_at_ring), seen_at_ring


async def test_the_offers_record_update_and_metric_follow_the_originate_in_order(make):
    """D36: the RINGING update and the offered hook run once the ring task has sent its
    request, after the QUEUED update (the batch merges them: the later values must win)."""
    offered: list[str] = []
    d, control, records = make(agent("1"), hooks=CallHooks(offered=lambda c, a, now: offered.append(c.id)))
    at_ring: list[tuple[list, list]] = []
    ring = control.ring

    async def ring_and_look(*args, **kwargs):
        at_ring.append(([w[1].get("state") for w in records.writes], list(offered)))
        return await ring(*args, **kwargs)
    control.ring = ring_and_look
    await enqueue(d, "a")
    assert at_ring == [([CallState.QUEUED], [])]
    assert [w[1].get("state") for w in records.writes] == [CallState.QUEUED, CallState.RINGING]
    assert records.writes[1] == ("a", {"state": CallState.RINGING, "agent": "1"}) and offered == ["a"]


async def test_an_answered_agents_move_is_routed_before_the_next_caller_comes(make):
    """D36: the answered agent's RINGING -> ON_CALL change is looked at by a pass of its own,
    so the next caller's pass looks at no agent at all (its path to the originate)."""
    d, _, _ = make(agent("1"), agent("2"))
    d.start()
    try:
        await enqueue(d, "a")
        await d.agent_answered(d.calls["a"].agent_channel, "a")
        for _ in range(5):
            await asyncio.sleep(0)
        looked_at: list[set] = []
        take = d.roster.take_changed

        def spy() -> set:
            looked_at.append(take())
            return looked_at[-1]
        d.roster.take_changed = spy
        await enqueue(d, "b")
        assert looked_at and looked_at[0] == set()
        assert d.calls["b"].agent == "2"
    finally:
        await d.stop()

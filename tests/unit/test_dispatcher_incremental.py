"""The dispatcher on the incremental router: work bounded by what changed (counters, never
timers), offers not made handed back, step expiries waking the pass."""
from __future__ import annotations

import pytest

from acd.agents import AgentRoster, LiveAgent
from acd.dispatcher import Dispatcher
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def utcnow(self):
        from datetime import datetime, timedelta, timezone
        return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=self.now)


def build(*agents: LiveAgent, clock: FakeClock | None = None) -> tuple[Dispatcher, FakeControl]:
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    control = FakeControl()
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
    return Dispatcher(control, roster, FakeRecords(), ring_timeout=5, wrapup_seconds=0,
                      queues=queues, clock=clock), control


WAITING = 3000


async def test_a_freed_agent_at_thousands_of_waiting_calls_examines_a_bounded_number():
    busy = agent("1")
    busy.move(AgentState.PAUSED, "test")
    d, control = build(busy)
    for i in range(WAITING):
        await enqueue(d, f"c{i:05d}")
    assert control.rung == []
    before = d.routing.router.touched
    d.agent_command("1", "unpause")
    await d._dispatch_once()
    await d.settle()
    assert control.rung == [("c00000", "PJSIP/1")]          # the oldest call
    assert d.routing.router.touched - before <= 2            # not 3,000
    before = d.routing.router.touched
    await enqueue(d, "late")                                 # a call enters: no agent free
    assert d.routing.router.touched - before <= 1
    await d.stop()


async def test_an_offer_that_no_longer_holds_is_handed_back_and_made_later(caplog):
    caplog.set_level("INFO", logger="acd.dispatcher")
    phone = agent("1")
    d, control = build(phone)
    await d._dispatch_once()              # routing has seen the agent free
    phone.device_state = "INUSE"          # behind the roster's back: routing still thinks idle
    await enqueue(d, "a")
    assert control.rung == [] and d.calls["a"].state is CallState.QUEUED
    assert phone.state is AgentState.AVAILABLE
    assert "offer of call a to agent 1 no longer holds: handed back" in caplog.text
    d.device_state_changed("PJSIP/1", "NOT_INUSE")
    await d._dispatch_once()
    await d.settle()
    assert control.rung == [("a", "PJSIP/1")]
    await d.stop()


async def test_a_step_expiry_is_the_next_wakeup_and_relaxes_the_call():
    clock = FakeClock()
    junior = agent("1")                   # skill q=3
    senior = LiveAgent(extension="2", queues=frozenset({"q"}), skills={"q": 5})
    senior.move(AgentState.PAUSED, "test")   # logged in: the first step is possible, not skipped
    senior.device_state = "NOT_INUSE"
    d, control = build(junior, senior, clock=clock)
    steps = [{"conditions": [{"kind": "skill_at_least", "skill": "q", "level": 5}], "expiry": 10},
             {"conditions": [], "expiry": None}]
    await enqueue(d, "a", steps=steps)
    assert control.rung == []
    assert d.routing.next_wakeup() == pytest.approx(clock.now + 10)
    clock.now += 10
    await d._dispatch_once()
    await d.settle()
    assert control.rung == [("a", "PJSIP/1")]
    assert d.routing.next_wakeup() is None
    await d.stop()


class CountingCalls(dict):
    """The dispatcher's calls, counting every walk over them."""

    walks = 0

    def values(self):
        CountingCalls.walks += 1
        return super().values()

    def items(self):
        CountingCalls.walks += 1
        return super().items()

    def keys(self):
        CountingCalls.walks += 1
        return super().keys()

    def __iter__(self):
        CountingCalls.walks += 1
        return super().__iter__()


async def test_per_event_paths_never_walk_the_waiting_calls():
    """Position, announcement, counts, snapshot, a call entering, an abandon, an offer, an
    answer and a hang-up at thousands of waiting calls: no walk over the calls (a counter)."""
    d, control = build(agent("1", queues=("q",)))
    d.roster.get("1").move(AgentState.PAUSED, "test")
    for i in range(WAITING):
        await enqueue(d, f"c{i:05d}")
    d.calls = CountingCalls(d.calls)
    CountingCalls.walks = 0
    last = d.calls[f"c{WAITING - 1:05d}"]
    assert d._position(last) == WAITING
    assert "caller number 3000" in d.waiting.announcement(last).text
    assert (d._logged_in("q"), d._staffed("q")) == (1, 0)
    assert d.snapshot()["q"] == {"waiting": WAITING, "agents_available": 0}
    await enqueue(d, "late")
    assert d.calls["late"].orig_position == WAITING + 1
    await d.caller_gone("c00001")                            # abandon: its position reported
    d.agent_command("1", "unpause")
    await d._dispatch_once()
    await d.settle()
    assert control.rung == [("c00000", "PJSIP/1")]
    channel = d.calls["c00000"].agent_channel
    await d.agent_answered(channel, "c00000")
    assert d._position(d.calls["c00002"]) == 1
    await d.agent_leg_gone(channel)
    assert "c00000" not in d.calls
    assert CountingCalls.walks == 0
    await d.stop()


def test_lines_agree_with_position_of_as_calls_come_and_go():
    import random

    from acd.announcements import Lines, position_of
    from acd.state import LiveCall
    rng = random.Random(11)
    lines, calls = Lines(), {}
    for step in range(400):
        if calls and rng.random() < 0.35:
            gone = calls.pop(rng.choice(sorted(calls)))
            lines.leave(gone.id)
            continue
        c = LiveCall(f"c{step}", "", "", queue=rng.choice(["q", "r"]), priority=rng.randint(0, 2),
                     state=CallState.QUEUED)
        c.enqueued_mono = rng.random()
        calls[c.id] = c
        lines.join(c)
        for other in calls.values():
            assert lines.position(other) == position_of(other, calls.values())
    assert lines.positions() == {c.id: position_of(c, calls.values()) for c in calls.values()}
    assert lines.length("q") == sum(1 for c in calls.values() if c.queue == "q")

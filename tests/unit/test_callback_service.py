"""acd.callbacks.CallbackService on a real SQLite store with a recording fake of the ARI
side effects: the attempt state machine, outcomes, retries and recovery after a crash."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from acd.agents import AgentRoster, LiveAgent
from acd.callbacks import CallbackService, CallbackSettings, customer_outcome, retry_rules, whisper_text
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import AttemptOutcome, CallbackSource, CallbackState
from callpilot.infra.messages import SpokenMessages, builtin_messages

NUMBER = "+821055501234"


def spoken() -> SpokenMessages:
    """The real catalogue; a sound URI names the voice and the text (``sound:<voice>:<text>``)."""
    async def render(text, language):
        return f"sound:{language}:{text}"
    return SpokenMessages(builtin_messages(), render)


class FakeControl:
    def __init__(self):
        self.done: list[tuple] = []
        self.channels: dict[str, dict] = {}

    async def ring_agent(self, attempt_id, channel_id, endpoint, *, timeout, caller_id):
        self.done.append(("ring_agent", channel_id, endpoint))
        return True

    async def ring_customer(self, attempt_id, channel_id, number, *, timeout):
        self.done.append(("ring_customer", channel_id, number))
        return True

    async def screen(self, channel_id):
        self.done.append(("screen", channel_id))
        return True

    async def join(self, attempt_id, *channels):
        self.done.append(("join", *channels))
        return True

    async def play(self, channel_id, sound, playback_id):
        self.done.append(("play", channel_id, sound))
        return True

    async def hangup(self, *channel_ids):
        self.done.append(("hangup", *channel_ids))

    async def release(self, attempt_id, *channel_ids):
        self.done.append(("release", *channel_ids))

    async def live_channels(self):
        return dict(self.channels)

    def kinds(self):
        return [step[0] for step in self.done]


class Events:
    def __init__(self):
        self.seen: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.seen.append((name, *args))


class Hooks:
    def __init__(self):
        self.calls: list[tuple] = []
        self.refuse: str | None = None       # the agent's hold: None = held
        self.holds: list[tuple] = []

    def not_responding(self, agent, why):
        agent.move(AgentState.PAUSED, why)
        self.calls.append(("not_responding", agent.extension))

    def done(self, agent, call_id, talked):
        agent.move(AgentState.AVAILABLE, "done")
        self.calls.append(("done", agent.extension, talked))

    async def hold(self, agent, call_id):
        self.holds.append((agent.extension, call_id))
        return self.refuse


@pytest.fixture
def parts(sessions):
    store = CallbackStore(sessions, "test")
    control, hooks, roster = FakeControl(), Hooks(), AgentRoster()
    roster.add(LiveAgent("1001", frozenset({"cbq"}), state=AgentState.AVAILABLE, device_state="NOT_INUSE"))
    settings = CallbackSettings(retry=retry_rules(2, 60, 600))

    sound = spoken()

    async def played(channel, playback, timeout):
        return True

    service = CallbackService(store, control, roster, QueueBook({"cbq": QueueSettings("cbq", steps=())}),
                              settings, sound, Events(), hooks, played)
    service.recovered.set()
    return service, store, control, hooks, roster


def add(store, minutes_ago=5.0, **kw):
    now = datetime.now(timezone.utc)
    return store.create(NewCallback(number=NUMBER, queue="cbq", entered_at=now - timedelta(minutes=minutes_ago),
                                    source=CallbackSource.WEB, expires_at=now + timedelta(hours=1),
                                    name="Kim Minji", reason="card declined", context={"reference": "TX-8"},
                                    **kw), now)[0]


async def placed(service, store, roster):
    callback = add(store)
    await service.refresh(force=True)
    assert service.reserve(callback.id, roster.get("1001"))
    await service.place(callback.id, roster.get("1001"))
    [attempt] = service.live.values()
    return callback, attempt


async def test_agent_first_whisper_then_customer_then_bridge(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    assert roster.get("1001").state is AgentState.RINGING
    assert control.done[0] == ("ring_agent", f"callback-{attempt.id}-agent", "PJSIP/1001")
    await service.agent_answered(attempt.id)
    assert control.kinds() == ["ring_agent", "join", "play", "ring_customer"]
    assert "Kim Minji" in control.done[2][2] and "card declined" in control.done[2][2]
    assert control.done[3] == ("ring_customer", f"callback-{attempt.id}-customer", NUMBER)
    assert store.attempts(callback.id)[0].customer_dialled_at is not None
    await service.customer_answered(attempt.id)
    await service.screened(attempt.id, "HUMAN", "HUMAN-500-500")
    assert control.done[-1] == ("join", f"callback-{attempt.id}-customer")
    await service.leg_gone(f"callback-{attempt.id}-customer", 16)
    row = store.get(callback.id)
    assert row.state == "done" and row.attempts == 1 and store.attempts(callback.id)[0].outcome == "answered"
    assert hooks.calls == [("done", "1001", True)] and not service.live


async def test_an_agent_held_by_another_node_leaves_the_callback_pending_and_unclaimed(parts):
    service, store, control, hooks, roster = parts
    hooks.refuse = "held by node b"
    callback = add(store)
    await service.refresh(force=True)
    assert service.reserve(callback.id, roster.get("1001"))
    await service.place(callback.id, roster.get("1001"))
    assert hooks.holds == [("1001", f"callback:{callback.id}")]
    assert control.done == [] and not service.live                  # nothing rung, no attempt
    assert store.get(callback.id).state == "pending" and store.attempts(callback.id) == []
    assert callback.id in service.pending                            # released again later
    assert hooks.calls == [("done", "1001", False)]
    hooks.refuse = None                                              # the other node let go
    assert service.reserve(callback.id, roster.get("1001"))
    await service.place(callback.id, roster.get("1001"))
    assert control.kinds() == ["ring_agent"] and store.get(callback.id).state == "dialling"


async def test_busy_is_retried_after_the_delay_and_the_agent_freed(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    await service.agent_answered(attempt.id)
    await service.leg_gone(f"callback-{attempt.id}-customer", 17)
    row = store.get(callback.id)
    assert row.state == "pending" and row.attempts == 1
    assert row.not_before > datetime.now(timezone.utc) + timedelta(seconds=50)
    assert store.attempts(callback.id)[0].outcome == "busy"
    assert hooks.calls == [("done", "1001", False)] and roster.get("1001").state is AgentState.AVAILABLE


async def test_agent_not_answering_is_no_customer_attempt(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    await service.leg_gone(f"callback-{attempt.id}-agent", 19)
    row = store.get(callback.id)
    assert row.state == "pending" and row.attempts == 0 and row.not_before is not None
    assert row.not_before <= datetime.now(timezone.utc)            # at once, for the next agent
    assert store.attempts(callback.id)[0].outcome == "agent_no_answer"
    assert hooks.calls == [("not_responding", "1001")]
    assert "ring_customer" not in control.kinds()


async def test_answering_machine_then_attempts_exhausted(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    await service.agent_answered(attempt.id)
    await service.customer_answered(attempt.id)
    await service.screened(attempt.id, "MACHINE", "LONGGREETING-2000-1500")
    row = store.get(callback.id)
    assert row.state == "pending" and row.attempts == 1 and store.attempts(callback.id)[0].outcome == "voicemail"
    assert row.not_before > datetime.now(timezone.utc) + timedelta(seconds=590)     # its own rule: 600 s
    await service.place(callback.id, roster.get("1001"))       # the policy would wait; the store allows
    [attempt] = service.live.values()
    await service.agent_answered(attempt.id)
    await service.leg_gone(f"callback-{attempt.id}-customer", 17)
    row = store.get(callback.id)
    assert row.state == "failed" and row.attempts == 2 and "2 of 2 attempts used" in row.detail
    assert row.open_key is None


async def test_an_invalid_number_is_not_retried(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    await service.agent_answered(attempt.id)
    await service.leg_gone(f"callback-{attempt.id}-customer", 1)      # unallocated number
    row = store.get(callback.id)
    assert row.state == "failed" and "not retried" in row.detail


def row_state(value):
    return CallbackState(value)


async def test_customer_presses_the_cancel_key(parts):
    service, store, control, hooks, roster = parts
    callback, attempt = await placed(service, store, roster)
    await service.agent_answered(attempt.id)
    await service.customer_answered(attempt.id)
    await service.screened(attempt.id, "HUMAN")
    await service.dtmf(f"callback-{attempt.id}-customer", "1")          # not the cancel key
    assert service.live
    await service.dtmf(f"callback-{attempt.id}-customer", "9")
    row = store.get(callback.id)
    assert row.state == "cancelled" and store.attempts(callback.id)[0].outcome == "customer_cancelled"
    assert row.open_key is None


async def test_recovery_adopts_live_legs_and_settles_the_rest(parts, sessions):
    service, store, control, hooks, roster = parts
    now = datetime.now(timezone.utc)
    ringing = add(store)
    claim = store.claim(ringing.id, "1001", now)
    store.customer_dialled(claim.attempt_id, now)
    control.channels = {claim.agent_channel: {"state": "Up"}, claim.customer_channel: {"state": "Ringing"}}
    await service.recover()
    assert service.live[claim.attempt_id].state.value == "customer_ringing"
    assert "ring_customer" not in control.kinds() and "ring_agent" not in control.kinds()
    assert roster.get("1001").state is AgentState.ON_CALL

    gone = CallbackService(store, FakeControl(), roster, service.queues, service.settings,
                           service.messages, Events(), Hooks(), service.playback_done)
    store.finish_attempt(claim.attempt_id, AttemptOutcome.ANSWERED, now, next_state=row_state("done"))
    dialled = store.create(NewCallback(number="+821055500009", queue="cbq", entered_at=now, source=CallbackSource.IVR,
                                       expires_at=now + timedelta(hours=1)), now)[0]
    dialled_claim = store.claim(dialled.id, "1001", now)
    store.customer_dialled(dialled_claim.attempt_id, now)
    never = store.create(NewCallback(number="+821055500008", queue="cbq", entered_at=now, source=CallbackSource.IVR,
                                     expires_at=now + timedelta(hours=1)), now)[0]
    never_claim = store.claim(never.id, "1001", now)
    other_node = CallbackStore(store.sessions, "node-b")
    theirs = other_node.create(NewCallback(number="+821055500006", queue="cbq", entered_at=now,
                                           source=CallbackSource.IVR, expires_at=now + timedelta(hours=1)), now)[0]
    their_claim = other_node.claim(theirs.id, "1002", now)
    await gone.recover()
    assert gone.recovered.is_set()
    assert store.attempts(theirs.id)[0].outcome is None, "another node's attempt is left to it"
    assert their_claim is not None
    assert store.attempts(dialled.id)[0].outcome == "unknown_after_crash"
    assert store.get(dialled.id).state == "pending" and store.get(dialled.id).attempts == 1
    assert store.attempts(never.id)[0].outcome == "agent_no_answer"
    assert store.get(never.id).attempts == 0
    assert never_claim.attempt_id != dialled_claim.attempt_id


def test_outcomes_from_causes_and_the_whisper():
    row = type("Row", (), {"name": "", "reason": "", "context": {"reference": "TX-8"},
                           "entered_at": datetime.now(timezone.utc) - timedelta(minutes=7)})()
    assert whisper_text(row, datetime.now(timezone.utc), builtin_messages(), None).text == \
        "Callback for a customer. Reference T X 8. Waiting 7 minutes."
    assert customer_outcome(17) is AttemptOutcome.BUSY
    assert customer_outcome(1) is AttemptOutcome.INVALID_NUMBER
    assert customer_outcome(19) is AttemptOutcome.NO_ANSWER
    assert customer_outcome(0) is AttemptOutcome.NO_ANSWER


async def test_pending_views_keep_the_original_entry_and_skip_a_call_still_leaving(parts):
    service, store, control, hooks, roster = parts
    older = add(store, minutes_ago=10)
    leaving = store.create(NewCallback(number="+821055500007", queue="cbq",
                                       entered_at=datetime.now(timezone.utc) - timedelta(minutes=1),
                                       source=CallbackSource.IVR, call_id="live-1",
                                       expires_at=datetime.now(timezone.utc) + timedelta(hours=1)),
                           datetime.now(timezone.utc))[0]
    await service.refresh(force=True)
    service.recovered.clear()
    assert service.pending_views(1000.0) == [], "nothing released before the leftovers are settled"
    service.recovered.set()
    views = service.pending_views(1000.0, live_calls={"live-1"})
    assert [v.id for v in views] == [older.id]
    assert 1000.0 - 610 < views[0].view.enqueued_at < 1000.0 - 590
    assert {v.id for v in service.pending_views(1000.0)} == {older.id, leaving.id}


async def test_customer_first_rings_the_customer_then_the_agent(sessions):
    store = CallbackStore(sessions, "test")
    control, hooks, roster = FakeControl(), Hooks(), AgentRoster()
    roster.add(LiveAgent("1001", frozenset({"cbq"}), state=AgentState.AVAILABLE, device_state="NOT_INUSE"))

    sound = spoken()

    async def played(channel, playback, timeout):
        return True

    service = CallbackService(store, control, roster, QueueBook({"cbq": QueueSettings("cbq", steps=())}),
                              CallbackSettings(retry=retry_rules(2, 60, 600), customer_first=frozenset({"cbq"})),
                              sound, Events(), hooks, played)
    callback, attempt = await placed(service, store, roster)
    assert control.kinds() == ["ring_customer"] and roster.get("1001").state is AgentState.RINGING
    await service.customer_answered(attempt.id)
    await service.dtmf(f"callback-{attempt.id}-customer", "5")
    await service.screened(attempt.id, "HUMAN")
    assert control.kinds() == ["ring_customer", "screen", "join", "play", "ring_agent"]
    assert "press 9" in control.done[3][2]
    await service.agent_answered(attempt.id)
    assert control.kinds()[-2:] == ["play", "join"] and control.done[-1] == ("join", f"callback-{attempt.id}-agent")
    assert service.live[attempt.id].state.value == "connected"
    await service.leg_gone(f"callback-{attempt.id}-agent", 16)
    assert store.get(callback.id).state == "done"


async def test_customer_first_the_holding_customer_can_cancel(sessions):
    store = CallbackStore(sessions, "test")
    control, roster = FakeControl(), AgentRoster()
    roster.add(LiveAgent("1001", frozenset({"cbq"}), state=AgentState.AVAILABLE, device_state="NOT_INUSE"))

    sound = spoken()

    async def played(channel, playback, timeout):
        return True

    service = CallbackService(store, control, roster, QueueBook({"cbq": QueueSettings("cbq", steps=())}),
                              CallbackSettings(customer_first=frozenset({"cbq"})), sound, Events(), Hooks(), played)
    callback, attempt = await placed(service, store, roster)
    await service.customer_answered(attempt.id)
    await service.screened(attempt.id, "NOTSURE")
    await service.dtmf(f"callback-{attempt.id}-customer", "9")
    assert store.get(callback.id).state == "cancelled"
    assert ("release", f"callback-{attempt.id}-agent", f"callback-{attempt.id}-customer") in control.done


@pytest.mark.parametrize("own, configured, first", [(None, frozenset({"cbq"}), "ring_customer"),
                                                     (False, frozenset({"cbq"}), "ring_agent"),
                                                     (True, frozenset(), "ring_customer"),
                                                     (None, frozenset(), "ring_agent")])
async def test_the_queues_own_customer_first_setting_wins_over_the_configuration(sessions, own, configured, first):
    store = CallbackStore(sessions, "test")
    control, hooks, roster = FakeControl(), Hooks(), AgentRoster()
    roster.add(LiveAgent("1001", frozenset({"cbq"}), state=AgentState.AVAILABLE, device_state="NOT_INUSE"))

    async def sound(text):
        return f"sound:{text}"

    async def played(channel, playback, timeout):
        return True

    book = QueueBook({"cbq": QueueSettings("cbq", steps=(), callback_customer_first=own)})
    service = CallbackService(store, control, roster, book, CallbackSettings(customer_first=configured),
                              sound, Events(), hooks, played)
    await placed(service, store, roster)
    assert control.kinds()[0] == first


async def test_snapshot_counts_pending_callbacks_per_queue(parts):
    service, store, *_ = parts
    add(store)
    now = datetime.now(timezone.utc)
    store.create(NewCallback(number="+821099990000", queue="other", entered_at=now, source=CallbackSource.WEB,
                             expires_at=now + timedelta(hours=1)), now)
    await service.refresh(force=True)
    assert service.snapshot()["pending_by_queue"] == {"cbq": 1, "other": 1}

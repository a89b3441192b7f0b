"""The release of a finished call hangs up only the legs serve has not seen go (D39): a caller
whose StasisEnd came after its hang-up request, or whose ChannelDestroyed came, is not asked
to hang up again (Asterisk could only answer 404, on every normal call); a channel that left
Stasis alive still is.  The pure decision, then the dispatcher and the ACD's Stasis listener
with a fake call control."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from acd.dispatcher import legs_to_hang_up
from acd.stasis import AcdStasis
from acd.state import CallState, LiveCall
from callpilot.infra.asterisk.channel_events import ChannelInboxes, StasisRouter
from tests.unit.test_dispatcher import FakeControl, agent, enqueue, make  # noqa: F401  (fixture)

AGENT_LEG = "cp-agent-a-1"


def call(agent_channel: str | None = AGENT_LEG) -> LiveCall:
    return LiveCall(id="a", caller_id="", did="", state=CallState.CONNECTED, agent_channel=agent_channel)


@pytest.mark.parametrize("caller_stays, gone, legs", [
    (False, (), ("a", AGENT_LEG)),                   # nothing seen go (e.g. an operator's end)
    (False, ("a",), (AGENT_LEG,)),                   # the caller hung up
    (False, (AGENT_LEG,), ("a",)),                   # the agent hung up
    (True, (AGENT_LEG,), ()),                        # the agent hung up, the caller stays for a survey
    (False, ("a", AGENT_LEG), ()),                   # both went (a resync found neither)
])
def test_legs_to_hang_up(caller_stays, gone, legs):
    assert legs_to_hang_up(call(), caller_stays=caller_stays, gone=gone) == legs


def test_a_call_that_never_rang_has_only_its_caller():
    assert legs_to_hang_up(call(None), caller_stays=False, gone=()) == ("a",)
    assert legs_to_hang_up(call(None), caller_stays=False, gone=("a",)) == ()


class ReleaseControl(FakeControl):
    def __init__(self):
        super().__init__()
        self.released: list[tuple[str, tuple[str, ...]]] = []

    async def release(self, call_id, *channels):
        self.released.append((call_id, channels))
        await super().release(call_id, *channels)


@pytest.fixture
def connected(make):
    """A dispatcher with call ``a`` talking to agent 1 (fake control that notes releases)."""
    async def build():
        d, _, records = make(agent("1"))
        d.control = control = ReleaseControl()
        await enqueue(d, "a")
        await d.agent_answered(d.calls["a"].agent_channel, "a")
        assert d.calls["a"].state is CallState.CONNECTED
        return d, control, d.calls["a"].agent_channel
    return build


async def test_the_caller_seen_hanging_up_is_not_hung_up_again(connected):
    d, control, leg = await connected()
    await d.caller_gone("a", hung_up=True)
    assert control.released == [("a", (leg,))]


async def test_the_agent_seen_hanging_up_is_not_hung_up_again(connected):
    d, control, leg = await connected()
    await d.agent_leg_gone(leg, hung_up=True)
    assert control.released == [("a", ("a",))]


async def test_a_caller_out_of_stasis_alive_is_still_hung_up(connected):
    d, control, leg = await connected()
    await d.caller_gone("a")
    assert control.released == [("a", ("a", leg))]


async def test_a_caller_lost_while_away_is_not_hung_up(connected):
    d, control, leg = await connected()
    await d.channel_lost("a", "channel gone while ARI was away")
    assert control.released == [("a", (leg,))]


def event(kind: str, channel: str, **fields) -> dict:
    return {"type": kind, "channel": {"id": channel}, **fields}


async def listener(d) -> StasisRouter:
    router = StasisRouter(ChannelInboxes())
    AcdStasis(SimpleNamespace(dispatcher=d)).subscribe(router)
    return router


async def test_stasis_end_after_a_hangup_request_counts_as_gone(connected):
    d, control, leg = await connected()
    router = await listener(d)
    await router.on_event(event("ChannelHangupRequest", "a", cause=16))
    await router.on_event(event("StasisEnd", "a"))
    await router.on_event(event("ChannelDestroyed", "a", cause=16))
    assert control.released == [("a", (leg,))]


async def test_stasis_end_without_a_hangup_request_still_hangs_up(connected):
    d, control, leg = await connected()
    router = await listener(d)
    await router.on_event(event("StasisEnd", "a"))
    assert control.released == [("a", ("a", leg))]


async def test_an_agent_leg_destroyed_is_not_hung_up_again(connected):
    d, control, leg = await connected()
    router = await listener(d)
    await router.on_event(event("ChannelDestroyed", leg, cause=16))
    assert control.released == [("a", ("a",))]

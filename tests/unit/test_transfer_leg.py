"""Transfer legs against a scripted ARI (the e2e tests drive a real Asterisk): busy, no
answer, a refused or timed-out originate, an id still in use, answered then bridged."""
from __future__ import annotations

import asyncio

import pytest

from callpilot.infra.asterisk.ari import AriError
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from ivr.driver import CallerHangup
from ivr.transfer_leg import AriTransfer, TransferResult, bridge_id, call_id_of_leg, leg_id


class ScriptedAri:
    """Records requests; ``on_originate(leg)`` decides what an originate does."""

    def __init__(self, inboxes: ChannelInboxes, on_originate):
        self.inboxes, self.on_originate = inboxes, on_originate
        self.requests: list[tuple[str, str]] = []

    async def post(self, path, body=None, **params):
        self.requests.append(("POST", path))
        if path.startswith("/channels/cp-xfer-"):
            return await self.on_originate(path.split("/")[2])
        if path.startswith("/bridges/") and path.endswith("addChannel"):
            return None
        if path.startswith("/bridges/"):
            return {"id": path.split("/")[2], "channels": []}
        return None

    async def delete(self, path, **params):
        self.requests.append(("DELETE", path))

    def event(self, kind: str, channel: str, **extra) -> None:
        self.inboxes.route({"type": kind, "channel": {"id": channel}, **extra})


def setup(on_originate):
    inboxes = ChannelInboxes()
    ari = ScriptedAri(inboxes, on_originate)
    return AriTransfer(ari, inboxes, app="cp"), ari, inboxes.open("call1")


def later(fn, delay=0.05):
    asyncio.get_running_loop().call_later(delay, fn)


async def test_busy_is_reported_and_the_leg_cleaned_up():
    async def busy(leg):
        ari.event("ChannelDestroyed", leg, cause=17)      # before the originate even returns
    transfer, ari, caller = setup(busy)
    result = await transfer.connect(caller, "PJSIP/1002", timeout=5, caller_id="1555", label="x")
    assert result is TransferResult.BUSY
    assert ("DELETE", f"/channels/{leg_id('call1', 1)}") in ari.requests


async def test_no_answer_then_answered_then_caller_hangs_up():
    async def no_answer(leg):
        later(lambda: ari.event("ChannelDestroyed", leg, cause=19))
    transfer, ari, caller = setup(no_answer)
    assert await transfer.connect(caller, "PJSIP/1002", timeout=5, caller_id="", label="x") \
        is TransferResult.NO_ANSWER

    async def answers(leg):
        later(lambda: ari.event("StasisStart", leg))
        later(lambda: ari.event("StasisEnd", "call1"), 0.3)
    ari.on_originate = answers
    result = await transfer.connect(caller, "PJSIP/1002", timeout=5, caller_id="", label="x")
    assert result is TransferResult.COMPLETED
    assert ("POST", f"/bridges/{bridge_id('call1')}/addChannel") in ari.requests
    assert ("DELETE", f"/bridges/{bridge_id('call1')}") in ari.requests


@pytest.mark.parametrize("error", [AriError(500, "POST", "/channels", "boom"), asyncio.TimeoutError()])
async def test_a_refused_or_timed_out_originate_fails_fast(error):
    async def refuse(leg):
        raise error
    transfer, ari, caller = setup(refuse)
    assert await transfer.connect(caller, "PJSIP/9", timeout=5, caller_id="", label="x") \
        is TransferResult.FAILED


async def test_an_id_in_use_moves_to_the_next_number():
    tried = []

    async def in_use_once(leg):
        tried.append(leg)
        if len(tried) == 1:
            raise AriError(409, "POST", "/channels", "in use")
        ari.event("ChannelDestroyed", leg, cause=17)
    transfer, ari, caller = setup(in_use_once)
    assert await transfer.connect(caller, "PJSIP/1002", timeout=5, caller_id="", label="x") \
        is TransferResult.BUSY
    assert tried == [leg_id("call1", 1), leg_id("call1", 2)]


async def test_the_caller_leaving_while_it_rings_ends_the_flow():
    async def rings(leg):
        later(lambda: ari.event("StasisEnd", "call1"))
    transfer, ari, caller = setup(rings)
    with pytest.raises(CallerHangup):
        await transfer.connect(caller, "PJSIP/1002", timeout=5, caller_id="", label="x")
    assert ("DELETE", f"/channels/{leg_id('call1', 1)}") in ari.requests


def test_leg_ids_derive_from_the_call():
    assert call_id_of_leg(leg_id("callpilot-17.3", 2)) == "callpilot-17.3"
    assert call_id_of_leg("cp-agent-x-1") is None

"""The sipp-based user agents against real Asterisk (ARI drives the far end)."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from callpilot.infra.asterisk import runner
from tests.e2e.helpers import is_loopback, listening_sockets

pytestmark = pytest.mark.e2e

APP = "e2e-sipua"


async def _originate(ari, ext: str, **params) -> dict:
    status, chan = await ari.request("POST", "/channels", endpoint=f"PJSIP/{ext}", app=APP,
                                     **params)
    assert status == 200, chan
    return chan


def _is(chan_id: str):
    return lambda e: e.get("channel", {}).get("id") == chan_id


async def test_agent_answers_then_gets_bye(asterisk, agent_phone, ari_app):
    phone = await agent_phone("1003", answer_delay=0.2)
    async with ari_app(APP) as ari:
        chan = await _originate(ari, "1003")
        await ari.wait_event("StasisStart", where=_is(chan["id"]))
        await phone.wait_for("answered")
        rtp = _rtp_sockets(asterisk)
        assert rtp and all(is_loopback(addr) for _p, addr, _port in rtp), rtp
        await ari.request("DELETE", f"/channels/{chan['id']}")
        await phone.wait_for("bye")
    assert await phone.wait_done(5) == 1
    assert phone.invite_received and phone.answered and phone.bye_received
    assert not phone.cancel_received


def _rtp_sockets(config) -> list:
    a = config.asterisk
    sockets = listening_sockets(runner.asterisk_pid(config))
    return [s for s in sockets if s[0] == "udp" and a.rtp_start <= s[2] <= a.rtp_end]


async def test_agent_not_answering_gets_cancel(asterisk, agent_phone, ari_app):
    phone = await agent_phone("1004", behaviour="no_answer")
    async with ari_app(APP) as ari:
        chan = await _originate(ari, "1004", timeout=1)
        await phone.wait_for("ringing")
        gone = await ari.wait_event("ChannelDestroyed", where=_is(chan["id"]))
        assert gone["cause"] in (19, 16), gone      # no answer
    await phone.wait_for("cancelled")
    assert phone.cancel_received and not phone.answered


async def test_busy_agent_rejects(asterisk, agent_phone, ari_app):
    phone = await agent_phone("1002", behaviour="busy")
    async with ari_app(APP) as ari:
        chan = await _originate(ari, "1002")
        gone = await ari.wait_event("ChannelDestroyed", where=_is(chan["id"]))
        assert gone["cause"] == 17, gone            # user busy
    await phone.wait_for("busy")
    assert not phone.answered


async def test_agent_handles_several_calls(asterisk, agent_phone, ari_app):
    phone = await agent_phone("1001", answer_delay=0, calls=2)
    async with ari_app(APP) as ari:
        for n in (1, 2):
            chan = await _originate(ari, "1001")
            await ari.wait_event("StasisStart", where=_is(chan["id"]))
            await ari.request("DELETE", f"/channels/{chan['id']}")
            await phone.wait_for("done", count=n)
    assert await phone.wait_done(5) == 2


async def test_agent_survives_qualify_options(asterisk, agent_phone, ari_app):
    """With qualify on, Asterisk OPTIONS-pings the phone; it answers them and still
    takes calls (sipp's -aa)."""
    qualifying = dataclasses.replace(asterisk, asterisk=dataclasses.replace(
        asterisk.asterisk, agent_qualify_seconds=1))
    runner.reload_pjsip(qualifying)
    try:
        phone = await agent_phone("1004", answer_delay=0)
        await _wait_contact_available(asterisk, "1004")
        async with ari_app(APP) as ari:
            chan = await _originate(ari, "1004")
            await ari.wait_event("StasisStart", where=_is(chan["id"]))
            await ari.request("DELETE", f"/channels/{chan['id']}")
        assert await phone.wait_done(5) == 1
    finally:
        runner.reload_pjsip(asterisk)


async def _wait_contact_available(config, ext: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = runner.rx(config, f"pjsip show contacts like {ext}")
        if "Avail" in out and "Unavail" not in out:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"contact {ext} never qualified: {out}")


async def test_caller_sends_dtmf_and_far_end_hangs_up(asterisk, make_caller, ari_app):
    app = asterisk.asterisk.app_name
    caller = make_caller("800", dtmf="12#", dtmf_delay=0.3, hold_seconds=15)
    async with ari_app(app) as ari:
        call = asyncio.create_task(caller.run())
        start = await ari.wait_event("StasisStart")
        assert start["args"] == ["inbound", "main"]
        assert start["channel"]["caller"]["number"] == "15550001"
        chan_id = start["channel"]["id"]
        await ari.request("POST", f"/channels/{chan_id}/answer")
        digits = ""
        while not digits.endswith("#"):
            event = await ari.wait_event("ChannelDtmfReceived", where=_is(chan_id))
            digits += event["digit"]
        await ari.request("DELETE", f"/channels/{chan_id}")
        result = await asyncio.wait_for(call, 10)
    assert digits == "12#"
    assert result.status == 200 and result.answered and result.ended_by == "remote"
    assert result.duration < 10


async def test_caller_hangs_up_after_hold(asterisk, make_caller, ari_app):
    caller = make_caller("800", dtmf="", hold_seconds=1.5)
    async with ari_app(asterisk.asterisk.app_name) as ari:
        call = asyncio.create_task(caller.run())
        start = await ari.wait_event("StasisStart")
        await ari.request("POST", f"/channels/{start['channel']['id']}/answer")
        end = await ari.wait_event("StasisEnd", where=_is(start["channel"]["id"]))
        result = await asyncio.wait_for(call, 10)
    assert end and result.answered and result.ended_by == "caller"
    assert 1.3 <= result.duration <= 3.0


async def test_caller_cancels_when_nobody_answers(asterisk, make_caller, ari_app):
    caller = make_caller("800", dtmf="", answer_timeout=1.0)
    async with ari_app(asterisk.asterisk.app_name) as ari:
        call = asyncio.create_task(caller.run())
        start = await ari.wait_event("StasisStart")
        await ari.request("POST", f"/channels/{start['channel']['id']}/ring")
        await ari.wait_event("StasisEnd", where=_is(start["channel"]["id"]))
        result = await asyncio.wait_for(call, 10)
    assert result.status == 487 and not result.answered and result.ended_by is None


async def test_bridged_caller_and_agent_exchange_audio(asterisk, make_caller, agent_phone,
                                                      ari_app):
    """Caller -> Stasis -> agent dialled -> mixing bridge: RTP reaches Asterisk from both."""
    phone = await agent_phone("1001", answer_delay=0.1)
    caller = make_caller("800", dtmf="", hold_seconds=8)
    async with ari_app(asterisk.asterisk.app_name) as ari:
        call = asyncio.create_task(caller.run())
        start = await ari.wait_event("StasisStart")
        customer = start["channel"]["id"]
        await ari.request("POST", f"/channels/{customer}/answer")
        status, agent = await ari.request("POST", "/channels", endpoint="PJSIP/1001",
                                          app=asterisk.asterisk.app_name, appArgs="agent")
        assert status == 200, agent
        await ari.wait_event("StasisStart", where=_is(agent["id"]))
        status, bridge = await ari.request("POST", "/bridges", type="mixing")
        await ari.request("POST", f"/bridges/{bridge['id']}/addChannel",
                          channel=f"{customer},{agent['id']}")
        await phone.wait_for("answered")
        await _wait_rx(ari, customer)
        await _wait_rx(ari, agent["id"])
        await ari.request("DELETE", f"/channels/{customer}")
        await ari.request("DELETE", f"/channels/{agent['id']}")
        await ari.request("DELETE", f"/bridges/{bridge['id']}")
        result = await asyncio.wait_for(call, 10)
    await phone.wait_for("bye")
    assert result.answered and result.ended_by == "remote"


async def _wait_rx(ari, chan_id: str, timeout: float = 5.0) -> int:
    """Packets Asterisk received on the channel's RTP stream, once there are some."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, var = await ari.request("GET", f"/channels/{chan_id}/variable",
                                        variable="CHANNEL(rtcp,all)")
        assert status == 200, var
        stats = dict(kv.split("=", 1) for kv in var["value"].split(";") if "=" in kv)
        if int(stats.get("rxcount", 0)) > 10:
            return int(stats["rxcount"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no RTP received on {chan_id}: {var}")


async def test_authenticated_phone_call_reaches_a_feature_code(asterisk, make_caller,
                                                               demo_passwords, ari_app):
    """Caller with credentials: 401, INVITE again with digest, answered, caller hangs up."""
    caller = make_caller("*21", local_ip="127.0.0.1", from_number="1002", dtmf="",
                         hold_seconds=1, auth_user="1002",
                         auth_password=demo_passwords["1002"])
    async with ari_app(asterisk.asterisk.app_name) as ari:
        call = asyncio.create_task(caller.run())
        start = await ari.wait_event("StasisStart")
        assert start["args"] == ["feature", "login"]
        assert start["channel"]["name"].startswith("PJSIP/1002-")
        await ari.request("POST", f"/channels/{start['channel']['id']}/answer")
        result = await asyncio.wait_for(call, 10)
    names = [e.name for e in result.events]
    assert names.count("challenge") == 1 and names.count("invite") == 2
    assert result.answered and result.ended_by == "caller"

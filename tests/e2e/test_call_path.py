"""The first real call path, end to end: real Asterisk 22, real sipp UAs, real RTP.

A trunk caller dials 800 and presses keys (RFC 2833); a registered, authenticated agent phone
rings and answers; RTP flows both ways through the bridge; the call record is checked.
"""
from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
import uuid

import pytest

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.config import AcdConfig
from testkit.sipua import Caller
from tests.e2e.serve_proc import ServeProcess, restart_then_answer, waiting_in, wait_record

pytestmark = pytest.mark.e2e


@pytest.fixture
def cfg(e2e_config, asterisk):
    """The shared Asterisk instance's config, with short ACD timers for tests."""
    return dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=6, wrapup_seconds=1))


@pytest.fixture
async def ari(cfg):
    client = AriClient(cfg.ari_url, cfg.secrets.ari_user, cfg.secrets.ari_password, "cp-test")
    yield client
    await client.close()


def caller_number() -> str:
    return "1555" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))


def make_caller(cfg, number: str, dtmf: str, hold: float, did: str = "800") -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                  dtmf=dtmf, dtmf_delay=1.0, hold_seconds=hold)


async def agent_ready(serve: ServeProcess, ext: str) -> None:
    await serve.wait_for(lambda s: s["agents"][ext]["device"] == "NOT_INUSE"
                         and s["agents"][ext]["state"] == "available", what=f"agent {ext} ready")


async def rtp_counts(ari: AriClient, channel_id: str) -> tuple[int, int]:
    stats = await ari.get(f"/channels/{channel_id}/rtp_statistics")
    return stats["txcount"], stats["rxcount"]


async def bridged_channels(ari: AriClient, timeout: float = 10.0) -> tuple[str, str]:
    """(caller channel, agent channel) of the one call bridge that exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in await ari.get("/bridges"):
            if bridge["id"].startswith("cp-call-") and len(bridge["channels"]) == 2:
                agent = next(c for c in bridge["channels"] if c.startswith("cp-agent-"))
                caller = next(c for c in bridge["channels"] if c != agent)
                return caller, agent
        await asyncio.sleep(0.2)
    raise AssertionError("no call bridge with two channels")


async def test_dtmf_call_reaches_agent_with_rtp_both_ways(cfg, serve, phones, ari):
    agent = await phones("1001")
    await agent_ready(serve, "1001")
    rest_before = (await serve.status())["ari_rest"]
    number = caller_number()
    call = asyncio.create_task(make_caller(cfg, number, "1", hold=10).run())
    await agent.wait_for("answered", timeout=20)
    caller_ch, agent_ch = await bridged_channels(ari)
    before = [await rtp_counts(ari, caller_ch), await rtp_counts(ari, agent_ch)]
    await asyncio.sleep(1.5)
    after = [await rtp_counts(ari, caller_ch), await rtp_counts(ari, agent_ch)]
    for (tx0, rx0), (tx1, rx1), leg in zip(before, after, ("caller", "agent")):
        assert rx1 - rx0 > 25, f"{leg} leg: no RTP received by Asterisk ({rx0} -> {rx1})"
        assert tx1 - tx0 > 25, f"{leg} leg: no RTP sent by Asterisk ({tx0} -> {tx1})"
    result = await call
    assert result.answered and result.ended_by == "caller", result
    await agent.wait_for("bye", timeout=10)
    record = await wait_record(cfg, number)
    assert record.did == "800"
    assert record.queue == "billing" and record.agent == "1001"
    assert record.outcome == "answered"
    assert record.menu_path == ["main_menu=1"]
    assert record.started_at <= record.enqueued_at <= record.answered_at <= record.ended_at
    assert (record.ended_at - record.answered_at).total_seconds() > 5
    await rest_went_over_the_socket(serve, rest_before)
    await no_needless_requests(serve, rest_before)


async def rest_went_over_the_socket(serve: ServeProcess, before: dict) -> None:
    """serve's ARI requests of the call (answer, plays, originate, bridges, hang-ups) went over
    the events WebSocket (default ``ari_rest_transport = auto``, Asterisk 22.10): none over
    HTTP, so a fallback that silently took over fails here (docs/decisions.md D26)."""
    after = (await serve.status())["ari_rest"]
    sent = {k: after["requests"].get(k, 0) - before["requests"].get(k, 0) for k in ("websocket", "http")}
    assert after["transport"] == "websocket", after
    assert sent["websocket"] >= 6 and sent["http"] == 0, sent


async def no_needless_requests(serve: ServeProcess, before: dict) -> None:
    """None of the call's ARI requests got a 404: the release of a finished call asks
    Asterisk to hang up or destroy only what serve has not seen go (D39)."""
    after = (await serve.status())["ari_rest"]["not_found"]
    grew = {k: n - before["not_found"].get(k, 0) for k, n in after.items() if n > before["not_found"].get(k, 0)}
    assert grew == {}, f"404 answers during the call: {grew}"


async def test_abandon_while_waiting(cfg, serve):
    rest_before = (await serve.status())["ari_rest"]
    number = caller_number()
    call = asyncio.create_task(make_caller(cfg, number, "2", hold=6).run())
    status = await serve.wait_for(lambda s: s["queues"].get("cards", {}).get("waiting") == 1,
                                  what="caller waiting in cards")
    assert status["queues"]["cards"]["agents_available"] == 0
    result = await call
    assert result.answered and result.ended_by == "caller"
    record = await wait_record(cfg, number)
    assert (record.queue, record.agent, record.outcome) == ("cards", None, "abandoned")
    assert record.answered_at is None and record.enqueued_at is not None
    assert "queued" in record.detail
    await serve.wait_for(lambda s: s["queues"]["cards"]["waiting"] == 0, what="queue emptied")
    await no_needless_requests(serve, rest_before)    # no agent rang: no bridge to destroy


async def test_abandon_while_ringing_cancels_agent_leg(cfg, serve, phones):
    agent = await phones("1003", behaviour="no_answer")
    await agent_ready(serve, "1003")
    number = caller_number()
    call = asyncio.create_task(make_caller(cfg, number, "2", hold=5).run())
    await agent.wait_for("invite", timeout=15)
    result = await call                      # caller hangs up while 1003 rings
    await agent.wait_for("cancel", timeout=10)
    record = await wait_record(cfg, number)
    status = await serve.status()
    assert result.ended_by == "caller"
    assert (record.queue, record.outcome) == ("cards", "abandoned")
    assert record.answered_at is None and "ringing" in record.detail
    assert status["agents"]["1003"]["state"] == "available", "agent must not be blamed"


async def test_invalid_key_then_silence_falls_back_to_general(cfg, serve, phones):
    agent = await phones("1004")   # 1004 serves cards and general
    await agent_ready(serve, "1004")
    number = caller_number()
    # three rounds of the demo menu's prompt (about 8 s of speech) and its 5 s timeout
    call = asyncio.create_task(make_caller(cfg, number, "9", hold=60).run())
    await agent.wait_for("answered", timeout=75)
    record_open = await serve.status()
    result = await call
    record = await wait_record(cfg, number)
    assert record_open["calls"] >= 1
    assert result.ended_by == "caller"
    assert record.queue == "general" and record.agent == "1004"
    assert record.menu_path[0] == "main_menu=9", record.menu_path
    kinds = [i["kind"] for i in record.journey["inputs"]]
    assert kinds == ["dtmf", "timeout", "timeout"], record.journey["inputs"]


async def test_waiting_call_survives_serve_restart(cfg, serve, phones):
    number = caller_number()
    # the caller's 26 s cover the IVR, the wait, the restart, the agent phone's registration and
    # its ring: 16 s ran out at load ~7 (the phone got INVITE then CANCEL); test_acd_routing's
    # restart test gives its caller 30
    call = asyncio.create_task(make_caller(cfg, number, "1", hold=26).run())
    await serve.wait_for(waiting_in("billing"), what="caller waiting in billing")
    await serve.stopped(kill=True)              # SIGKILL: no goodbye, state only in Asterisk + DB
    result, record = await restart_then_answer(cfg, call, number, "billing", lambda: phones("1001"))
    assert result.ended_by == "caller"
    assert (record.queue, record.agent, record.outcome) == ("billing", "1001", "answered")
    assert record.enqueued_at < record.answered_at


async def test_agi_did_runs_the_same_flow_then_reaches_agent(cfg, serve, phones):
    """DID 801: the flow runs over FastAGI, the dialplan hands the call to the ACD."""
    agent = await phones("1002")
    await agent_ready(serve, "1002")
    number = caller_number()
    call = asyncio.create_task(make_caller(cfg, number, "1", hold=6, did="801").run())
    await agent.wait_for("answered", timeout=20)
    result = await call
    record = await wait_record(cfg, number)
    assert result.ended_by == "caller"
    assert record.did == "801"
    assert (record.queue, record.agent, record.outcome) == ("billing", "1002", "answered")
    assert record.menu_path == ["main_menu=1"]
    assert record.journey["path"] == ["greeting", "main_menu", "to_billing"]


async def cut_ari_websocket(cfg) -> str:
    """Kill serve's TCP connections to ARI from outside (as a network fault would); ``ss``
    runs off the event loop, which keeps the caller's SIP and RTP going meanwhile."""
    out = await asyncio.to_thread(subprocess.run, ["ss", "-K", "-t", "dst", "127.0.0.1", "dport", "=",
                                  str(cfg.asterisk.ari_port)], capture_output=True, text=True, check=True)
    return out.stdout


async def test_waiting_call_survives_a_cut_ari_websocket(cfg, serve, phones):
    number = caller_number()
    call = asyncio.create_task(make_caller(cfg, number, "1", hold=14).run())
    before = await serve.wait_for(lambda s: s["queues"].get("billing", {}).get("waiting") == 1,
                                  what="caller waiting in billing")
    assert "ESTAB" in await cut_ari_websocket(cfg)
    status = await serve.wait_for(lambda s: s["ari_connects"] > before["ari_connects"]
                                  and s["ari"] == "connected", what="ARI reconnected")
    assert status["queues"]["billing"]["waiting"] == 1, status
    agent = await phones("1001")
    await agent.wait_for("answered", timeout=20)
    result = await call
    record = await wait_record(cfg, number)
    assert result.ended_by == "caller"
    assert (record.queue, record.agent, record.outcome) == ("billing", "1001", "answered")


async def test_every_digit_of_a_key_sequence_arrives(cfg, serve):
    """'9' then '1' in one RTP stream: 9 is refused, 1 (typed ahead) picks billing.  With
    sipp's stock per-digit pcaps the second digit was dropped as out of sequence."""
    number = caller_number()
    result = await make_caller(cfg, number, "91", hold=6).run()
    record = await wait_record(cfg, number)
    assert result.answered
    assert record.menu_path == ["main_menu=9", "main_menu=1"], record.menu_path
    assert record.queue == "billing"

"""Transfer, calendars and the post-call survey, end to end: a real Asterisk 22 of its own,
``callpilot serve``, real sipp UAs sending real RTP and RFC 4733 keys.

The instance has extra DIDs for test flows, an outbound trunk ``e2e_carrier`` whose contact
is a sipp UAS on 127.0.0.5 (the "outside desk"), one allow-listed route ``e2e_desk`` on it,
queue ``cards`` with the ``survey`` flow and queue ``afterhours`` with a calendar.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from callpilot.app import demo
from tests.e2e.helpers import asterisk_running, callpilot_cli
from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.config import AcdConfig, Config, to_toml
from callpilot.infra.db import session as db
from callpilot.infra.db.models import Queue
from callpilot.infra.db.surveys import SurveyResponse
from ivr.store import FlowStore
from testkit.rtp_pcap import rtp_pcap
from testkit.sipua import Caller, FarEnd, PhonePool, free_port
from tests import pg
from tests.e2e.conftest import make_e2e_config
from tests.e2e.serve_proc import ServeProcess, wait_record

pytestmark = pytest.mark.e2e

DESK_IP = "127.0.0.5"
DESK_NUMBER = "+18005550100"
KEYED = "900442079460000"          # an international number a fraudster would key

DIDS = {"800": "main", "805": "e2e_xfer_agent", "806": "e2e_xfer_route", "807": "e2e_xfer_queue",
        "808": "e2e_holiday", "809": "e2e_keyed"}
QUEUE_DIDS = {"803": "cards", "804": "afterhours"}


def say(text: str, nxt: str) -> dict:
    return {"type": "say", "text": text, "next": nxt}


BYE = {"type": "hangup", "prompt": "Goodbye."}
FLOWS = {
    "e2e_xfer_agent": {"start": "xfer", "nodes": {
        "xfer": {"type": "transfer", "agent": "1002", "timeout": 8, "fallback": "sorry",
                 "prompt": "Connecting you."},
        "sorry": say("Sorry, nobody is free.", "bye"), "bye": BYE}},
    "e2e_xfer_route": {"start": "xfer", "nodes": {
        "xfer": {"type": "transfer", "route": "e2e_desk", "timeout": 10, "fallback": "sorry"},
        "sorry": say("Sorry, the desk is closed.", "bye"), "bye": BYE}},
    "e2e_xfer_queue": {"start": "xfer", "nodes": {
        "xfer": {"type": "transfer", "queue": "cards", "prompt": "One moment."}}},
    "e2e_keyed": {"start": "number", "nodes": {
        "number": {"type": "collect_digits", "prompt": "Enter the number to call, then hash.",
                   "variable": "dest", "max_digits": 15, "timeout": 8, "next": "xfer",
                   "fallback": "xfer"},
        "xfer": {"type": "transfer", "route": "e2e_desk", "timeout": 10, "fallback": "sorry"},
        "sorry": say("Sorry.", "bye"), "bye": BYE}},
    "e2e_holiday": {"start": "day", "nodes": {
        "day": {"type": "branch", "rules": [
            {"when": {"holiday": "e2e_tomorrow"}, "target": "wrong_day"},
            {"when": {"holiday": "e2e_today"}, "target": "holiday"}], "else": "open"},
        "wrong_day": say("Tomorrow is not today.", "bye"),
        "holiday": say("We are closed for the holiday.", "bye"),
        "open": say("Welcome.", "bye"), "bye": BYE}},
}


@dataclass
class Instance:
    config: Config
    passwords: dict[str, str]
    desk_port: int
    talk_audio: Path               # 40 s of tone: far ends keep sending RTP through a restart


def tone_pcap(path: Path, seconds: float = 40.0) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000
    rtp_pcap((6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), path)
    return path


@pytest.fixture(scope="module")
def inst(request, tmp_path_factory, e2e_database) -> Instance:
    state = tmp_path_factory.mktemp("ivr-features") / "state"
    desk_port = free_port(DESK_IP)
    cfg = make_e2e_config(state, dids=dict(DIDS), queue_dids=dict(QUEUE_DIDS),
                          outbound_trunks={"e2e_carrier": f"{DESK_IP}:{desk_port}"})
    if e2e_database == "postgresql":
        url = pg.create_database(request.getfixturevalue("pg_server"), pg.unique_name("cp_ivrf"))
        cfg.database_url = url.render_as_string(hide_password=False)
    cfg.routes = {"e2e_desk": {"number": DESK_NUMBER, "trunk": "e2e_carrier"}}
    cfg.acd = AcdConfig(ring_timeout=8, wrapup_seconds=0)
    passwords = demo.seed(cfg)
    _seed(cfg)
    talk = tone_pcap(state.parent / "talk.pcap")
    with asterisk_running(cfg):
        yield Instance(cfg, passwords, desk_port, talk)


def _seed(cfg: Config) -> None:
    engine = db.make_engine(cfg.db_url)
    try:
        sessions = db.make_sessionmaker(engine)
        store = FlowStore(sessions)
        for name, doc in FLOWS.items():
            assert store.save_draft(name, {"name": name, **doc}) == []
            store.publish(name, author="e2e")
        with sessions.begin() as s:
            s.execute(update(Queue).where(Queue.name == "cards").values(survey_flow="survey"))
            s.add(Queue(name="afterhours", title="closed today", calendar="e2e_today",
                        closed_message="We are closed today. Please call again tomorrow."))
    finally:
        engine.dispose()


@pytest.fixture
def cfg(inst) -> Config:
    return inst.config


@pytest.fixture
async def phones(inst):
    pool = PhonePool(inst.config, inst.passwords, talk_audio=inst.talk_audio)
    yield pool.start
    await pool.close()


@pytest.fixture
async def desk(inst):
    far = FarEnd("desk", DESK_IP, inst.desk_port, talk_audio=inst.talk_audio)
    await far.start()
    yield far
    await far.stop()


@pytest.fixture
async def ari(cfg):
    client = AriClient(cfg.ari_url, cfg.secrets.ari_user, cfg.secrets.ari_password, "cp-e2e-probe")
    yield client
    await client.close()


def number() -> str:
    return "1555" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))


def caller(cfg: Config, did: str, from_number: str, *, dtmf: str = "", delay: float = 1.0,
           hold: float = 8.0, **kwargs) -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=from_number,
                  dtmf=dtmf, dtmf_delay=delay, hold_seconds=hold, **kwargs)


async def agent_ready(serve, ext: str) -> None:
    await serve.wait_for(lambda s: s["agents"][ext]["device"] == "NOT_INUSE"
                         and s["agents"][ext]["state"] == "available", timeout=30,
                         what=f"agent {ext} ready")


async def transfer_bridge(ari: AriClient, timeout: float = 20.0) -> list[str]:
    """The channels of the one transfer bridge once it holds two."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in await ari.get("/bridges"):
            if bridge["id"].startswith("cp-xfer-") and len(bridge["channels"]) == 2:
                return bridge["channels"]
        await asyncio.sleep(0.2)
    raise AssertionError("no transfer bridge with two channels")


async def assert_media_flows(ari: AriClient, channels: list[str]) -> None:
    """RTP both ways on both legs of the bridge (Asterisk's own counters)."""
    async def counts():
        return [(await ari.get(f"/channels/{c}/rtp_statistics")) for c in channels]
    before = await counts()
    await asyncio.sleep(1.5)
    after = await counts()
    for b, a, channel in zip(before, after, channels):
        assert a["rxcount"] - b["rxcount"] > 25, f"{channel}: no RTP received"
        assert a["txcount"] - b["txcount"] > 25, f"{channel}: no RTP sent"


async def cli(cfg: Config, *args: str) -> subprocess.CompletedProcess:
    path = cfg.state_dir / "cli.toml"
    path.write_text(to_toml(cfg))
    return await callpilot_cli(path, *args)


# --------------------------------------------------------------------------- transfer


async def test_transfer_to_an_agent_extension_bridges_the_caller(cfg, serve, phones, ari):
    agent = await phones("1002")
    await agent_ready(serve, "1002")
    who = number()
    call = asyncio.create_task(caller(cfg, "805", who, hold=10).run())
    await agent.wait_for("answered", timeout=30)
    channels = await transfer_bridge(ari)
    assert any(c.startswith("cp-xfer-") for c in channels)
    await assert_media_flows(ari, channels)
    # the ACD sees the phone busy, so it offers no queue call to the agent meanwhile
    await serve.wait_for(lambda st: st["agents"]["1002"]["device"] != "NOT_INUSE"
                         and not st["agents"]["1002"]["routable"], what="agent 1002 busy")
    result = await call
    await agent.wait_for("bye", timeout=15)
    record = await wait_record(cfg, who)
    assert result.answered and result.ended_by == "caller"
    assert (record.outcome, record.detail) == ("transferred", "transfer agent:1002")
    assert agent.dialled == ["1002"]


async def test_a_bridged_transfer_survives_a_serve_restart(cfg, serve, phones, ari):
    """kill -9 serve while caller and agent talk: the restarted serve leaves them bridged (no
    queue), and closes the call when the caller hangs up."""
    agent = await phones("1002")
    await agent_ready(serve, "1002")
    who = number()
    call = asyncio.create_task(caller(cfg, "805", who, hold=16).run())
    await agent.wait_for("answered", timeout=30)
    before = await transfer_bridge(ari)
    await serve.stopped(kill=True)
    restarted = ServeProcess(cfg).start()
    try:
        status = await restarted.wait_ready()
        assert sorted(await transfer_bridge(ari)) == sorted(before)
        assert all(q["waiting"] == 0 for q in status["queues"].values()), status["queues"]
        await assert_media_flows(ari, before)
        result = await call
        await agent.wait_for("bye", timeout=15)
        record = await wait_record(cfg, who)
    finally:
        await restarted.stopped()
    assert result.ended_by == "caller"
    assert record.outcome == "transferred" and "re-adopted" in record.detail


@pytest.mark.parametrize("behaviour", ["busy", "no_answer"])
async def test_transfer_to_a_busy_or_silent_agent_takes_the_fallback(cfg, serve, phones, behaviour):
    agent = await phones("1002", behaviour=behaviour)
    await agent_ready(serve, "1002")
    who = number()
    result = await caller(cfg, "805", who, hold=30).run()
    record = await wait_record(cfg, who, timeout=30)
    assert agent.invite_received
    assert result.ended_by == "remote"                  # the flow said sorry and hung up
    assert record.journey["path"] == ["xfer", "sorry", "bye"], record.journey
    assert record.outcome == "ivr_completed"


async def test_transfer_to_an_allow_listed_route_rings_the_fixed_outside_number(
        cfg, serve, desk, ari):
    who = number()
    call = asyncio.create_task(caller(cfg, "806", who, hold=10).run())
    await desk.wait_for("answered", timeout=30)
    channels = await transfer_bridge(ari)
    await assert_media_flows(ari, channels)
    result = await call
    await desk.wait_for("bye", timeout=15)
    record = await wait_record(cfg, who)
    assert result.ended_by == "caller"
    assert desk.dialled == [DESK_NUMBER]
    assert (record.outcome, record.detail) == ("transferred", "transfer route:e2e_desk")


async def test_transfer_to_a_queue_reaches_a_queue_agent(cfg, serve, phones):
    agent = await phones("1004")       # cards + general
    await agent_ready(serve, "1004")
    who = number()
    result = await caller(cfg, "807", who, hold=8).run()     # caller hangs up: no survey
    record = await wait_record(cfg, who)
    assert agent.answered and result.ended_by == "caller"
    assert (record.queue, record.agent, record.outcome) == ("cards", "1004", "answered")
    assert record.journey["path"] == ["xfer"]


async def test_keyed_digits_never_choose_the_outside_number(cfg, serve, desk):
    """A caller keys an international number; the only outside call is the route's own."""
    who = number()
    result = await caller(cfg, "809", who, dtmf=KEYED + "#", delay=2.5, hold=14).run()
    record = await wait_record(cfg, who, timeout=30)
    assert record.journey["inputs"][0]["value"] == KEYED      # the keys did arrive
    assert desk.dialled == [DESK_NUMBER], desk.dialled
    assert result.answered and record.outcome == "transferred"


async def test_the_outbound_trunk_accepts_nothing_inbound(cfg, inst):
    """From the far end's address, naming the trunk endpoint as From user: never answered."""
    a = cfg.asterisk
    for dialled in (KEYED, "800"):
        result = await Caller(dialled, a.sip_host, a.sip_port, local_ip=DESK_IP,
                              from_number="out-e2e_carrier", dtmf="", hold_seconds=1,
                              answer_timeout=5).run()
        assert not result.answered and result.status in (401, 403, 404), (dialled, result.status)


# --------------------------------------------------------------------------- calendars


async def test_a_call_on_a_stored_holiday_takes_the_holiday_branch(cfg, serve, tmp_path):
    today = datetime.now(timezone.utc).date()
    ics = tmp_path / "today.ics"
    ics.write_text(_ics(today, "E2E Day"))
    csv = tmp_path / "tomorrow.csv"
    csv.write_text(f"date,name\n{today + timedelta(days=1)},Tomorrow Day\n")
    for name, path in (("e2e_today", ics), ("e2e_tomorrow", csv)):
        done = await cli(cfg, "calendars", "import", name, str(path), "--timezone", "UTC")
        assert done.returncode == 0, done.stderr
    shown = json.loads((await cli(cfg, "calendars", "show", "e2e_today", "--json")).stdout)
    assert shown["closed"] == {today.isoformat(): "E2E Day"}
    who = number()
    result = await caller(cfg, "808", who, hold=15).run()
    record = await wait_record(cfg, who)
    assert result.ended_by == "remote"
    assert record.journey["path"] == ["day", "holiday", "bye"], record.journey


async def test_a_queue_closed_by_its_calendar_says_so_and_hangs_up(cfg, serve, tmp_path):
    today = datetime.now(timezone.utc).date()
    (tmp_path / "today.csv").write_text(f"{today},Closed\n")
    assert (await cli(cfg, "calendars", "import", "e2e_today", str(tmp_path / "today.csv"))).returncode == 0
    who = number()
    result = await caller(cfg, "804", who, hold=20).run()
    record = await wait_record(cfg, who)
    assert result.answered and result.ended_by == "remote"
    assert (record.queue, record.outcome) == ("afterhours", "closed")
    assert 2.0 < result.duration < 18.0       # the message was played, then the call ended


def _ics(day: date, summary: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//callpilot e2e//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:e2e-{day}\r\nDTSTART;VALUE=DATE:{day:%Y%m%d}\r\nSUMMARY:{summary}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


# --------------------------------------------------------------------------- survey


def survey_rows(cfg: Config, call_id: str) -> list[SurveyResponse]:
    engine = db.make_engine(cfg.db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            return list(s.scalars(select(SurveyResponse).where(SurveyResponse.call_id == call_id)))
    finally:
        engine.dispose()


async def test_agent_hangs_up_first_caller_scores_nine(cfg, serve, phones):
    agent = await phones("1003", behaviour="hangup", talk_seconds=2.0)
    await agent_ready(serve, "1003")
    who = number()
    # queue DID: answered and queued at once; the agent talks 2 s and hangs up; the survey
    # prompt starts then, and "9#" at 8 s falls inside it (keys barge in) or its answer window
    result = await caller(cfg, "803", who, dtmf="9#", delay=8.0, hold=40).run()
    await agent.wait_for("hungup", timeout=10)
    record = await wait_record(cfg, who)
    assert (record.queue, record.agent, record.outcome) == ("cards", "1003", "answered")
    assert result.ended_by == "remote"                # the survey said goodbye
    rows = await _eventually(lambda: survey_rows(cfg, record.id))
    assert [(r.question, r.score, r.agent, r.queue) for r in rows] == [("nps", 9, "1003", "cards")]
    stats = await cli(cfg, "queues", "stats", "--queue", "cards", "--json")
    survey = json.loads(stats.stdout)["queues"]["cards"]["survey"]
    assert (survey["nps"], survey["answers"], survey["promoters"]) == (100, 1, 1), survey
    assert survey["agents"]["1003"]["answers"] == 1


async def test_caller_hangs_up_first_no_survey(cfg, serve, phones):
    agent = await phones("1003")
    await agent_ready(serve, "1003")
    who = number()
    result = await caller(cfg, "803", who, dtmf="9#", delay=3.0, hold=5).run()
    await agent.wait_for("bye", timeout=10)
    record = await wait_record(cfg, who)
    assert result.ended_by == "caller"
    assert (record.agent, record.outcome) == ("1003", "answered")
    await asyncio.sleep(2.0)                      # a survey would have stored by now
    assert survey_rows(cfg, record.id) == []


async def _eventually(read, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        rows = read()
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.25)


async def test_a_caller_left_in_a_survey_by_a_dead_serve_is_hung_up(cfg, serve, phones):
    """kill -9 serve while the survey plays: the restarted serve does not leave the caller
    in silence (the record is closed, nobody would ever speak to them again)."""
    agent = await phones("1003", behaviour="hangup", talk_seconds=2.0)
    await agent_ready(serve, "1003")
    who = number()
    call = asyncio.create_task(caller(cfg, "803", who, hold=60).run())
    await agent.wait_for("hungup", timeout=30)
    record = await wait_record(cfg, who)          # answered and closed; the survey starts
    await asyncio.sleep(1.0)
    await serve.stopped(kill=True)
    restarted = ServeProcess(cfg).start()
    try:
        await restarted.wait_ready()
        result = await asyncio.wait_for(call, 30)
    finally:
        await restarted.stopped()
    assert result.ended_by == "remote" and result.duration < 45, result
    assert record.outcome == "answered" and survey_rows(cfg, record.id) == []

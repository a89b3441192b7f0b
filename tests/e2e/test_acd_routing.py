"""Skill- and age-matched routing over real Asterisk with several registered agent phones.

Queue ``acd`` (DID 803, no IVR): steps of 3 s each so relaxation is observable quickly.
Agents (demo birth years) and their ``acd`` proficiency:
  1001 born 1995 (25-34) level 5    1002 born 1987 (35-44) level 3
  1003 born 1979 (45-54) level 2    1004 born 1968 (55+)   level 4
"""
from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import delete

from callpilot.infra.config import AcdConfig, to_toml
from callpilot.infra.db import session as db
from callpilot.infra.db.models import AgentSkill, Customer, Queue, QueueMember
from testkit.sipua import Caller
from tests.e2e.helpers import callpilot_cli
from tests.e2e.serve_proc import (ServeProcess, call_record_writes_stalled, records_for,
                                  restart_then_answer, waiting_in, wait_record)

pytestmark = pytest.mark.e2e

STEP = 3.0
SKILLS = {"1001": 5, "1002": 3, "1003": 2, "1004": 4}
CALLERS = {"35-44": "15557031", "55+": "15557061", "45-54": "15557041"}
UNRECORDED = "15557032"            # 35-44, the caller of the unrecorded-restart test only
BIRTH = {"15557031": 1990, "15557061": 1960, "15557041": 1980, UNRECORDED: 1989}


def seed_acd(cfg) -> None:
    engine = db.make_engine(cfg.db_url)
    db.create_schema(engine)
    steps = [
        {"conditions": [{"kind": "attribute_equals", "caller_attr": "age_band"},
                        {"kind": "skill_at_least", "skill": "acd", "level": 3}], "expiry": STEP},
        {"conditions": [{"kind": "adjacent_band"},
                        {"kind": "skill_at_least", "skill": "acd", "level": 3}], "expiry": STEP},
        {"conditions": [{"kind": "skill_at_least", "skill": "acd", "level": 1}], "expiry": STEP},
    ]
    with db.make_sessionmaker(engine).begin() as s:
        s.execute(delete(QueueMember).where(QueueMember.queue_name == "acd"))
        s.execute(delete(AgentSkill).where(AgentSkill.skill == "acd"))
        s.merge(Queue(name="acd", title="ACD tests", skill="acd", announce_frequency=0, steps=steps))
        for ext, level in SKILLS.items():
            s.add(QueueMember(queue_name="acd", agent_extension=ext))
            s.add(AgentSkill(agent_extension=ext, skill="acd", level=level))
        s.execute(delete(QueueMember).where(QueueMember.queue_name == "acd_overflow"))
        s.merge(Queue(name="acd_overflow", title="announces every 2 s, overflows to general at 5 s",
                      skill="acd", announce_frequency=2, max_wait_seconds=5,
                      overflow_queue="general", steps=[]))
        s.add(QueueMember(queue_name="acd_overflow", agent_extension="1001"))
        for phone, year in BIRTH.items():
            s.merge(Customer(phone=phone, name=f"caller {phone}", birth_year=year))
    engine.dispose()


@pytest.fixture
def cfg(e2e_config, asterisk):
    config = dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=4, wrapup_seconds=1,
                                                           autopause_after=1))   # RONA: paused at once
    seed_acd(config)
    return config


def call_queue(cfg, number: str, hold: float, did: str = "803") -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                  dtmf="", hold_seconds=hold)


async def ready(serve: ServeProcess, *exts: str) -> None:
    await serve.wait_for(lambda s: all(s["agents"][e]["routable"] for e in exts),
                         what=f"agents {exts} routable")


async def cli(cfg, *args: str) -> subprocess.CompletedProcess:
    path = Path(cfg.state_dir) / "config.toml"
    path.write_text(to_toml(cfg))
    return await callpilot_cli(path, *args, timeout=30)


async def test_each_caller_reaches_the_same_age_band_agent(cfg, serve, phones):
    for ext in SKILLS:
        await phones(ext, calls=2)
    await ready(serve, *SKILLS)
    expected = {CALLERS["35-44"]: "1002", CALLERS["55+"]: "1004"}
    for number, agent in expected.items():
        result = await call_queue(cfg, number, hold=3).run()
        assert result.answered
        record = await wait_record(cfg, number)
        assert record.agent == agent, f"caller {number}: {record.agent} answered, policy names {agent}"
        await ready(serve, agent)                   # wrap-up over before the next caller


async def test_a_caller_serve_died_before_recording_is_enqueued_after_the_restart(cfg, serve, phones):
    """The database stalls (another session holds the write lock), so serve takes the caller
    into ``acd`` but its record's open (a write-behind post) cannot land; serve is then killed.
    The restarted serve finds the caller in ``Stasis(<app>,enqueue,acd)`` with no record and
    enqueues it from the channel's dialplan data: the caller still reaches the agent."""
    call = asyncio.create_task(call_queue(cfg, UNRECORDED, hold=30).run())
    with call_record_writes_stalled(cfg):
        await serve.wait_for(waiting_in("acd"), what="caller waiting in acd")
        await serve.stopped(kill=True)
    assert await asyncio.to_thread(records_for, cfg, UNRECORDED) == []       # what the restarted serve has to go on
    result, record = await restart_then_answer(cfg, call, UNRECORDED, "acd", lambda: phones("1002"))
    assert result.answered
    assert (record.queue, record.agent, record.outcome) == ("acd", "1002", "answered")


async def test_step_relaxes_at_its_expiry(cfg, serve, phones):
    """1002 (same band) is logged in but paused: step 0 is possible, so the call waits for it
    to expire, then the adjacent band (1001, 25-34, level 5) gets it."""
    await phones("1001")
    await phones("1002")
    await ready(serve, "1001", "1002")
    paused = await cli(cfg, "agents", "pause", "1002", "--reason", "training")
    assert paused.returncode == 0, paused.stderr
    number = CALLERS["35-44"]
    call = asyncio.create_task(call_queue(cfg, number, hold=9).run())
    result = await call
    record = await wait_record(cfg, number)
    assert record.agent == "1001"
    waited = (record.answered_at - record.enqueued_at).total_seconds()
    # 1001 is outside step 0: it got the call, so the step relaxed; not before its expiry
    # (how soon after it is speed, shown by the benchmarks, not asserted here)
    assert waited >= STEP - 0.2, f"relaxed after {waited:.2f}s, step is {STEP}s"
    assert result.answered


async def test_impossible_step_is_skipped_at_once(cfg, serve, phones):
    """No 35-44 agent logged in at all (1002 logged out): step 0 is skipped immediately."""
    await phones("1001")
    await ready(serve, "1001")
    assert (await cli(cfg, "agents", "logout", "1002")).returncode == 0
    number = CALLERS["35-44"]
    await call_queue(cfg, number, hold=3).run()
    record = await wait_record(cfg, number)
    assert record.agent == "1001"
    waited = (record.answered_at - record.enqueued_at).total_seconds()
    assert waited < STEP, f"answered after {waited:.2f}s: step 0 ({STEP}s) was waited out, not skipped"


async def test_ring_no_answer_pauses_agent_and_moves_on(cfg, serve, phones):
    deaf = await phones("1004", behaviour="no_answer")
    await phones("1001")
    await ready(serve, "1001", "1004")
    number = CALLERS["55+"]
    result = await call_queue(cfg, number, hold=14).run()
    record = await wait_record(cfg, number)
    status = await serve.status()
    assert deaf.invite_received and deaf.cancel_received
    assert record.agent == "1001" and record.outcome == "answered"
    assert status["agents"]["1004"]["state"] == "paused"
    assert status["agents"]["1004"]["pause_reason"] == "not responding"
    assert result.answered


async def test_unregistered_phone_leaves_routing(cfg, serve, phones):
    phone = await phones("1003")
    await ready(serve, "1003")
    await phone.unregister()
    await serve.wait_for(lambda s: not s["agents"]["1003"]["routable"], what="1003 out of routing")
    number = CALLERS["45-54"]
    call = asyncio.create_task(call_queue(cfg, number, hold=5).run())
    status = await serve.wait_for(lambda s: s["queues"].get("acd", {}).get("waiting") == 1,
                                  what="caller waiting")
    assert status["queues"]["acd"]["agents_available"] == 0
    await call
    record = await wait_record(cfg, number)
    assert record.agent is None and record.outcome == "abandoned"
    assert phone.count("invite") == 0


async def test_waiting_caller_hears_position_then_overflows(cfg, serve, phones):
    """acd_overflow has only 1001 (not registered): the caller is told its position every
    2 s, and after 5 s overflows to general, where 1004 answers."""
    await phones("1004")
    await ready(serve, "1004")
    number = CALLERS["55+"]
    call = asyncio.create_task(call_queue(cfg, number, hold=12, did="804").run())
    status = await serve.wait_for(
        lambda s: any(w["caller_id"] == number and w["announcements"] >= 2 for w in s["waiting"]),
        timeout=8, what="two announcements")
    waiting = next(w for w in status["waiting"] if w["caller_id"] == number)
    assert waiting["queue"] == "acd_overflow" and waiting["position"] == 1
    result = await call
    record = await wait_record(cfg, number)
    assert result.answered
    assert (record.queue, record.agent, record.outcome) == ("general", "1004", "answered")
    waited = (record.answered_at - record.enqueued_at).total_seconds()
    assert 5.0 <= waited <= 7.0, waited
    log = (Path(cfg.state_dir) / "queue_log").read_text().splitlines()
    mine = [line.split("|")[2:5] for line in log if f"|{record.id}|" in line]
    assert mine[0][2] == "ENTERQUEUE" and mine[0][0] == "acd_overflow"
    assert ("acd_overflow", "EXITWITHTIMEOUT") in [(queue, event) for queue, _agent, event in mine]
    assert ["general", "PJSIP/1004", "CONNECT"] in mine


async def test_agent_feature_codes_pause_and_unpause(cfg, serve, phones, demo_passwords):
    """The agent's own phone dials *23 / *24; serve knows the agent by its authenticated
    endpoint and says the result."""
    await phones("1002")
    await ready(serve, "1002")
    a = cfg.asterisk

    async def dial(code: str):
        return await Caller(code, a.sip_host, a.sip_port, local_ip="127.0.0.1", from_number="1002",
                            dtmf="", hold_seconds=4, auth_user="1002",
                            auth_password=demo_passwords["1002"]).run()
    assert (await dial("*23")).answered
    status = await serve.wait_for(lambda s: s["agents"]["1002"]["state"] == "paused", what="paused")
    assert status["agents"]["1002"]["pause_reason"] == "phone"
    assert (await dial("*24")).answered
    await serve.wait_for(lambda s: s["agents"]["1002"]["state"] == "available", what="unpaused")

"""Routing tickets survive the FastAGI handoff and a kill -9 of serve (real Asterisk, real UAs).

Own instance: DID 805 runs flow ``vip`` over FastAGI (enqueue to ``tickets`` with priority 5
and skill ``tickets`` >= 4); DID 806 goes straight to queue ``tickets`` (a plain ticket).
Agents of ``tickets``: 1001 (level 5) and 1002 (level 2).
"""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete

from callpilot.app import demo
from tests.e2e.helpers import asterisk_running
from callpilot.infra.db import session as db
from callpilot.infra.db.models import AgentSkill, Queue, QueueMember
from ivr.store import FlowStore
from testkit.sipua import Caller
from tests.e2e.conftest import make_e2e_config
from tests.e2e.serve_proc import ServeProcess, records_for, wait_record

pytestmark = pytest.mark.e2e

VIP_FLOW = {
    "name": "vip", "language": "en-us", "start": "hello",
    "nodes": {
        "hello": {"type": "say", "text": "Welcome, valued customer.", "next": "to_tickets"},
        "to_tickets": {"type": "enqueue", "queue": "tickets", "priority": 5,
                       "skills": {"tickets": 4}},
    },
}


def seed_tickets(cfg) -> None:
    engine = db.make_engine(cfg.db_url)
    with db.make_sessionmaker(engine).begin() as s:
        s.execute(delete(QueueMember).where(QueueMember.queue_name == "tickets"))
        s.execute(delete(AgentSkill).where(AgentSkill.skill == "tickets"))
        s.merge(Queue(name="tickets", title="ticket tests", skill="tickets", announce_frequency=0,
                      steps=[]))
        for ext, level in (("1001", 5), ("1002", 2)):
            s.add(QueueMember(queue_name="tickets", agent_extension=ext))
            s.add(AgentSkill(agent_extension=ext, skill="tickets", level=level))
    store = FlowStore(db.make_sessionmaker(engine))
    assert store.save_draft("vip", VIP_FLOW) == []
    store.publish("vip", author="test")
    engine.dispose()


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    cfg = make_e2e_config(tmp_path_factory.mktemp("tickets") / "state",
                          agi_dids={"801": "main", "805": "vip"}, queue_dids={"806": "tickets"})
    cfg.acd.ring_timeout, cfg.acd.wrapup_seconds = 6, 1
    passwords = demo.seed(cfg)
    seed_tickets(cfg)
    with asterisk_running(cfg):
        yield cfg, passwords


@pytest.fixture
def cfg(instance):
    """This module's instance for the shared ``serve`` and ``phones`` fixtures."""
    return instance[0]


@pytest.fixture
def demo_passwords(instance):
    return instance[1]


def caller(cfg, did: str, number: str, hold: float) -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                  dtmf="", hold_seconds=hold)


def waiting(status: dict, number: str) -> dict | None:
    return next((w for w in status["waiting"] if w["caller_id"] == number), None)


async def test_an_agi_flow_ticket_reaches_the_dispatcher(cfg, serve, phones):
    """Priority and skills chosen by the flow arrive although the dialplan passes only the
    queue's name: 1002 (level 2) is free but never offered the call; 1001 (level 5) gets it."""
    await phones("1002")
    await serve.wait_for(lambda s: s["agents"]["1002"]["routable"], what="1002 routable")
    number = "15558051"
    call = asyncio.create_task(caller(cfg, "805", number, hold=20).run())
    status = await serve.wait_for(lambda s: waiting(s, number) is not None, timeout=30,
                                  what="the AGI caller waiting in tickets")
    entry = waiting(status, number)
    assert (entry["queue"], entry["priority"], entry["skills"]) == ("tickets", 5, {"tickets": 4})
    await asyncio.sleep(3)                               # 1002 stays free and unoffered
    status = await serve.status()
    assert waiting(status, number) is not None and status["agents"]["1002"]["state"] == "available"
    await phones("1001")
    result = await call                                 # the caller hangs up after its hold
    record = await wait_record(cfg, number, timeout=30)
    assert result.answered and record.outcome == "answered"
    assert record.agent == "1001" and record.did == "805"
    assert record.ticket["priority"] == 5 and record.ticket["skills"] == {"tickets": 4}


async def test_after_kill_9_a_high_priority_call_still_beats_an_older_normal_one(cfg, serve, phones):
    normal, vip = "15558061", "15558052"
    calls = [asyncio.create_task(caller(cfg, "806", normal, hold=60).run())]
    await serve.wait_for(lambda s: waiting(s, normal) is not None, timeout=30, what="normal caller waiting")
    calls.append(asyncio.create_task(caller(cfg, "805", vip, hold=60).run()))
    await serve.wait_for(lambda s: waiting(s, vip) is not None, timeout=30, what="vip caller waiting")
    await serve.stopped(kill=True)                      # SIGKILL: no goodbye
    restarted = ServeProcess(cfg).start()
    try:
        status = await restarted.wait_ready()           # ARI connected: the resync is over (D39)
        assert waiting(status, normal) and waiting(status, vip), status["waiting"]
        assert waiting(status, vip)["priority"] == 5 and waiting(status, vip)["position"] == 1
        assert waiting(status, normal)["priority"] == 0 and waiting(status, normal)["position"] == 2
        await phones("1001")                            # the next free agent
        record = await wait_record(cfg, vip, state="connected", timeout=30)
        still = await restarted.status()
    finally:
        await restarted.stopped()
        for c in calls:
            c.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    older = (await asyncio.to_thread(records_for, cfg, normal))[-1]
    assert record.agent == "1001"
    assert older.enqueued_at < record.enqueued_at       # the normal call was older...
    assert older.answered_at is None or older.answered_at > record.answered_at   # ...and lost
    assert waiting(still, normal) is not None

"""Two CallPilot nodes on one PostgreSQL database, one agent phone registered with both.

Each node is an Asterisk 22 and a ``callpilot serve`` of its own (own state dir, ports,
secrets, node name); they share one fresh PostgreSQL database (the demo data seeded once, the
same SIP credentials rendered into both Asterisks).  Agent 1001's one phone (one sipp, one
local port) is registered with both Asterisks, so either node can ring it; the other demo
agents stay unregistered (not routable anywhere).  ``acd.shared_agents`` is left "auto" (on with
PostgreSQL: agent holds and shared presence), as a deployment has it.

* one caller on each node at the same time, both on the straight-to-queue DID.  Each node
  keeps its agents' states in memory, so without the holds both ring 1001 at once (with
  ``acd.shared_agents = "off"`` this test fails so).  Evidence: the phone's own SIP events (its
  second INVITE after its first call ended), the call records in the shared database (both
  callers talked to 1001, each record from its own node's Asterisk) and the agent holds table
  (the hold was taken, and is free at the end);
* the serve of the node whose call has 1001 is killed (SIGKILL) during that call: its hold is
  renewed and released by no one; the other node's caller still reaches 1001 once the hold
  is stale, one call at a time;
* agent 1001 pauses with its feature code through node A: node B holds it back too (the
  shared presence) until it unpauses through node A; the queue log has each once;
* the admin web of node A changes agent 1001's skill: node B's serve reloads it too;
* node A's admin web shows on its wallboard a caller waiting on node B;
* node A's serve is killed and started again during a call longer than a hold's 15 s
  staleness: the restarted serve re-adopts the call and keeps the hold, so node B's waiting
  caller is rung only after that call (without the restart the phone gets node B's INVITE
  during node A's call, ~15 s after the kill: a dead node's lapse, docs/decisions.md D43).

The phone hangs up each call (after ``TALK_SECONDS``), not the callers: which node rings it
first is a race, and the second caller waits as long as the first call lasts.

PostgreSQL only: skipped where its server binaries are missing (and no external server is
named by ``CALLPILOT_TEST_DATABASE_URL``).
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from sqlalchemy import select

from acd.agent_presence import POLL_SECONDS
from acd.model import AgentState
from callpilot.app import demo
from admin_web.live import StateClock, wallboard
from callpilot.app.web import build_services
from callpilot.infra.asterisk import runner
from callpilot.infra.asterisk.runner import system_name
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.shared_state import AgentHold
from callpilot.infra.db.call_vocabulary import CallOutcome
from callpilot.infra.db.models import Agent, AgentSkill, QueueEvent
from testkit import sipua
from testkit.sipua import AgentPhone, Caller, SipEvent
from tests import pg
from tests.e2e.conftest import forget_shared_agents, make_e2e_config
from tests.e2e.helpers import asterisk_running
from tests.e2e.serve_proc import ServeProcess, wait_record

pytestmark = pytest.mark.e2e

QUEUE_DID, QUEUE, AGENT = "803", "general", "1001"     # demo agent 1001 serves general
RING_SECONDS, WRAPUP_SECONDS = 6, 1                    # demo_instance's short ACD timers
TALK_SECONDS = 2.0                                     # the phone hangs up after this
CALLER_HOLD = 40.0                                     # a caller never hangs up first
RESTARTED_CALL_HOLD = 20.0      # node a's call across its serve's restart: past a hold's 15 s
RENDERED_AGENTS = "pjsip_agents.conf"


@dataclass
class Node:
    name: str
    config: Config

    @property
    def sip(self) -> tuple[str, int]:
        return self.config.asterisk.sip_host, self.config.asterisk.sip_port


@dataclass
class Cluster:
    """Two nodes on one database, Asterisks up; ``passwords``: the demo agents' (shared)."""
    a: Node
    b: Node
    passwords: dict[str, str]
    db_url: str

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b


def postgresql_or_skip() -> None:
    """Skip the module where no PostgreSQL server can be had (the other PostgreSQL tests fail
    there instead: they are the suite's; this one only makes sense on PostgreSQL)."""
    if pg.external_server_named():
        return
    try:
        pg.find_bindir()
    except pg.PostgresMissing as exc:
        pytest.skip(f"two nodes share a PostgreSQL database: {exc}")


def node_config(state_dir: Path, name: str, db_url: str) -> Config:
    config = make_e2e_config(state_dir, queue_dids={QUEUE_DID: QUEUE})
    config.acd.ring_timeout, config.acd.wrapup_seconds = RING_SECONDS, WRAPUP_SECONDS
    config.database_url = db_url
    # each node its own name: its agent holds' and Asterisk's system name, its outbound
    # claims; acd.shared_agents is left "auto" (on with PostgreSQL), as a deployment has it
    config.acd.node = f"node-{name}"          # campaign attempts follow it (outbound.node "")
    return config


def agent_credentials(db_url: str) -> dict[str, str]:
    engine = db.make_engine(db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            return {a.extension: a.sip_md5_cred for a in s.scalars(select(Agent))}
    finally:
        engine.dispose()


def seed_both(a: Config, b: Config) -> dict[str, str]:
    """The demo data once for the database; node B gets node A's passwords file, so its seed
    (what ``make run`` on a second node does) finds every agent as it is and changes nothing."""
    passwords = demo.seed(a)
    before = agent_credentials(a.db_url)
    b.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(a.state_dir / demo.PASSWORDS_FILE, b.state_dir / demo.PASSWORDS_FILE)
    assert demo.seed(b) == passwords
    assert agent_credentials(b.db_url) == before, "node B's seed changed the agents' SIP credentials"
    return passwords


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    postgresql_or_skip()
    server = request.getfixturevalue("pg_server")
    name = pg.unique_name("cp_two_nodes")
    url = pg.create_database(server, name).render_as_string(hide_password=False)
    root = tmp_path_factory.mktemp("two-nodes")
    a, b = (Node(n, node_config(root / n / "state", n, url)) for n in ("a", "b"))
    try:
        passwords = seed_both(a.config, b.config)
        with asterisk_running(a.config), asterisk_running(b.config):
            yield Cluster(a, b, passwords, url)
    finally:
        pg.drop_database(server, name)


@contextlib.asynccontextmanager
async def both_serving(cluster: Cluster) -> AsyncIterator[tuple[ServeProcess, ServeProcess]]:
    """Both serves started at once, ready, the agents as the demo seeded them (no hold or
    presence of an earlier test's serves).  Each serve runs the migrations at its start, here
    a no-op (the seed migrated); unit test_db_schema starts several at once on an empty one."""
    forget_shared_agents(cluster.a.config)
    serves = [ServeProcess(node.config).start() for node in cluster.nodes]
    try:
        await asyncio.gather(*(s.wait_ready() for s in serves))
        yield serves[0], serves[1]
    finally:
        await asyncio.gather(*(s.stopped() for s in serves))
        await asyncio.gather(*(asyncio.to_thread(hang_up_leftovers, node.config) for node in cluster.nodes))


def hang_up_leftovers(config: Config) -> None:
    """No call of one test reaches the next one's serves: a caller whose sipp was killed
    (no BYE) stays up in Asterisk, and a serve started later would re-adopt it."""
    runner.rx(config, "channel request hangup all")


@contextlib.asynccontextmanager
async def phone_on_both(cluster: Cluster, **kwargs) -> AsyncIterator[AgentPhone]:
    """Agent 1001's one phone registered with node B, then with node A (``start``), from the
    same local address: either Asterisk rings the same sipp.  Unregistered from both after."""
    password = cluster.passwords[AGENT]
    host_a, port_a = cluster.a.sip
    phone = AgentPhone(AGENT, password, server_host=host_a, server_port=port_a, **kwargs)
    host_b, port_b = cluster.b.sip
    status = await sipua.register_async(host_b, port_b, AGENT, password, phone.local_ip, phone.local_port)
    assert status == 200, f"REGISTER {AGENT} with node b -> {status}"
    try:
        await phone.start()
        yield phone
    finally:
        await phone.stop()
        with contextlib.suppress(Exception):
            await phone.unregister()
        with contextlib.suppress(Exception):
            await sipua.register_async(host_b, port_b, AGENT, password, phone.local_ip,
                                       expires=0, contact="*")


def holds(db_url: str) -> dict[str, tuple[str, str | None]]:
    """``{agent: (node, call held for or None)}``: the agent holds table as it is."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as c:
            return {agent: (node, call) for agent, node, call in
                    c.execute(select(AgentHold.agent, AgentHold.node, AgentHold.call_id))}
    finally:
        engine.dispose()


async def holds_once_released(db_url: str, timeout: float = 10.0) -> dict[str, tuple[str, str | None]]:
    """The holds table once no agent is held any more (a hold is released after the wrap-up),
    or as it is at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        table = await asyncio.to_thread(holds, db_url)
        if all(call is None for _node, call in table.values()) or time.monotonic() > deadline:
            return table
        await asyncio.sleep(0.25)


async def agent_ready_on_both(serves: tuple[ServeProcess, ...]) -> list[dict]:
    """Both serves' status once 1001 is routable on each (its phone registered there)."""
    return await asyncio.gather(*(s.wait_for(lambda st: st["agents"][AGENT]["routable"], timeout=30,
                                             what=f"{AGENT} routable") for s in serves))


def queue_caller(node: Node, who: str, hold: float = CALLER_HOLD) -> Caller:
    a = node.config.asterisk
    return Caller(QUEUE_DID, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=who,
                  dtmf="", hold_seconds=hold)


def number() -> str:
    return "1777" + str(uuid.uuid4().int)[:6]


def overlaps(events: list[SipEvent]) -> list[str]:
    """Each INVITE the phone got while an earlier call of it had not ended ("done")."""
    ended: set[int] = set()
    started: list[int] = []
    found = []
    for event in events:
        if event.name == "invite":
            busy = [c for c in started if c not in ended]
            if busy:
                found.append(f"INVITE of call {event.call} at {event.clock_ms} ms while call(s) "
                             f"{busy} still up")
            started.append(event.call)
        elif event.name == "done":
            ended.add(event.call)
    return found


def test_both_nodes_render_the_same_agents(cluster):
    """One database, two Asterisks: the same PJSIP agents and credentials on both."""
    a, b = ((n.config.asterisk_dir / "etc" / RENDERED_AGENTS).read_text() for n in cluster.nodes)
    assert a == b
    assert f"[{AGENT}]" in a


async def test_one_agent_two_nodes_one_call_at_a_time(cluster):
    async with both_serving(cluster) as serves, \
            phone_on_both(cluster, behaviour="hangup", talk_seconds=TALK_SECONDS, calls=2) as phone:
        statuses = await agent_ready_on_both(serves)
        callers = {node.name: number() for node in cluster.nodes}
        results = await asyncio.gather(*(queue_caller(node, callers[node.name]).run()
                                         for node in cluster.nodes))
        await phone.wait_done(timeout=30)
        assert overlaps(phone.events) == [], [(e.name, e.call, e.clock_ms) for e in phone.events]
        records = {n: await wait_record(cluster.a.config, who) for n, who in callers.items()}
        held = await holds_once_released(cluster.db_url)

    assert phone.count("invite") == 2
    assert [s["node"] for s in statuses] == [n.config.acd.node for n in cluster.nodes]  # holds on
    assert all(r.answered and r.ended_by == "remote" for r in results), results
    for node in cluster.nodes:
        record = records[node.name]
        assert record.id.startswith(system_name(node.config) + "-"), (node.name, record.id)
        assert (record.did, record.queue, record.agent, record.outcome) == \
            (QUEUE_DID, QUEUE, AGENT, CallOutcome.ANSWERED.value), f"node {node.name}: {record}"
    # the agent's hold was taken (its row exists) and is free again; no other agent was held
    assert set(held) == {AGENT} and held[AGENT][1] is None, held
    assert held[AGENT][0] in {node.config.acd.node for node in cluster.nodes}, held


async def on_call_at(serves: tuple[ServeProcess, ...], timeout: float = 20.0) -> int:
    """Index of the serve whose agent 1001 is on a call (the node that rang it first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, serve in enumerate(serves):
            if (await serve.status()).get("agents", {}).get(AGENT, {}).get("state") == AgentState.ON_CALL.value:
                return i
        await asyncio.sleep(0.1)
    raise AssertionError(f"agent {AGENT} on a call on no node within {timeout} s")


async def test_a_killed_nodes_hold_goes_stale_then_the_other_node_rings(cluster):
    """The serve of the node whose call has 1001 is killed (SIGKILL) while that call is
    connected: its hold is no longer renewed, and released by no one.  The other node's
    caller, waiting with 1001 held elsewhere, still reaches 1001 (the dead hold goes stale),
    and the phone never has two calls at once."""
    async with both_serving(cluster) as serves, \
            phone_on_both(cluster, behaviour="hangup", talk_seconds=TALK_SECONDS, calls=2) as phone:
        await agent_ready_on_both(serves)
        callers = {node.name: number() for node in cluster.nodes}
        calls = {node.name: asyncio.create_task(queue_caller(node, callers[node.name]).run())
                 for node in cluster.nodes}
        try:
            first = await on_call_at(serves)
            await serves[first].stopped(kill=True)
            dead, survivor = cluster.nodes[first], cluster.nodes[1 - first]
            result = await calls[survivor.name]
            await phone.wait_done(timeout=45)
            record = await wait_record(survivor.config, callers[survivor.name])
            held = await holds_once_released(cluster.db_url)
        finally:
            for call in calls.values():
                call.cancel()
            await asyncio.gather(*calls.values(), return_exceptions=True)

    assert overlaps(phone.events) == [], [(e.name, e.call, e.clock_ms) for e in phone.events]
    assert phone.count("invite") == 2
    assert result.answered and result.ended_by == "remote", result
    assert (record.agent, record.outcome) == (AGENT, CallOutcome.ANSWERED.value), record
    assert record.id.startswith(system_name(survivor.config) + "-"), record.id
    # the dead node's stale hold was taken over by the survivor, which released it after its call
    assert held == {AGENT: (survivor.config.acd.node, None)}, (dead.name, held)


def agent_field(field: str, value):
    """A status predicate: agent 1001's ``field`` is ``value``."""
    return lambda status: status["agents"][AGENT][field] == value


async def test_a_restarted_serve_keeps_its_hold_on_the_call_it_re_adopts(cluster):
    """Node A's caller talks to 1001, node B's caller waits (1001 held by node A); node A's
    serve is killed and started again during the call, which lasts past the 15 s a dead hold
    takes to go stale.  The restarted serve re-adopts the call and keeps its hold (renewed),
    so node B rings 1001 only after that call: the phone never has two calls at once."""
    a, b = cluster.nodes
    async with both_serving(cluster) as (serve_a, serve_b), \
            phone_on_both(cluster, behaviour="answer", calls=2) as phone:
        await agent_ready_on_both((serve_a, serve_b))
        who_a, who_b = number(), number()
        call_a = asyncio.create_task(queue_caller(a, who_a, hold=RESTARTED_CALL_HOLD).run())
        call_b = None
        restarted = None
        try:
            await serve_a.wait_for(agent_field("state", AgentState.ON_CALL.value), what="1001 on node a's call")
            call_b = asyncio.create_task(queue_caller(b, who_b, hold=RESTARTED_CALL_HOLD + 6).run())
            await serve_b.wait_for(agent_field("held_by", a.config.acd.node), what="1001 held by node a")
            await serve_a.stopped(kill=True)
            restarted = ServeProcess(a.config).start()
            await restarted.wait_ready()
            results = await asyncio.gather(call_a, call_b)
            await phone.wait_done(timeout=30)
            records = await wait_record(a.config, who_a), await wait_record(b.config, who_b)
            held = await holds_once_released(cluster.db_url)
        finally:
            for call in (call_a, call_b):
                if call is not None:
                    call.cancel()
            await asyncio.gather(*(c for c in (call_a, call_b) if c is not None), return_exceptions=True)
            if restarted is not None:
                await restarted.stopped()

    assert overlaps(phone.events) == [], [(e.name, e.call, e.clock_ms) for e in phone.events]
    assert phone.count("invite") == 2
    assert all(r.answered and r.ended_by == "caller" for r in results), results
    for node, record in zip(cluster.nodes, records):
        assert record.id.startswith(system_name(node.config) + "-"), (node.name, record.id)
        assert (record.agent, record.outcome) == (AGENT, CallOutcome.ANSWERED.value), record
    assert held == {AGENT: (b.config.acd.node, None)}, held


def pause_events(db_url: str) -> list[tuple[str, str]]:
    """``(event, reason)`` of agent 1001's PAUSEALL / UNPAUSEALL rows in the shared queue log."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(select(QueueEvent.event, QueueEvent.data)
                             .where(QueueEvent.agent == AGENT,
                                    QueueEvent.event.in_(("PAUSEALL", "UNPAUSEALL")))
                             .order_by(QueueEvent.id))
            return [(event, (data or {}).get("reason", "")) for event, data in rows]
    finally:
        engine.dispose()


async def feature_code(cluster: Cluster, node: Node, code: str) -> None:
    """Agent 1001 dials ``code`` through ``node`` (its own endpoint, authenticated)."""
    host, port = node.sip
    result = await Caller(code, host, port, local_ip="127.0.0.1", from_number=AGENT, dtmf="",
                          hold_seconds=3, auth_user=AGENT, auth_password=cluster.passwords[AGENT]).run()
    assert result.answered, result


async def test_a_pause_through_one_node_holds_the_agent_back_on_the_other(cluster):
    """1001 pauses with the feature code through node A: node B pauses it too (the shared
    presence), so node B's caller waits and the phone does not ring; 1001 unpauses through
    node A and node B's caller reaches it.  The queue log has the pause and the unpause
    once, from node A."""
    a, b = cluster.nodes
    started_events = await asyncio.to_thread(pause_events, cluster.db_url)
    async with both_serving(cluster) as (serve_a, serve_b), \
            phone_on_both(cluster, behaviour="hangup", talk_seconds=TALK_SECONDS, calls=1) as phone:
        await agent_ready_on_both((serve_a, serve_b))
        await feature_code(cluster, a, "*23")
        paused_on_b = await serve_b.wait_for(agent_field("state", AgentState.PAUSED.value),
                                             what="1001 paused on node b")
        who = number()
        call = asyncio.create_task(queue_caller(b, who).run())
        try:
            await serve_b.wait_for(lambda st: any(w["caller_id"] == who for w in st["waiting"]),
                                   what="node b's caller waiting")
            await asyncio.sleep(3 * POLL_SECONDS)   # node b's reads of the shared tables, thrice
            rung_while_paused = phone.count("invite")
            await feature_code(cluster, a, "*24")
            result = await call
            await phone.wait_done(timeout=30)
            record = await wait_record(b.config, who)
        finally:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
    events = (await asyncio.to_thread(pause_events, cluster.db_url))[len(started_events):]

    assert paused_on_b["agents"][AGENT]["pause_reason"] == "phone"
    assert rung_while_paused == 0
    assert phone.count("invite") == 1 and result.answered, result
    assert (record.agent, record.outcome) == (AGENT, CallOutcome.ANSWERED.value), record
    assert record.id.startswith(system_name(b.config) + "-"), record.id
    assert events == [("PAUSEALL", "phone"), ("UNPAUSEALL", "")], events


def set_skill(db_url: str, skill: str, level: int) -> int:
    """Agent 1001's ``skill`` level as the admin web writes it; the level it had."""
    engine = db.make_engine(db_url)
    try:
        with db.make_sessionmaker(engine)() as s, s.begin():
            row = s.get(AgentSkill, (AGENT, skill))
            before, row.level = row.level, level
            return before
    finally:
        engine.dispose()


async def test_an_agent_changed_in_one_nodes_web_is_reloaded_on_the_other(cluster):
    """The admin web of node A changes 1001's skill and tells its serve; node B's serve,
    which the web does not reach, reloads it too (the web counted the change, D43)."""
    a, b = cluster.nodes
    async with both_serving(cluster) as (serve_a, serve_b):
        before = await asyncio.to_thread(set_skill, cluster.db_url, QUEUE, 5)
        try:
            services = build_services(a.config)
            took = await asyncio.to_thread(services.notify_serve, "agents")
            on_a = (await serve_a.status())["agents"][AGENT]["skills"][QUEUE]
            on_b = await serve_b.wait_for(lambda st: st["agents"][AGENT]["skills"][QUEUE] == 5,
                                          what=f"{AGENT}'s new {QUEUE} skill on node b")
        finally:
            await asyncio.to_thread(set_skill, cluster.db_url, QUEUE, before)
    assert before != 5 and took and on_a == 5
    assert on_b["agents"][AGENT]["skills"][QUEUE] == 5


async def test_one_nodes_web_shows_the_callers_waiting_on_the_other(cluster):
    """A caller waits on node B (no agent phone registered anywhere); node A's admin web
    shows it on its wallboard (node B's published picture merged with node A's serve's)."""
    a, b = cluster.nodes
    async with both_serving(cluster) as (serve_a, serve_b):
        who = number()
        call = asyncio.create_task(queue_caller(b, who, hold=20).run())
        try:
            await serve_b.wait_for(lambda st: any(w["caller_id"] == who for w in st["waiting"]),
                                   what="node b's caller waiting")
            live_status = build_services(a.config).live_status
            deadline = time.monotonic() + 10
            while True:
                board = wallboard(await asyncio.to_thread(live_status), {}, StateClock(), 0.0)
                general = next((q for q in board["queues"] if q["queue"] == QUEUE), {})
                if general.get("waiting") == 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            own = await serve_a.status()
        finally:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
    assert own["waiting"] == []                                     # node a's serve has no caller
    assert general["waiting"] == 1 and general["longest_wait"] is not None, board
    assert {row["agent"] for row in board["agents"]} >= {AGENT}

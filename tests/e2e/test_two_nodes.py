"""Two CallPilot nodes on one PostgreSQL database, one agent phone registered with both.

Each node is an Asterisk 22 and a ``callpilot serve`` of its own (own state dir, ports,
secrets); they share one fresh PostgreSQL database (the demo data seeded once, the same SIP
credentials rendered into both Asterisks).  Agent 1001's one phone (one sipp, one local
port) is registered with both Asterisks, so either node can ring it; the other demo agents
stay unregistered (not routable anywhere).

The test: one caller on each node at the same time, both on the straight-to-queue DID.  Two
nodes keep their agents' states in memory, so without something shared both would ring 1001
at once.  The evidence is the phone's own SIP events (one call at a time), the call records
in the shared database (both callers talked to 1001, one on each node) and the database's
agent holds table (nothing left held).

PostgreSQL only: skipped where its server binaries are missing (and no external server is
named by ``CALLPILOT_TEST_DATABASE_URL``).
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from sqlalchemy import select

from callpilot.app import demo
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.call_vocabulary import CallOutcome
from callpilot.infra.db.models import Agent
from testkit import sipua
from testkit.sipua import AgentPhone, Caller, SipEvent
from tests import pg
from tests.e2e.conftest import make_e2e_config
from tests.e2e.helpers import asterisk_running
from tests.e2e.serve_proc import ServeProcess, wait_record

pytestmark = pytest.mark.e2e

QUEUE_DID, QUEUE, AGENT = "803", "general", "1001"     # demo agent 1001 serves general
RING_SECONDS, WRAPUP_SECONDS = 6, 1                    # demo_instance's short ACD timers
TALK_SECONDS = 2.0                                     # the phone hangs up after this
CALLER_HOLD = 40.0                                     # a caller never hangs up first
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
    """Both serves started at once (each migrates the one database at its start), ready."""
    serves = [ServeProcess(node.config).start() for node in cluster.nodes]
    try:
        await asyncio.gather(*(s.wait_ready() for s in serves))
        yield serves[0], serves[1]
    finally:
        await asyncio.gather(*(s.stopped() for s in serves))


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


def agent_routable(status: dict) -> bool:
    return status["agents"][AGENT]["routable"]


def queue_caller(node: Node, who: str) -> Caller:
    a = node.config.asterisk
    return Caller(QUEUE_DID, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=who,
                  dtmf="", hold_seconds=CALLER_HOLD)


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
        await asyncio.gather(*(s.wait_for(agent_routable, timeout=30, what=f"{AGENT} routable")
                               for s in serves))
        callers = {node.name: number() for node in cluster.nodes}
        results = await asyncio.gather(*(queue_caller(node, callers[node.name]).run()
                                         for node in cluster.nodes))
        await phone.wait_done(timeout=30)
        assert overlaps(phone.events) == [], [(e.name, e.call, e.clock_ms) for e in phone.events]
        records = {n: await wait_record(cluster.a.config, who) for n, who in callers.items()}

    assert phone.count("invite") == 2
    assert all(r.answered and r.ended_by == "remote" for r in results), results
    assert records["a"].id != records["b"].id, "two calls, one record"
    for node, record in records.items():
        assert (record.did, record.queue, record.agent, record.outcome) == \
            (QUEUE_DID, QUEUE, AGENT, CallOutcome.ANSWERED.value), f"node {node}: {record}"

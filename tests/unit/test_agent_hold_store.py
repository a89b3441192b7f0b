"""Agent holds on both backends (several nodes on one database): one node at a time holds an
agent, two processes racing for the same agents never both win, a release frees only the
call it names, a dead node's holds lapse."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

from callpilot.infra.db.shared_state import AgentHoldStore, Hold
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)
STALE = timedelta(seconds=15)
AGENTS = [str(1001 + i) for i in range(40)]


def stores(url: str, *nodes: str) -> list[AgentHoldStore]:
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    return [AgentHoldStore(sessions, node) for node in nodes]


def take(store: AgentHoldStore, agent: str, call: str, now: datetime = NOW) -> Hold | None:
    return store.take(agent, call, now, now - STALE)


def test_one_node_holds_an_agent_until_it_releases_that_call(db_url):
    a, b = stores(db_url, "a", "b")
    assert take(a, "1001", "call-1") is None                       # first take: the row is made
    assert take(b, "1001", "call-2") == Hold("1001", "call-1", "a")
    assert take(a, "1001", "call-3") is None                       # a node's own hold: its to move
    assert not a.release("1001", "call-1")                         # a late release of an older call
    assert take(b, "1001", "call-2") == Hold("1001", "call-3", "a")
    assert not b.release("1001", "call-3")                         # not b's to free
    assert a.release("1001", "call-3")
    assert take(b, "1001", "call-2") is None
    assert a.live(NOW - STALE) == [Hold("1001", "call-2", "b")]


def test_a_node_that_stops_renewing_loses_its_holds(db_url):
    a, b = stores(db_url, "a", "b")
    assert take(a, "1001", "call-1") is None and take(a, "1002", "call-2") is None
    later = NOW + timedelta(seconds=10)
    assert a.renew(later) == 2
    assert take(b, "1001", "call-3", NOW + timedelta(seconds=20)) == Hold("1001", "call-1", "a")
    dead = NOW + timedelta(seconds=26)                              # a renewed at +10, then died
    assert {h.agent for h in b.live(dead - STALE)} == set()        # nothing live for b to see
    assert {h.agent for h in a.live(dead - STALE)} == {"1001", "1002"}   # a always sees its own
    assert take(b, "1001", "call-3", dead) is None
    assert a.renew(dead) == 1                                      # a lost 1001, still has 1002
    assert sorted(b.live(dead - STALE), key=lambda h: h.agent) == [Hold("1001", "call-3", "b"),
                                                                   Hold("1002", "call-2", "a")]


def _race(url: str, node: str, ready, queue) -> None:
    [store] = stores(url, node)
    store.live(NOW)                           # connected before the start
    ready.wait(60)
    queue.put((node, [agent for agent in AGENTS if store.take(agent, f"{node}-{agent}", NOW, NOW - STALE) is None]))


def test_two_processes_racing_for_the_same_agents_never_both_hold_one(db_url):
    """Both take every agent, from the same moment, holding what they win: each agent is
    won by exactly one, and the database names that one.  Half the agents have a free row
    already (the conditional UPDATE decides), the others none (the first INSERT decides)."""
    [setup] = stores(db_url, "setup")
    for agent in AGENTS[::2]:
        assert take(setup, agent, "old") is None and setup.release(agent, "old")
    ctx = multiprocessing.get_context("spawn")
    ready, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(db_url, f"node{i}", ready, queue)) for i in range(2)]
    for p in procs:
        p.start()
    wins = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    first, second = wins["node0"], wins["node1"]
    assert not set(first) & set(second), set(first) & set(second)
    assert sorted(first + second) == sorted(AGENTS)
    holders = {hold.agent: hold.node for hold in setup.live(NOW - STALE)}
    assert holders == {**{a: "node0" for a in first}, **{a: "node1" for a in second}}

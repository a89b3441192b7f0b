"""What the admin web changed is reloaded on every node of one database (D43): the web
counts each change (``ChangeLog.bump``), every serve with shared agents follows the counters;
a reload the web asked of this serve is not done twice."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from callpilot.app.change_follow import ChangeFollower
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.infra.db.shared_state import ChangeLog

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)


def change_log(url: str) -> ChangeLog:
    engine = make_engine(url)
    create_schema(engine)
    return ChangeLog(make_sessionmaker(engine))


def test_changes_are_counted_per_kind(db_url):
    log = change_log(db_url)
    assert log.versions() == {}
    assert [log.bump("agents", NOW) for _ in range(3)] == [1, 2, 3]
    assert log.bump("queues", NOW) == 1
    assert log.versions() == {"agents": 3, "queues": 1}


async def test_a_node_reloads_what_another_nodes_web_changed_once(db_url):
    log = change_log(db_url)
    log.bump("queues", NOW)                        # before this serve started: loaded at start
    reloaded: list[str] = []

    async def reload(what):
        reloaded.append(what)
        return {"reloaded": what}
    node = ChangeFollower(log, reload)
    await node.follow()
    assert reloaded == []
    log.bump("agents", NOW)                        # another node's web
    await node.follow()
    await node.follow()
    assert reloaded == ["agents"]
    log.bump("queues", NOW)                        # this node's web: counted, then told here
    await node.noted("queues")
    await node.follow()
    assert reloaded == ["agents"]                  # the web's own request did it
    log.bump("calendars", NOW)                     # not a followed kind
    await asyncio.wait_for(node.follow(), 5)
    assert reloaded == ["agents"]

"""The admin web's picture of a center of several nodes on one database (D43): each node's
serve publishes a compact picture (``node_status``); the web merges its own serve's snapshot
with the others'."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from admin_web.live import StateClock, merge_center, wallboard
from callpilot.app.nodes import CenterPicture
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.infra.db.shared_state import NodeBoard


def agent(state, device="NOT_INUSE", routable=False, held_by=None, queues=("general",)):
    return {"state": state, "device": device, "routable": routable, "held_by": held_by,
            "pause_reason": "", "queues": list(queues)}


LOCAL = {"node": "a", "queues": {"general": {"waiting": 1, "agents_available": 2}},
         "waiting": [{"id": "c1", "queue": "general", "waited": 12.0}],
         "callbacks": {"pending_by_queue": {"general": 2}},
         "agents": {"1001": agent("available", routable=False, held_by="b"),
                    "1002": agent("available", routable=True),
                    "1003": agent("available", device="UNAVAILABLE")}}
OTHER = {"node": "b", "queues": {"general": {"waiting": 2, "agents_available": 1},
                                 "cards": {"waiting": 0, "agents_available": 0}},
         "waiting_by_queue": {"general": {"count": 2, "longest": 30.5}},
         "callbacks": {"pending_by_queue": {"general": 2}},
         "agents": {"1001": agent("on_call"),
                    "1002": agent("available", routable=True),
                    "1003": agent("paused", device="NOT_INUSE")}}


def test_the_center_is_every_nodes_calls_and_each_agent_once():
    merged = merge_center([LOCAL, OTHER])
    assert merged["nodes"] == ["a", "b"]
    assert merged["waiting_by_queue"]["general"] == {"count": 3, "longest": 30.5}
    assert merged["agents"]["1001"]["state"] == "on_call"          # as the node it talks on
    assert merged["agents"]["1003"]["state"] == "paused"           # where its phone is reachable
    assert merged["queues"]["general"]["agents_available"] == 1    # 1002, counted once
    assert merged["callbacks"]["pending_by_queue"] == {"general": 2}   # the same ones, once
    board = wallboard(merged, {}, StateClock(), 0.0)
    general = next(row for row in board["queues"] if row["queue"] == "general")
    assert (general["waiting"], general["longest_wait"], general["callbacks_pending"]) == (3, 30.5, 2)
    assert {row["queue"] for row in board["queues"]} == {"general", "cards"}


def test_one_node_is_its_own_snapshot():
    assert merge_center([LOCAL]) == LOCAL and merge_center([]) is None
    board = wallboard(merge_center([LOCAL]), {}, StateClock(), 0.0)
    assert board["queues"][0]["waiting"] == 1 and board["queues"][0]["longest_wait"] == 12.0


def test_the_web_merges_its_serve_with_the_pictures_other_nodes_published(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    board = NodeBoard(make_sessionmaker(engine))
    now = datetime.now(timezone.utc)
    board.put("a", {"node": "a", "published": True}, now)          # this node's own: left out
    board.put("b", {"node": "b", "older": True}, now - timedelta(minutes=5))
    board.put("b", OTHER, now)                                     # updated in place
    board.put("c", {"node": "c"}, now - timedelta(hours=1))        # gone quiet: left out
    merged = []
    picture = CenterPicture(lambda: LOCAL, board, "a", lambda snaps: merged.append(snaps) or snaps)
    assert picture() == [LOCAL, OTHER]
    board.put("b", {"node": "b", "newer": True}, datetime.now(timezone.utc))
    assert picture() == [LOCAL, OTHER]                              # read at most every second
    assert set(board.fresh(now - timedelta(minutes=1))) == {"a", "b"}

"""Wallboard and agent page: the board built from serve's snapshot and today's stats, the
screen pop from the call records, the event stream, permissions."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest

from admin_web import db, live
from callpilot.infra.db.models import CallRecord, Customer

SNAPSHOT = {
    "queues": {"billing": {"waiting": 2, "agents_available": 0}, "cards": {"waiting": 0, "agents_available": 1}},
    "waiting": [{"id": "c1", "queue": "billing", "state": "queued", "waited": 12.4},
                {"id": "c2", "queue": "billing", "state": "queued", "waited": 3.0}],
    "agents": {"1001": {"state": "on_call", "device": "INUSE", "pause_reason": "", "queues": ["billing"]},
               "1002": {"state": "paused", "device": "NOT_INUSE", "pause_reason": "lunch", "queues": ["cards"]}},
}
STATS = {"billing": {"offered": 10, "service_level": 0.8, "asa": 14.2, "abandon_rate": 0.1}}


def test_board_per_queue_and_agents():
    clock = live.StateClock()
    board = live.wallboard(SNAPSHOT, STATS, clock, now=100.0)
    billing, cards = board["queues"]
    assert billing == {"queue": "billing", "waiting": 2, "longest_wait": 12.4, "agents_available": 0,
                       "offered": 10, "service_level": 0.8, "asa": 14.2, "abandon_rate": 0.1,
                       "callbacks_pending": None}
    assert (cards["waiting"], cards["longest_wait"], cards["offered"]) == (0, None, 0)
    assert [(a["agent"], a["state"], a["pause_reason"]) for a in board["agents"]] == [
        ("1001", "on_call", ""), ("1002", "paused", "lunch")]


def test_time_in_state_counts_from_the_change_seen():
    clock = live.StateClock()
    live.wallboard(SNAPSHOT, {}, clock, now=100.0)
    board = live.wallboard(SNAPSHOT, {}, clock, now=130.0)
    assert board["agents"][0]["seconds_in_state"] == 30 and board["agents"][0]["exact"] is False
    changed = json.loads(json.dumps(SNAPSHOT))
    changed["agents"]["1001"]["state"] = "wrap_up"
    live.wallboard(changed, {}, clock, now=140.0)
    board = live.wallboard(changed, {}, clock, now=145.0)
    assert board["agents"][0]["seconds_in_state"] == 5 and board["agents"][0]["exact"] is True


def test_board_when_serve_is_down():
    board = live.wallboard(None, STATS, live.StateClock(), now=0.0)
    assert board["serve"] == "down" and board["agents"] == []
    assert board["queues"][0]["service_level"] == 0.8


def test_event_stream_sends_changes_and_keepalives():
    values = iter([{"a": 1}, {"a": 1}, {"a": 2}, {"a": 2}, {"a": 2}])
    ticks = count(0, 10)
    stream = live.event_stream(lambda: next(values), heartbeat=15, clock=lambda: next(ticks),
                               sleep=lambda _s: None)
    assert next(stream) == 'data: {"a": 1}\n\n'
    assert next(stream) == 'data: {"a": 2}\n\n'     # the unchanged second value was not sent
    assert next(stream) == ": keep-alive\n\n"


def test_event_stream_survives_a_failing_poll():
    def produce(calls=iter([{"a": 1}, RuntimeError("serve gone"), {"a": 3}])):
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value
    stream = live.event_stream(produce, sleep=lambda _s: None)
    assert next(stream) == 'data: {"a": 1}\n\n'
    assert next(stream) == 'data: {"a": 3}\n\n'


@pytest.fixture
def live_serve(services):
    services.live_status = lambda: SNAPSHOT
    services.queue_stats = lambda since: STATS
    return services


def test_wallboard_page_and_data(client, auth, live_serve):
    auth.login("super")
    assert b'data-stream="/wallboard/stream"' in client.get("/wallboard/").data
    board = client.get("/wallboard/data").get_json()
    assert board["queues"][0]["waiting"] == 2 and board["queues"][0]["asa"] == 14.2


def test_wallboard_stream_pushes_the_board(client, auth, live_serve):
    auth.login("super")
    response = client.get("/wallboard/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    first = next(response.response)
    response.close()
    first = first.decode() if isinstance(first, bytes) else first
    assert first.startswith("data: ")
    assert json.loads(first[6:])["queues"][0]["longest_wait"] == 12.4


def test_agents_cannot_see_the_wallboard(client, auth, live_serve):
    auth.login("agent")
    assert client.get("/wallboard/").status_code == 403
    assert client.get("/wallboard/stream").status_code == 403


def _ringing_call(app, phone="01012345678", **journey):
    now = datetime.now(timezone.utc)
    with app.app_context():
        session = db.get()
        session.add(Customer(phone=phone, name="Kim Minsu", birth_year=now.year - 68, segment="vip", language="ko"))
        session.add(CallRecord(id="call-1", caller_id=phone, did="800", flow="main", state="ringing",
                               queue="billing", agent="1001", started_at=now - timedelta(seconds=30),
                               enqueued_at=now - timedelta(seconds=10), menu_path=["main_menu=1"],
                               journey={"inputs": [{"node": "main_menu", "kind": "speech", "value": "billing",
                                                    "confidence": 0.9}], **journey}))
        session.commit()


def test_screen_pop_of_the_ringing_call(app, services):
    _ringing_call(app)
    with app.app_context():
        pop = live.screen_pop(db.get(), "1001", services.age_band)
        assert live.screen_pop(db.get(), "1002", services.age_band) is None
    assert pop["customer"] == {"name": "Kim Minsu", "age_band": "55+", "segment": "vip", "language": "ko"}
    assert pop["ivr_path"] == ["main_menu=1"] and pop["queue"] == "billing" and pop["state"] == "ringing"
    assert pop["said"] == [{"node": "main_menu", "kind": "speech", "value": "billing", "confidence": 0.9}]


def test_agent_stream_pops_the_profile(app, client, auth, live_serve):
    _ringing_call(app)
    auth.login("agent")
    assert client.get("/agent/").status_code == 200
    response = client.get("/agent/stream", buffered=False)
    first = next(response.response)
    response.close()
    view = json.loads((first.decode() if isinstance(first, bytes) else first)[6:])
    assert view["agent"] == "1001" and view["state"]["state"] == "on_call"
    assert view["call"]["customer"]["name"] == "Kim Minsu"


def test_agent_sets_state_through_serve(client, auth, services):
    sent = []
    services.agent_command = lambda ext, action, reason: (sent.append((ext, action, reason)) or
                                                          (200, {"agent": ext, "state": "paused", "pause_reason": reason}))
    auth.login("agent")
    response = auth.post("/agent/state", {"state": "pause", "reason": "break"}, follow_redirects=True)
    assert b"You are now paused (break)" in response.data
    auth.post("/agent/state", {"state": "available"})
    assert sent == [("1001", "pause", "break"), ("1001", "unpause", "")]
    assert client.post("/agent/state", data={"state": "pause"}).status_code == 400     # no CSRF token


def test_supervisor_has_no_agent_page(client, auth):
    auth.login("super")
    assert client.get("/agent/").status_code == 403


def test_board_counts_pending_callbacks_per_queue():
    snapshot = {**SNAPSHOT, "callbacks": {"pending": 3, "pending_by_queue": {"billing": 2, "loans": 1},
                                          "attempts": {}}}
    board = live.wallboard(snapshot, STATS, live.StateClock(), now=100.0)
    assert {q["queue"]: q["callbacks_pending"] for q in board["queues"]} == {"billing": 2, "cards": 0, "loans": 1}

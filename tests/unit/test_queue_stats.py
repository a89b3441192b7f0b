"""Queue statistics from recorded queue events (acd.queue_report) and `callpilot queues stats`.

Numbers are computed by hand from the scenarios in test_queue_events.py:

  c1 answered after 12.4 s, talked 90.2 s     (within a 20 s target)
  c2 abandoned after 35 s
  c3 rang 1001 without answer, answered after 25 s, talked 60 s

  offered 3, answered 2, abandoned 1, SL 1/3, ASA (12.4 + 25) / 2 = 18.7,
  AHT (90.2 + 60) / 2 = 75.1, longest wait 35, ring-no-answer 1.
"""
from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta, timezone

import pytest

from acd.queue_events import QueueEventRecorder
from acd.queue_report import (
    build_report,
    format_report,
    parse_since,
    queue_stats,
    stats_from_visits,
    visits_from_events,
)
from acd.stats import CallFact, queue_kpis
from callpilot.app import cli
from callpilot.infra.db.models import Agent, Queue, QueueMember
from callpilot.infra.db.queue_events import QueueEventStore
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.app.status import StatusServer
from tests.unit.test_queue_events import (
    T0,
    Clock,
    abandoned_call,
    answered_call,
    at,
    rona_then_answered_call,
)

SALES = {"offered": 3, "answered": 2, "abandoned": 1, "timed_out": 0, "waiting": 0,
         "answered_in_target": 1, "target_seconds": 20, "ring_no_answer": 1}


@pytest.fixture
def record(sessions, tmp_path):
    """record(scenario, ...) runs scenarios through a real recorder, then flushes it."""
    clock = Clock()
    rec = QueueEventRecorder(sessions, tmp_path / "queue_log", clock=clock)

    def run(*scenarios) -> QueueEventRecorder:
        for scenario, kwargs in scenarios:
            scenario(rec, clock, **kwargs)
        rec.flush()
        return rec

    yield run
    rec.close()


def three_calls() -> list:
    return [(answered_call, {}), (abandoned_call, {}), (rona_then_answered_call, {})]


def check(stats: dict, expected: dict, **floats: float) -> None:
    for key, value in expected.items():
        assert stats[key] == value, key
    for key, value in floats.items():
        assert stats[key] == pytest.approx(value), key


def agent_day(rec, clock) -> None:
    clock.at(-60)
    rec.agent_login("1001", ["sales"])
    rec.agent_pause("1001", ["sales"], "coffee")
    rec.agent_unpause("1001", ["sales"])


def test_the_three_calls(record, sessions) -> None:
    record((agent_day, {}), *three_calls())          # agent events do not disturb the stats
    stats = queue_stats(sessions)
    assert list(stats) == ["sales"]
    check(stats["sales"], SALES, service_level=1 / 3, abandon_rate=1 / 3, asa=18.7, aht=75.1,
          longest_wait=35.0)


def test_same_numbers_as_acd_stats_queue_kpis(record, sessions) -> None:
    record(*three_calls())
    facts = [CallFact(0, answered_at=12.4, handle_time=90.2), CallFact(5, abandoned_at=40),
             CallFact(10, answered_at=35, handle_time=60)]
    for target in (0, 12.4, 20, 25, 60):
        kpis, stats = queue_kpis(facts, target), queue_stats(sessions, target_seconds=target)["sales"]
        assert (stats["offered"], stats["answered_in_target"]) == (kpis.offered, kpis.answered_in_target)
        assert stats["service_level"] == pytest.approx(kpis.service_level)
        assert (stats["asa"], stats["aht"]) == (pytest.approx(kpis.asa), pytest.approx(kpis.aht))


def test_target_is_inclusive(record, sessions) -> None:
    record(*three_calls())
    assert queue_stats(sessions, target_seconds=12.4)["sales"]["answered_in_target"] == 1
    assert queue_stats(sessions, target_seconds=12.3)["sales"]["answered_in_target"] == 0
    assert queue_stats(sessions, target_seconds=25)["sales"]["service_level"] == pytest.approx(2 / 3)


def test_queues_are_separate_and_timeouts_count_against_the_service_level(record, sessions) -> None:
    def timeout_then_overflow(rec, clock) -> None:
        clock.at(300)
        rec.enter_queue("c9", "support", "15550009", 1)
        clock.at(420.2)
        rec.exit_with_timeout("c9", "support", position=1, wait_s=120.2, overflow_to="sales")
        rec.enter_queue("c9", "sales", "15550009", 1)
        clock.at(424.2)
        rec.connect("c9", "sales", "1003", wait_s=4.0, ring_s=1.0, agent_channel="cp-agent-c9-1")
        clock.at(454.2)
        rec.complete("c9", "sales", "1003", wait_s=4.0, talk_s=30.0, by="agent")

    record(*three_calls(), (answered_call, {"call": "s1", "queue": "support", "start": 500}),
           (timeout_then_overflow, {}))
    stats = queue_stats(sessions)
    check(stats["support"], {"offered": 2, "answered": 1, "abandoned": 0, "timed_out": 1,
                             "answered_in_target": 1, "ring_no_answer": 0, "abandon_rate": 0.0},
          service_level=0.5, asa=12.4, aht=90.2, longest_wait=120.2)
    check(stats["sales"], {**SALES, "offered": 4, "answered": 3, "answered_in_target": 2},
          service_level=0.5, asa=(12.4 + 25 + 4) / 3, aht=(90.2 + 60 + 30) / 3, longest_wait=35)
    assert list(queue_stats(sessions, queue="support")) == ["support"]
    check(queue_stats(sessions, queue="support")["support"], {"offered": 2, "timed_out": 1})


def test_since_keeps_calls_that_entered_from_then_on(record, sessions) -> None:
    # c1 entered at 0 (ends at 102.6), c2 at 5 (ends at 40), c3 at 10 (ends at 95)
    record(*three_calls())
    check(queue_stats(sessions, since=at(5))["sales"], {"offered": 2, "answered": 1, "abandoned": 1},
          asa=25.0, aht=60.0)
    check(queue_stats(sessions, since=at(10).astimezone(timezone(timedelta(hours=9))))["sales"],
          {"offered": 1, "answered": 1, "abandoned": 0})
    assert queue_stats(sessions, since=at(11)) == {}


def test_waiting_calls_and_longest_wait_with_now(record, sessions) -> None:
    def still_waiting(rec, clock) -> None:
        clock.at(200)
        rec.enter_queue("w1", "sales", "15550010", 1)

    record(*three_calls(), (still_waiting, {}))
    check(queue_stats(sessions)["sales"], {**SALES, "waiting": 1}, longest_wait=35.0)
    check(queue_stats(sessions, now=at(260))["sales"], {**SALES, "waiting": 1}, longest_wait=60.0)


def test_reentry_after_restart_continues_the_visit_and_missing_enterqueue_is_rebuilt() -> None:
    class Ev:
        _id = 0

        def __init__(self, offset, call_id, event, data, agent=None):
            self.at, self.call_id, self.queue = at(offset), call_id, "sales"
            self.event, self.data, self.agent = event, data, agent

    events = [
        Ev(0, "r1", "ENTERQUEUE", {"position": 1}),
        Ev(30, "r1", "ENTERQUEUE", {"position": 1}),          # serve restarted, call re-adopted
        Ev(40, "r1", "CONNECT", {"wait_s": 40.0, "ring_s": 2.0}, "1001"),
        Ev(100, "r1", "COMPLETEAGENT", {"wait_s": 40.0, "talk_s": 60.0}, "1001"),
        # m1's ENTERQUEUE row was lost: rebuilt from the CONNECT's wait
        Ev(50, "m1", "CONNECT", {"wait_s": 8.0, "ring_s": 1.0}, "1002"),
        Ev(80, "m1", "COMPLETECALLER", {"wait_s": 8.0, "talk_s": 30.0}, "1002"),
        # a second visit of the same call to the same queue (after an overflow elsewhere)
        Ev(200, "r1", "ENTERQUEUE", {"position": 1}),
        Ev(210, "r1", "ABANDON", {"position": 1, "orig_position": 1, "wait_s": 10.0}),
    ]
    events.sort(key=lambda e: e.at)
    visits, rna = visits_from_events(events)
    assert [(v.call_id, v.enqueued_at, v.outcome, v.wait_s, v.talk_s, v.agent) for v in visits] == [
        ("r1", at(0), "answered", 40.0, 60.0, "1001"),
        ("m1", at(42), "answered", 8.0, 30.0, "1002"),
        ("r1", at(200), "abandoned", 10.0, None, None),
    ]
    check(stats_from_visits(visits, rna)["sales"], {"offered": 3, "answered": 2, "abandoned": 1,
                                                     "answered_in_target": 1},
          asa=24.0, aht=45.0, longest_wait=40.0)


def test_report_merges_live_agents_or_says_serve_is_down(record, sessions) -> None:
    record(*three_calls())
    stats = queue_stats(sessions)
    members = {"sales": ["1001", "1002", "1003"], "support": ["1001"]}
    live = {"queues": {"sales": {"waiting": 2, "agents_available": 1}},
            "agents": {"1001": {"state": "available"}, "1002": {"state": "paused"},
                       "1003": {"state": "available"}}}
    report = build_report(stats, live, members)
    assert report["serve"] == "up" and list(report["queues"]) == ["sales", "support"]
    assert report["queues"]["sales"]["agents"] == {"available": 2, "paused": 1}
    assert report["queues"]["sales"]["waiting_now"] == 2
    assert report["queues"]["support"]["offered"] == 0
    assert report["queues"]["support"]["agents"] == {"available": 1}
    text = format_report(report)
    assert ("sales: offered 3, answered 2, abandoned 1, timed out 0, SL 33.3%, ASA 18.7s, "
            "AHT 75.1s, longest wait 35.0s, ring-no-answer 1") in text
    assert "now: 2 waiting; agents: 2 available, 1 paused" in text

    down = build_report(stats, None, members, queue="sales")
    assert down["serve"] == "down" and list(down["queues"]) == ["sales"]
    assert down["queues"]["sales"]["agents"] is None
    assert "serve is not running" in format_report(down)


def test_parse_since() -> None:
    assert parse_since("2026-03-02T09:00:00+00:00") == T0
    assert parse_since("2026-03-02T18:00+09:00") == T0
    assert parse_since("2026-03-02T09:00").tzinfo is not None      # local time
    with pytest.raises(ValueError):
        parse_since("yesterday")


# -- the command line ----------------------------------------------------------------------

@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLPILOT_CONFIG", raising=False)
    monkeypatch.delenv("CALLPILOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("CALLPILOT_STATE_DIR", str(tmp_path))
    return tmp_path


def _seed(state_dir) -> None:
    engine = make_engine(f"sqlite:///{state_dir.resolve() / 'callpilot.db'}")
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        s.add(Queue(name="sales"))
        for ext in ("1001", "1002"):
            s.add(Agent(extension=ext, sip_md5_cred="0" * 32))
            s.add(QueueMember(queue_name="sales", agent_extension=ext))
    clock = Clock()
    rec = QueueEventRecorder(sessions, state_dir / "queue_log", clock=clock)
    for scenario in (answered_call, abandoned_call, rona_then_answered_call):
        scenario(rec, clock)
    rec.close()
    assert len(QueueEventStore(sessions).events()) == 9
    engine.dispose()


def test_cli_with_serve_down(state_dir, capsys) -> None:
    _seed(state_dir)
    assert cli.main(["queues", "stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serve"] == "down"
    sales = report["queues"]["sales"]
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (3, 2, 1)
    assert sales["service_level"] == pytest.approx(1 / 3) and sales["agents"] is None

    assert cli.main(["queues", "stats", "--queue", "sales", "--since", "2026-03-02T09:00:05+00:00",
                     "--target", "30"]) == 0
    out = capsys.readouterr().out
    assert "since 2026-03-02T09:00:05+00:00" in out and "target 30s" in out
    assert "sales: offered 2, answered 1, abandoned 1" in out and "SL 50.0%" in out
    assert "serve is not running" in out

    assert cli.main(["queues", "stats", "--since", "last tuesday"]) == 2


def test_cli_merges_live_agents_when_serve_answers(state_dir, capsys) -> None:
    _seed(state_dir)
    snapshot = {"ari": "connected", "ami": "connected", "calls": 2,
                "queues": {"sales": {"waiting": 2, "agents_available": 1}},
                "agents": {"1001": {"state": "on_call", "device": "INUSE", "pause_reason": ""},
                           "1002": {"state": "paused", "device": "NOT_INUSE", "pause_reason": "lunch"}}}
    loop = asyncio.new_event_loop()
    server = StatusServer(state_dir / "serve.sock", lambda: snapshot)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        assert cli.main(["queues", "stats", "--json"]) == 0
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    report = json.loads(capsys.readouterr().out)
    assert report["serve"] == "up"
    assert report["queues"]["sales"]["agents"] == {"on_call": 1, "paused": 1}
    assert report["queues"]["sales"]["waiting_now"] == 2


def test_available_agents_whose_phones_are_unregistered_count_as_unreachable():
    from acd.queue_report import agents_by_state
    live = {"1001": {"state": "available", "routable": True},
            "1002": {"state": "available", "routable": False},
            "1003": {"state": "paused", "routable": False}}
    assert agents_by_state(live, ["1001", "1002", "1003"]) == {
        "available": 1, "paused": 1, "unreachable": 1}

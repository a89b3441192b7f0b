"""QueueEventRecorder: exact queue_log lines and database rows for typical call and agent
sequences; it never raises and never waits for the database."""
from __future__ import annotations

import logging
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

from acd.events import QueueEventSink
from acd.queue_events import QueueEventRecorder
from acd.queue_report import queue_stats
from callpilot.infra.db.queue_events import QueueEventStore
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
E0 = 1772442000                      # T0 as a Unix epoch


class Clock:
    """The recorder's clock, moved by the test: seconds after T0."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, offset: float) -> Clock:
        self.now = T0 + timedelta(seconds=offset)
        return self


# -- the three scenarios (also used by test_queue_stats.py) ------------------------------

def answered_call(rec: QueueEventRecorder, clock: Clock, call: str = "c1", queue: str = "sales",
                  start: float = 0) -> None:
    """Enters at position 1, answered by 1001 after 12.4 s (rang 3.6 s), talks 90.2 s, agent hangs up."""
    clock.at(start)
    rec.enter_queue(call, queue, "15550001", 1)
    clock.at(start + 12.4)
    rec.connect(call, queue, "1001", wait_s=12.4, ring_s=3.6, agent_channel=f"cp-agent-{call}-1")
    clock.at(start + 102.6)
    rec.complete(call, queue, "1001", wait_s=12.4, talk_s=90.2, by="agent")


def abandoned_call(rec: QueueEventRecorder, clock: Clock, call: str = "c2", queue: str = "sales",
                   start: float = 5) -> None:
    """Enters at position 2, moves up to 1, hangs up after 35 s."""
    clock.at(start)
    rec.enter_queue(call, queue, "15550002", 2)
    clock.at(start + 35)
    rec.abandon(call, queue, position=1, orig_position=2, wait_s=35.0)


def rona_then_answered_call(rec: QueueEventRecorder, clock: Clock, call: str = "c3",
                            queue: str = "sales", start: float = 10) -> None:
    """1001 rings 15 s without answer, 1002 answers at 25 s (rang 2 s); caller hangs up after 60 s."""
    clock.at(start)
    rec.enter_queue(call, queue, "15550003", 1)
    clock.at(start + 18)
    rec.ring_no_answer(call, queue, "1001", ring_ms=15000)
    clock.at(start + 25)
    rec.connect(call, queue, "1002", wait_s=25.0, ring_s=2.0, agent_channel=f"cp-agent-{call}-2")
    clock.at(start + 85)
    rec.complete(call, queue, "1002", wait_s=25.0, talk_s=60.0, by="caller")


# -- fixtures ----------------------------------------------------------------------------

@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder(sessions, tmp_path, clock):
    rec = QueueEventRecorder(sessions, tmp_path / "queue_log", clock=clock)
    yield rec
    rec.close()


def lines(tmp_path) -> list[str]:
    return (tmp_path / "queue_log").read_text().splitlines()


def rows(sessions) -> list[tuple]:
    return [(e.at, e.call_id, e.queue, e.agent, e.event, e.data) for e in QueueEventStore(sessions).events()]


def at(offset: float) -> datetime:
    return T0 + timedelta(seconds=offset)


# -- tests -------------------------------------------------------------------------------

def test_recorder_is_a_queue_event_sink(recorder) -> None:
    sink: QueueEventSink = recorder     # structural: checked by type checkers, cheap here
    assert callable(sink.enter_queue) and callable(sink.agent_unpause)


def test_answered_call(recorder, sessions, clock, tmp_path) -> None:
    answered_call(recorder, clock)
    recorder.flush()
    assert lines(tmp_path) == [
        f"{E0}|c1|sales|NONE|ENTERQUEUE||15550001|1",
        f"{E0 + 12}|c1|sales|PJSIP/1001|CONNECT|12|cp-agent-c1-1|4",
        f"{E0 + 102}|c1|sales|PJSIP/1001|COMPLETEAGENT|12|90|1",
    ]
    assert rows(sessions) == [
        (at(0), "c1", "sales", None, "ENTERQUEUE", {"caller_id": "15550001", "position": 1}),
        (at(12.4), "c1", "sales", "1001", "CONNECT",
         {"wait_s": 12.4, "ring_s": 3.6, "agent_channel": "cp-agent-c1-1"}),
        (at(102.6), "c1", "sales", "1001", "COMPLETEAGENT",
         {"wait_s": 12.4, "talk_s": 90.2, "orig_position": 1}),
    ]


def test_abandoned_call(recorder, sessions, clock, tmp_path) -> None:
    abandoned_call(recorder, clock)
    recorder.flush()
    assert lines(tmp_path) == [
        f"{E0 + 5}|c2|sales|NONE|ENTERQUEUE||15550002|2",
        f"{E0 + 40}|c2|sales|NONE|ABANDON|1|2|35",
    ]
    assert rows(sessions) == [
        (at(5), "c2", "sales", None, "ENTERQUEUE", {"caller_id": "15550002", "position": 2}),
        (at(40), "c2", "sales", None, "ABANDON", {"position": 1, "orig_position": 2, "wait_s": 35.0}),
    ]


def test_ring_no_answer_then_answered_call(recorder, sessions, clock, tmp_path) -> None:
    rona_then_answered_call(recorder, clock)
    recorder.flush()
    assert lines(tmp_path) == [
        f"{E0 + 10}|c3|sales|NONE|ENTERQUEUE||15550003|1",
        f"{E0 + 28}|c3|sales|PJSIP/1001|RINGNOANSWER|15000",
        f"{E0 + 35}|c3|sales|PJSIP/1002|CONNECT|25|cp-agent-c3-2|2",
        f"{E0 + 95}|c3|sales|PJSIP/1002|COMPLETECALLER|25|60|1",
    ]
    assert [r[3:5] for r in rows(sessions)] == [
        (None, "ENTERQUEUE"), ("1001", "RINGNOANSWER"), ("1002", "CONNECT"), ("1002", "COMPLETECALLER")]
    assert rows(sessions)[1][5] == {"ring_ms": 15000}


def test_complete_reports_the_original_position(recorder, clock, tmp_path) -> None:
    clock.at(0)
    recorder.enter_queue("c4", "sales", "15550004", 3)
    clock.at(50)
    recorder.connect("c4", "sales", "1001", wait_s=50.0, ring_s=1.0, agent_channel="cp-agent-c4-1")
    recorder.complete("c4", "sales", "1001", wait_s=50.0, talk_s=0.4, by="caller")
    assert lines(tmp_path)[-1] == f"{E0 + 50}|c4|sales|PJSIP/1001|COMPLETECALLER|50|0|3"


def test_exit_with_timeout(recorder, sessions, clock, tmp_path) -> None:
    clock.at(0)
    recorder.enter_queue("c5", "sales", "15550005", 4)
    clock.at(120.2)
    recorder.exit_with_timeout("c5", "sales", position=2, wait_s=120.2, overflow_to="general")
    recorder.flush()
    assert lines(tmp_path)[-1] == f"{E0 + 120}|c5|sales|NONE|EXITWITHTIMEOUT|2|4|120"
    assert rows(sessions)[-1][4:] == ("EXITWITHTIMEOUT", {"position": 2, "orig_position": 4,
                                                          "wait_s": 120.2, "overflow_to": "general"})


def test_agent_session(recorder, sessions, clock, tmp_path) -> None:
    clock.at(0)
    recorder.agent_login("1001", ["support", "sales"])
    clock.at(60)
    recorder.agent_pause("1001", ["sales", "support"], "lunch")
    clock.at(1860)
    recorder.agent_unpause("1001", ["sales", "support"])
    clock.at(3600.4)
    recorder.agent_logout("1001", ["sales", "support"], logged_in_s=3600.4)
    recorder.flush()
    assert lines(tmp_path) == [
        f"{E0}|NONE|NONE|PJSIP/1001|AGENTLOGIN|PJSIP/1001",
        f"{E0}|NONE|sales|PJSIP/1001|ADDMEMBER|",
        f"{E0}|NONE|support|PJSIP/1001|ADDMEMBER|",
        f"{E0 + 60}|NONE|NONE|PJSIP/1001|PAUSEALL|lunch",
        f"{E0 + 60}|NONE|sales|PJSIP/1001|PAUSE|lunch",
        f"{E0 + 60}|NONE|support|PJSIP/1001|PAUSE|lunch",
        f"{E0 + 1860}|NONE|NONE|PJSIP/1001|UNPAUSEALL|",
        f"{E0 + 1860}|NONE|sales|PJSIP/1001|UNPAUSE|",
        f"{E0 + 1860}|NONE|support|PJSIP/1001|UNPAUSE|",
        f"{E0 + 3600}|NONE|sales|PJSIP/1001|REMOVEMEMBER|",
        f"{E0 + 3600}|NONE|support|PJSIP/1001|REMOVEMEMBER|",
        f"{E0 + 3600}|NONE|NONE|PJSIP/1001|AGENTLOGOFF|PJSIP/1001|3600",
    ]
    stored = rows(sessions)
    assert [(r[1], r[2], r[3], r[4]) for r in stored] == [
        (None, None, "1001", "AGENTLOGIN"), (None, "sales", "1001", "ADDMEMBER"),
        (None, "support", "1001", "ADDMEMBER"), (None, None, "1001", "PAUSEALL"),
        (None, "sales", "1001", "PAUSE"), (None, "support", "1001", "PAUSE"),
        (None, None, "1001", "UNPAUSEALL"), (None, "sales", "1001", "UNPAUSE"),
        (None, "support", "1001", "UNPAUSE"), (None, "sales", "1001", "REMOVEMEMBER"),
        (None, "support", "1001", "REMOVEMEMBER"), (None, None, "1001", "AGENTLOGOFF")]
    assert stored[0][5] == {"queues": ["sales", "support"]}
    assert stored[3][5] == {"reason": "lunch", "queues": ["sales", "support"]}
    assert stored[-1][5] == {"queues": ["sales", "support"], "logged_in_s": 3600.4}


def test_rows_roundtrip_on_every_backend(db_url, tmp_path) -> None:
    """JSON data and aware UTC instants on SQLite and PostgreSQL alike."""
    engine = make_engine(db_url)
    create_schema(engine)
    sessions, clock = make_sessionmaker(engine), Clock()
    rec = QueueEventRecorder(sessions, tmp_path / "queue_log", clock=clock)
    try:
        rona_then_answered_call(rec, clock)
        rec.flush()
        stored = QueueEventStore(sessions).events(queue="sales", since=at(20))
        assert [e.event for e in stored] == ["RINGNOANSWER", "CONNECT", "COMPLETECALLER"]
        assert stored[1].at == at(35) and stored[1].at.tzinfo == timezone.utc
        assert stored[1].data == {"wait_s": 25.0, "ring_s": 2.0, "agent_channel": "cp-agent-c3-2"}
        stats = queue_stats(sessions, target_seconds=25)["sales"]
        assert (stats["offered"], stats["answered_in_target"], stats["aht"]) == (1, 1, 60.0)
    finally:
        rec.close()
        engine.dispose()


def test_broken_database_never_raises_and_queue_log_still_written(tmp_path, caplog) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'callpilot.db'}")
    clock = Clock()
    rec = QueueEventRecorder(make_sessionmaker(engine), tmp_path / "queue_log", clock=clock)
    with caplog.at_level(logging.ERROR, logger="acd.queue_events"):
        answered_call(rec, clock)
        rec.agent_pause("1001", ["sales"], "lunch")
        rec.close()
    engine.dispose()
    assert len(lines(tmp_path)) == 5
    failures = [r for r in caplog.records if r.name == "acd.queue_events" and r.exc_info]
    assert len(failures) == 4                      # one per database transaction
    assert "not stored in the database" in failures[0].getMessage()


def test_unwritable_queue_log_still_stores_rows(sessions, tmp_path, caplog) -> None:
    blocked = tmp_path / "queue_log_is_a_directory"
    blocked.mkdir()
    clock = Clock()
    rec = QueueEventRecorder(sessions, blocked, clock=clock)
    with caplog.at_level(logging.ERROR, logger="acd.queue_events"):
        abandoned_call(rec, clock)
        rec.close()
    assert [r[4] for r in rows(sessions)] == ["ENTERQUEUE", "ABANDON"]
    assert sum(1 for r in caplog.records if "not written" in r.getMessage()) == 2


def test_bad_arguments_and_use_after_close_never_raise(recorder, tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="acd.queue_events"):
        recorder.ring_no_answer("c1", "sales", "1001", ring_ms="soon")     # type: ignore[arg-type]
        recorder.agent_login("1001", None)                                  # type: ignore[arg-type]
        recorder.close()
        recorder.enter_queue("late", "sales", "1", 1)
    assert "late" in lines(tmp_path)[-1]           # the queue_log still gets it
    assert "after close" in caplog.text and "ring_no_answer" in caplog.text


def test_sink_calls_do_not_wait_for_a_locked_database(sessions, recorder, tmp_path, clock) -> None:
    """The event loop must never wait on the database: hold SQLite's write lock meanwhile."""
    blocker = sqlite3.connect(tmp_path / "callpilot.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        for i in range(50):
            clock.at(i)
            recorder.enter_queue(f"c{i}", "sales", "15550001", 1)
        elapsed = time.perf_counter() - started
        assert len(lines(tmp_path)) == 50        # the queue_log is written at once
        time.sleep(0.2)
        assert rows(sessions) == []              # the inserts wait for the lock meanwhile
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert elapsed < 0.5, f"50 sink calls took {elapsed:.3f}s with the database locked"
    recorder.flush()
    assert [r[1] for r in rows(sessions)] == [f"c{i}" for i in range(50)]   # in call order

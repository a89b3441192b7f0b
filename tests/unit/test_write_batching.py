"""The write-behind batches (docs/decisions.md D21): what one flush sends to the database,
counted in statements and commits (SQLAlchemy engine events), never timed."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.exc import StatementError

from acd.queue_events import QueueEventRecorder
from callpilot.infra.db.queue_events import QueueEventStore
from callpilot.infra.db.records import RecordBatch, RecordOp, RecordOpKind, RecordWriter
from callpilot.infra.db.session import make_sessionmaker
from tests.unit.test_db_records import engine, store  # noqa: F401  (fixtures: both backends)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


class Statements:
    """Every statement and commit an engine sends, by kind (INSERT/UPDATE/SELECT/...)."""

    def __init__(self, engine) -> None:
        self.kinds: list[str] = []
        self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, statement: str, _params, _context, _many) -> None:
        self.kinds.append(statement.split(None, 1)[0].upper())

    def _commit(self, _conn) -> None:
        self.commits += 1

    def clear(self) -> None:
        self.kinds.clear()
        self.commits = 0

    def writes(self) -> list[str]:
        return [k for k in self.kinds if k in ("INSERT", "UPDATE", "DELETE")]


@pytest.fixture
def counted(engine) -> Statements:
    return Statements(engine)


def op(kind: RecordOpKind, call_id: str, **fields) -> RecordOp:
    return RecordOp(kind, call_id, fields)


def test_batch_merges_updates_of_one_call_later_values_winning() -> None:
    batch = RecordBatch()
    batch.append(op(RecordOpKind.UPDATE, "a", state="ivr", detail="1"))
    batch.append(op(RecordOpKind.UPDATE, "b", detail="b1"))
    batch.append(op(RecordOpKind.UPDATE, "a", detail="2", queue="billing"))
    assert len(batch) == 2
    assert batch.ops[0].fields == {"state": "ivr", "detail": "2", "queue": "billing"}
    assert batch.ops[1].fields == {"detail": "b1"}


def test_batch_never_merges_an_update_into_an_open() -> None:
    """The open writes nothing when the record exists: the update must stay a statement."""
    batch = RecordBatch()
    batch.append(op(RecordOpKind.OPEN, "a", started_at=T0))
    batch.append(op(RecordOpKind.UPDATE, "a", detail="x"))
    batch.append(op(RecordOpKind.UPDATE, "a", queue="q"))
    assert [o.kind for o in batch.ops] == [RecordOpKind.OPEN, RecordOpKind.UPDATE]
    assert batch.ops[1].fields == {"detail": "x", "queue": "q"}


async def test_one_flush_is_one_transaction_with_one_update_per_call(store, counted) -> None:
    writer = RecordWriter(store, delay=60)     # nothing leaves before the awaited update
    try:
        for call in ("a", "b"):
            writer.post_open(call, started_at=T0)
        for node in range(5):                  # five nodes of two calls, interleaved
            for call in ("a", "b"):
                writer.post(call, ivr_place={"node": f"n{node}"}, menu_path=[f"k={node}"])
        counted.clear()
        await writer.update("a", state="queued", queue="billing")
        assert writer.flushes == 1
        assert counted.writes() == ["INSERT", "INSERT", "UPDATE", "UPDATE"]
        assert counted.commits == 1
    finally:
        writer.close()
    a, b = store.get("a"), store.get("b")
    assert (a.ivr_place, a.menu_path, a.state, a.queue) == ({"node": "n4"}, ["k=4"], "queued", "billing")
    assert (b.ivr_place, b.menu_path, b.state) == ({"node": "n4"}, ["k=4"], "ivr")


async def test_update_after_open_of_an_existing_record_still_applies(store, counted) -> None:
    store.open("a", caller_id="first", started_at=T0)
    writer = RecordWriter(store, delay=60)
    try:
        writer.post_open("a", caller_id="second", started_at=T0)
        await writer.update("a", detail="resumed")
    finally:
        writer.close()
    record = store.get("a")
    assert (record.caller_id, record.detail) == ("first", "resumed")


async def test_a_bad_write_fails_alone_and_its_awaiter_hears_it(store, counted, caplog) -> None:
    writer = RecordWriter(store, delay=60)
    try:
        await writer.open("a", started_at=T0)
        await writer.open("b", started_at=T0)
        writer.post("a", detail="kept")
        counted.clear()
        with caplog.at_level(logging.ERROR, logger="callpilot.infra.db.records"):
            with pytest.raises(StatementError, match="naive datetime"):
                await writer.update("b", ended_at=datetime(2026, 12, 1, 9, 5))
        writer.post("b", detail="after")
        await writer.flush()
    finally:
        writer.close()
    assert store.get("a").detail == "kept" and store.get("b").detail == "after"
    assert "call b: record update" in caplog.text


async def test_posts_within_the_delay_share_one_flush(store) -> None:
    writer = RecordWriter(store, delay=0.05)
    try:
        writer.post_open("a", started_at=T0)
        for i in range(10):
            writer.post("a", detail=str(i))
            await asyncio.sleep(0)
        await writer.flush()
        assert writer.flushes == 1
    finally:
        writer.close()
    assert store.get("a").detail == "9"


async def test_queue_events_of_one_flush_are_one_insert(engine, counted, tmp_path) -> None:
    sessions = make_sessionmaker(engine)
    rec = QueueEventRecorder(sessions, tmp_path / "queue_log", clock=lambda: T0)
    try:
        for i in range(6):
            rec.enter_queue(f"c{i}", "sales", f"1555000{i}", i + 1)
        rec.agent_login("1001", ["sales", "support"])          # one post, three rows
        counted.clear()
        rec.flush()
    finally:
        rec.close()
    assert counted.writes() == ["INSERT"] and counted.commits == 1
    stored = QueueEventStore(sessions).events()
    assert [e.event for e in stored] == ["ENTERQUEUE"] * 6 + ["AGENTLOGIN", "ADDMEMBER", "ADDMEMBER"]
    assert [e.call_id for e in stored[:6]] == [f"c{i}" for i in range(6)]


async def test_a_bad_queue_event_does_not_drop_the_flush(engine, tmp_path, caplog) -> None:
    sessions = make_sessionmaker(engine)
    rec = QueueEventRecorder(sessions, tmp_path / "queue_log",
                             clock=lambda: T0 + timedelta(seconds=1))
    try:
        rec.enter_queue("c1", "sales", "15550001", 1)
        naive = {"at": datetime(2026, 12, 1), "call_id": "bad", "queue": "sales", "agent": None,
                 "event": "ENTERQUEUE", "data": {}}                  # a naive instant: refused
        rec._writer.post([naive])
        rec.enter_queue("c2", "sales", "15550002", 2)
        with caplog.at_level(logging.ERROR, logger="acd.queue_events"):
            rec.flush()
    finally:
        rec.close()
    assert [e.call_id for e in QueueEventStore(sessions).events()] == ["c1", "c2"]
    assert "not stored in the database" in caplog.text

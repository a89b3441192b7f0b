"""Call records on SQLite and PostgreSQL: the store, UTC datetimes, JSON columns, the writer."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from callpilot.infra.db.models import CallRecord
from callpilot.infra.db.records import CallRecordStore, RecordWriter
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

KST = timezone(timedelta(hours=9))
T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
JOURNEY = {"flow": "main", "version": 3, "nodes": ["welcome", "menu"],
           "caller": {"name": "김민아", "age_band": "30s"}, "score": 9.5, "ok": True, "none": None}


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine) -> CallRecordStore:
    return CallRecordStore(make_sessionmaker(engine))


def test_open_get_roundtrips_json_and_datetimes(store: CallRecordStore) -> None:
    store.open("c1", caller_id="15550001", did="800", flow="main", started_at=T0,
               menu_path=["menu=1", "sub=2"], journey=JOURNEY)
    record = store.get("c1")
    assert (record.caller_id, record.did, record.flow, record.state) == ("15550001", "800", "main", "ivr")
    assert record.menu_path == ["menu=1", "sub=2"]
    assert record.journey == JOURNEY
    assert record.started_at == T0 and record.started_at.tzinfo == timezone.utc
    assert record.ended_at is None and record.detail == ""


def test_defaults_for_json_columns(store: CallRecordStore) -> None:
    store.open("c1")
    record = store.get("c1")
    assert record.menu_path == [] and record.journey == {}
    assert record.started_at.tzinfo == timezone.utc


def test_datetimes_come_back_as_utc_whatever_zone_went_in(store: CallRecordStore) -> None:
    seoul_noon = datetime(2024, 3, 1, 12, 0, tzinfo=KST)
    store.open("c1", started_at=seoul_noon)
    store.update("c1", answered_at=seoul_noon + timedelta(seconds=30))
    record = store.get("c1")
    assert record.started_at == seoul_noon                       # same instant...
    assert record.started_at.utcoffset() == timedelta(0)         # ...expressed in UTC
    assert record.started_at.hour == 3
    assert record.answered_at - record.started_at == timedelta(seconds=30)


def test_naive_datetimes_are_refused(store: CallRecordStore) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        store.open("c1", started_at=datetime(2024, 3, 1, 12, 0))
    assert store.get("c1") is None


def test_datetime_comparison_in_sql_uses_the_instant(store: CallRecordStore) -> None:
    store.open("early", started_at=T0)
    store.open("late", started_at=T0 + timedelta(minutes=1))
    cutoff = (T0 + timedelta(seconds=30)).astimezone(KST)
    with store.sessions() as s:
        ids = s.scalars(select(CallRecord.id).where(CallRecord.started_at > cutoff)).all()
    assert ids == ["late"]


def test_open_keeps_the_first_record(store: CallRecordStore) -> None:
    store.open("c1", caller_id="first", started_at=T0)
    store.open("c1", caller_id="second", started_at=T0 + timedelta(hours=1))
    record = store.get("c1")
    assert (record.caller_id, record.started_at) == ("first", T0)


def test_open_tolerates_a_concurrent_insert_of_the_same_call(engine, store: CallRecordStore) -> None:
    """Another writer inserts between this writer's existence check and its insert."""
    store.open("c1", caller_id="other node", started_at=T0)

    class StaleSession(Session):
        stale = True

        def get(self, *args, **kwargs):
            if StaleSession.stale:      # the first look happens before the other commit
                StaleSession.stale = False
                return None
            return super().get(*args, **kwargs)

    racing = CallRecordStore(sessionmaker(engine, class_=StaleSession, expire_on_commit=False))
    racing.open("c1", caller_id="this node", started_at=T0 + timedelta(seconds=1))
    assert store.get("c1").caller_id == "other node"


def test_update_sets_fields_and_replaces_json(store: CallRecordStore) -> None:
    store.open("c1", started_at=T0, menu_path=["menu=1"])
    store.update("c1", state="queued", queue="billing", enqueued_at=T0 + timedelta(seconds=20),
                 menu_path=["menu=1", "billing=3"], journey={"outcome": "enqueue"})
    store.update("c1", state="connected", agent="1001", answered_at=T0 + timedelta(seconds=40))
    record = store.get("c1")
    assert (record.state, record.queue, record.agent) == ("connected", "billing", "1001")
    assert record.menu_path == ["menu=1", "billing=3"] and record.journey == {"outcome": "enqueue"}
    assert record.answered_at - record.enqueued_at == timedelta(seconds=20)


def test_update_of_unknown_call_logs_and_writes_nothing(store: CallRecordStore, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="callpilot.infra.db.records"):
        store.update("ghost", state="ended")
    assert store.get("ghost") is None
    assert "ghost" in caplog.text


def test_open_calls_are_open_states_oldest_first_by_instant(store: CallRecordStore) -> None:
    # 10:00 in Seoul is 01:00 UTC: older than 02:00 UTC although its wall clock is later.
    store.open("seoul", state="queued", started_at=datetime(2024, 3, 1, 10, 0, tzinfo=KST))
    store.open("utc", state="ivr", started_at=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))
    store.open("oldest", state="connected", started_at=datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc))
    store.open("ringing", state="ringing", started_at=datetime(2024, 3, 1, 3, 0, tzinfo=timezone.utc))
    store.open("done", state="ended", started_at=datetime(2024, 3, 1, 0, 0, tzinfo=timezone.utc))
    open_calls = store.open_calls()
    assert [r.id for r in open_calls] == ["oldest", "seoul", "utc", "ringing"]
    assert all(r.started_at.tzinfo == timezone.utc for r in open_calls)


def test_records_are_usable_after_their_session_closed(store: CallRecordStore) -> None:
    store.open("c1", started_at=T0, journey={"a": [1, 2]})
    [record] = store.open_calls()
    assert record.journey == {"a": [1, 2]} and record.started_at == T0


async def test_writer_applies_writes_in_call_order(store: CallRecordStore) -> None:
    writer = RecordWriter(store)
    try:
        await writer.open("c1", started_at=T0)
        # Not awaited one by one: the order of submission must still be the order applied.
        await asyncio.gather(*(writer.update("c1", detail=f"step {i}", menu_path=[f"k={i}"])
                               for i in range(40)))
        await writer.update("c1", state="ended", ended_at=T0 + timedelta(minutes=2))
        assert await writer.open_calls() == []
    finally:
        writer.close()
    record = store.get("c1")
    assert (record.detail, record.menu_path, record.state) == ("step 39", ["k=39"], "ended")
    assert record.ended_at == T0 + timedelta(minutes=2)


async def test_two_writers_on_separate_engines_lose_no_update(db_url: str, engine) -> None:
    """Two nodes write the same call at once, each its own columns, and their own calls."""
    create_schema(engine)
    other = make_engine(db_url)
    a = RecordWriter(CallRecordStore(make_sessionmaker(engine)))
    b = RecordWriter(CallRecordStore(make_sessionmaker(other)))
    rounds = 25
    try:
        await asyncio.gather(a.open("shared", started_at=T0), b.open("shared", started_at=T0))

        async def node(writer: RecordWriter, tag: str, column: str) -> None:
            for i in range(rounds):
                await writer.update("shared", **{column: f"{tag}{i}"})
                await writer.open(f"{tag}-{i}", started_at=T0 + timedelta(seconds=i), state="queued")

        await asyncio.gather(node(a, "a", "detail"), node(b, "b", "outcome"))
        calls = await a.open_calls()
    finally:
        a.close()
        b.close()
        other.dispose()
    shared = next(r for r in calls if r.id == "shared")
    assert (shared.detail, shared.outcome) == (f"a{rounds - 1}", f"b{rounds - 1}")
    assert len(calls) == 1 + 2 * rounds

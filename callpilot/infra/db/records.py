"""Call records: written at every state change so a restarted serve can re-adopt calls.

The store is synchronous SQLAlchemy; ``serve`` calls it through ``RecordWriter`` which runs
every write on one dedicated thread, in order, off the event loop.
"""
from __future__ import annotations

import enum
import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from callpilot.infra.db.call_vocabulary import OPEN_STATES
from callpilot.infra.db.models import CallRecord
from callpilot.infra.db.write_behind import WriteBehind

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """Enum members (call_vocabulary) as their stored values; every driver then binds str."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}


class CallRecordStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def open(self, call_id: str, **fields: Any) -> None:
        """Insert the record unless it exists: the first writer wins, even a concurrent one."""
        started_at = fields.pop("started_at", None) or utcnow()
        try:
            with self.sessions.begin() as s:
                if s.get(CallRecord, call_id) is None:
                    s.add(CallRecord(id=call_id, started_at=started_at, **_plain(fields)))
        except IntegrityError:
            if self.get(call_id) is None:
                raise
            logger.info("call %s: record already opened by another writer", call_id)

    def update(self, call_id: str, **fields: Any) -> None:
        """One Core UPDATE (no ORM load): this runs on every call state change."""
        with self.sessions.begin() as s:
            result = s.execute(sa_update(CallRecord).where(CallRecord.id == call_id).values(**_plain(fields)))
            if result.rowcount == 0:
                logger.warning("call %s: no record to update with %s", call_id, sorted(fields))

    def get(self, call_id: str) -> CallRecord | None:
        with self.sessions() as s:
            return s.get(CallRecord, call_id)

    def open_calls(self) -> list[CallRecord]:
        with self.sessions() as s:
            rows = s.scalars(select(CallRecord).where(CallRecord.state.in_([x.value for x in OPEN_STATES]))
                             .order_by(CallRecord.started_at))
            return list(rows)


class RecordWriter:
    """Async facade over the store: writes run in order on one thread (``WriteBehind``).

    ``post``/``post_open`` return at once (the call path never waits on the database);
    awaited calls first push whatever is pending, so every write keeps its order."""

    def __init__(self, store: CallRecordStore, delay: float = 0.02):
        self.store = store
        self._writer = WriteBehind("records", delay)

    async def open(self, call_id: str, **fields: Any) -> None:
        await self._writer.run(lambda: self.store.open(call_id, **fields))

    async def update(self, call_id: str, **fields: Any) -> None:
        await self._writer.run(lambda: self.store.update(call_id, **fields))

    def post_open(self, call_id: str, **fields: Any) -> None:
        self._writer.post(lambda: self.store.open(call_id, **fields))

    def post(self, call_id: str, **fields: Any) -> None:
        self._writer.post(lambda: self.store.update(call_id, **fields))

    async def flush(self) -> None:
        """Wait until every write queued so far is done."""
        await self._writer.run(lambda: None)

    async def get(self, call_id: str) -> CallRecord | None:
        """The record as written so far (pending writes first)."""
        return await self._writer.run(lambda: self.store.get(call_id))

    async def open_calls(self) -> list[CallRecord]:
        return await self._writer.run(self.store.open_calls)

    def close(self) -> None:
        self._writer.close()

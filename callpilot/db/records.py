"""Call records: written at every state change so a restarted serve can re-adopt calls.

The store is synchronous SQLAlchemy; ``serve`` calls it through ``RecordWriter`` which runs
every write on one dedicated thread, in order, off the event loop.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from callpilot.db.models import CallRecord

logger = logging.getLogger(__name__)

OPEN_STATES = ("ivr", "queued", "ringing", "connected")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CallRecordStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def open(self, call_id: str, **fields: Any) -> None:
        """Insert the record unless it exists: the first writer wins, even a concurrent one."""
        started_at = fields.pop("started_at", None) or utcnow()
        try:
            with self.sessions.begin() as s:
                if s.get(CallRecord, call_id) is None:
                    s.add(CallRecord(id=call_id, started_at=started_at, **fields))
        except IntegrityError:
            if self.get(call_id) is None:
                raise
            logger.info("call %s: record already opened by another writer", call_id)

    def update(self, call_id: str, **fields: Any) -> None:
        with self.sessions.begin() as s:
            record = s.get(CallRecord, call_id)
            if record is None:
                logger.warning("call %s: no record to update with %s", call_id, sorted(fields))
                return
            for key, value in fields.items():
                setattr(record, key, value)

    def get(self, call_id: str) -> CallRecord | None:
        with self.sessions() as s:
            return s.get(CallRecord, call_id)

    def open_calls(self) -> list[CallRecord]:
        with self.sessions() as s:
            rows = s.scalars(select(CallRecord).where(CallRecord.state.in_(OPEN_STATES))
                             .order_by(CallRecord.started_at))
            return list(rows)


class RecordWriter:
    """Async facade: every store call runs in order on one worker thread."""

    def __init__(self, store: CallRecordStore):
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")

    async def _run(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def open(self, call_id: str, **fields: Any) -> None:
        await self._run(self.store.open, call_id, **fields)

    async def update(self, call_id: str, **fields: Any) -> None:
        await self._run(self.store.update, call_id, **fields)

    async def open_calls(self) -> list[CallRecord]:
        return await self._run(self.store.open_calls)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

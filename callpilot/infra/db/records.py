"""Call records: written at every state change so a restarted serve can re-adopt calls.

The store is synchronous SQLAlchemy; ``serve`` calls it through ``RecordWriter`` which runs
every write on one dedicated thread, in order, off the event loop.  Writes are SQLAlchemy
Core statements (no ORM unit of work: this runs several times per call), gathered per flush
into one transaction, and the updates of one call within a flush are merged into one
(``RecordBatch``; docs/decisions.md D21).
"""
from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from callpilot.infra.db.call_vocabulary import OPEN_STATES
from callpilot.infra.db.models import CallRecord
from callpilot.infra.db.write_behind import WriteBehind

logger = logging.getLogger(__name__)

CALL_ID_PARAM = "call_record_id"      # the WHERE parameter of the update (no column's name)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """Enum members (call_vocabulary) as their stored values; every driver then binds str."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}


class RecordOpKind(enum.Enum):
    OPEN = "open"          # insert unless the record exists (the first writer wins)
    UPDATE = "update"      # set columns


@dataclass(eq=False)
class RecordOp:
    kind: RecordOpKind
    call_id: str
    fields: dict[str, Any]
    error: BaseException | None = None     # set when this write failed
    merged_into: RecordOp | None = None    # an earlier update of the same call took its fields

    def outcome(self) -> BaseException | None:
        return (self.merged_into or self).error


class RecordBatch:
    """The writes of one flush, in order; an update of a call whose last write in the batch
    is an update is merged into it (later values win), so a call that changes three times
    within a flush costs one UPDATE.  Updates never merge into an open: when the record
    already exists the open writes nothing, and the update must still apply."""

    def __init__(self) -> None:
        self.ops: list[RecordOp] = []
        self._last: dict[str, RecordOp] = {}

    def append(self, op: RecordOp) -> None:
        last = self._last.get(op.call_id)
        if op.kind is RecordOpKind.UPDATE and last is not None and last.kind is RecordOpKind.UPDATE:
            last.fields.update(op.fields)
            op.merged_into = last
            return
        self.ops.append(op)
        self._last[op.call_id] = op

    def __len__(self) -> int:
        return len(self.ops)


class CallRecordStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        self._table = CallRecord.__table__
        self._insert = _insert_if_absent(self.engine.dialect.name, self._table)
        # One statement object; the columns come with the parameters, so SQLAlchemy's
        # compiled cache serves every update of the same column set.
        self._update = self._table.update().where(self._table.c.id == bindparam(CALL_ID_PARAM))

    def open(self, call_id: str, **fields: Any) -> None:
        """Insert the record unless it exists: the first writer wins, even a concurrent one."""
        self._raise_failed(self.apply([RecordOp(RecordOpKind.OPEN, call_id, fields)]))

    def update(self, call_id: str, **fields: Any) -> None:
        """One Core UPDATE (no ORM load): this runs on every call state change."""
        self._raise_failed(self.apply([RecordOp(RecordOpKind.UPDATE, call_id, fields)]))

    def apply(self, ops: list[RecordOp] | RecordBatch) -> list[RecordOp]:
        """Write ``ops`` in order in one transaction; if that fails, each in its own so one
        bad write cannot drop the others.  Returns the ops that failed (``op.error`` set)."""
        ops = ops.ops if isinstance(ops, RecordBatch) else ops
        try:
            with self.engine.begin() as conn:
                for op in ops:
                    self._write(conn, op)
            return []
        except Exception as exc:  # noqa: BLE001  (replayed one by one below, each logged)
            if len(ops) == 1:
                ops[0].error = exc
                return self._log_failed(ops)
        for op in ops:
            try:
                with self.engine.begin() as conn:
                    self._write(conn, op)
            except Exception as exc:  # noqa: BLE001
                op.error = exc
        return self._log_failed([op for op in ops if op.error is not None])

    def _write(self, conn: Connection, op: RecordOp) -> None:
        fields = _plain(op.fields)
        if op.kind is RecordOpKind.OPEN:
            started_at = fields.pop("started_at", None) or utcnow()
            self._open(conn, {"id": op.call_id, "started_at": started_at, **fields})
            return
        result = conn.execute(self._update, {CALL_ID_PARAM: op.call_id, **fields})
        if result.rowcount == 0:
            logger.warning("call %s: no record to update with %s", op.call_id, sorted(fields))

    def _open(self, conn: Connection, values: dict[str, Any]) -> None:
        if self._insert is not None:            # INSERT ... ON CONFLICT DO NOTHING
            conn.execute(self._insert, values)
            return
        exists = conn.execute(select(self._table.c.id).where(self._table.c.id == values["id"]))
        if exists.first() is None:
            conn.execute(insert(self._table).values(**values))

    @staticmethod
    def _log_failed(failed: list[RecordOp]) -> list[RecordOp]:
        for op in failed:
            if isinstance(op.error, IntegrityError) and op.kind is RecordOpKind.OPEN:
                logger.info("call %s: record already opened by another writer", op.call_id)
                op.error = None
                continue
            logger.error("call %s: record %s %s failed: %r", op.call_id, op.kind.value,
                         sorted(op.fields), op.error)
        return [op for op in failed if op.error is not None]

    @staticmethod
    def _raise_failed(failed: list[RecordOp]) -> None:
        if failed and failed[0].error is not None:
            raise failed[0].error

    def get(self, call_id: str) -> CallRecord | None:
        with self.sessions() as s:
            return s.get(CallRecord, call_id)

    def open_calls(self) -> list[CallRecord]:
        with self.sessions() as s:
            rows = s.scalars(select(CallRecord).where(CallRecord.state.in_([x.value for x in OPEN_STATES]))
                             .order_by(CallRecord.started_at))
            return list(rows)


def _insert_if_absent(dialect: str, table):
    """An insert that skips an existing id, on the dialects that say so in SQL."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    return None


class RecordWriter:
    """Async facade over the store: writes run in order on one thread (``WriteBehind``),
    batched per flush (``RecordBatch``).

    ``post``/``post_open`` return at once (the call path never waits on the database);
    ``open``/``update`` join the same batch and wait until it is written (raising their own
    write's failure); reads first push whatever is pending, so every write keeps its order."""

    def __init__(self, store: CallRecordStore, delay: float = 0.02):
        self.store = store
        self._writer: WriteBehind[RecordOp] = WriteBehind("records", store.apply, delay,
                                                          new_batch=RecordBatch)

    @property
    def flushes(self) -> int:
        return self._writer.flushes

    async def open(self, call_id: str, **fields: Any) -> None:
        await self._wait(RecordOp(RecordOpKind.OPEN, call_id, fields))

    async def update(self, call_id: str, **fields: Any) -> None:
        await self._wait(RecordOp(RecordOpKind.UPDATE, call_id, fields))

    async def _wait(self, op: RecordOp) -> None:
        self._writer.post(op)
        written = self._writer.push()
        if written is not None:
            await asyncio.wrap_future(written)
        if op.outcome() is not None:
            raise op.outcome()

    def post_open(self, call_id: str, **fields: Any) -> None:
        self._writer.post(RecordOp(RecordOpKind.OPEN, call_id, fields))

    def post(self, call_id: str, **fields: Any) -> None:
        self._writer.post(RecordOp(RecordOpKind.UPDATE, call_id, fields))

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

"""Queue events in the database (table ``queue_events``, model ``callpilot.infra.db.models.QueueEvent``).

Synchronous SQLAlchemy; ``serve`` reaches it through ``acd.queue_events.QueueEventRecorder``,
which runs every insert on one worker thread.  Queries stay portable (SQLite, PostgreSQL).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import sessionmaker

from callpilot.infra.db.models import QueueEvent

logger = logging.getLogger(__name__)


class QueueEventStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows (QueueEvent column values) in one transaction, in the given order: one
        Core ``executemany`` (no ORM object per row: this runs on the call path)."""
        rows = [dict(row) for row in rows]
        if not rows:
            return
        with self.sessions.kw["bind"].begin() as conn:
            conn.execute(insert(QueueEvent.__table__), rows)

    def events(self, queue: str | None = None, since: datetime | None = None, *,
               calls_only: bool = False) -> list[QueueEvent]:
        """Events oldest first (insertion order within the same instant); ``calls_only``
        leaves out agent events (login, pause, ...: no call id)."""
        query = select(QueueEvent).order_by(QueueEvent.at, QueueEvent.id)
        if calls_only:
            query = query.where(QueueEvent.call_id.is_not(None))
        if queue is not None:
            query = query.where(QueueEvent.queue == queue)
        if since is not None:
            query = query.where(QueueEvent.at >= since)
        with self.sessions() as s:
            return list(s.scalars(query))

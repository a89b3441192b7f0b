"""Named calendars in the database, and a cached book of them for the call server.

Tables: ``calendars`` (name, time zone), ``calendar_days`` (closed days / holidays) and
``calendar_hours`` (weekly opening windows, ``HH:MM`` text: portable to SQLite and
PostgreSQL without a TIME type).  An import replaces a calendar's days and hours in one
transaction, so a reader never sees half of it.
"""
from __future__ import annotations

import logging
import threading
import time as clock
from datetime import date, datetime, time, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import Date, ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callpilot.infra.calendar import Calendar, Hours
from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0


class CalendarRow(Base):
    __tablename__ = "calendars"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    source: Mapped[str] = mapped_column(Text, default="")         # file it was imported from
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CalendarDay(Base):
    __tablename__ = "calendar_days"

    calendar: Mapped[str] = mapped_column(ForeignKey("calendars.name", ondelete="CASCADE"),
                                          primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class CalendarHours(Base):
    __tablename__ = "calendar_hours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    calendar: Mapped[str] = mapped_column(ForeignKey("calendars.name", ondelete="CASCADE"),
                                          index=True)
    weekday: Mapped[int] = mapped_column(Integer)                 # 0 = Monday
    opens: Mapped[str] = mapped_column(String(5))                 # HH:MM
    closes: Mapped[str] = mapped_column(String(5))


class CalendarStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def save(self, calendar: Calendar, *, source: str = "", now: datetime) -> None:
        """Create or replace ``calendar`` (its days and hours) in one transaction."""
        with self.sessions.begin() as s:
            replace(s, calendar, source=source, now=now)

    def names(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(CalendarRow.name).order_by(CalendarRow.name)))

    def get(self, name: str) -> Calendar | None:
        return self.all().get(name) if name else None

    def all(self) -> dict[str, Calendar]:
        with self.sessions() as s:
            rows = s.scalars(select(CalendarRow)).all()
            days = s.execute(select(CalendarDay.calendar, CalendarDay.day, CalendarDay.name)).all()
            hours = s.execute(select(CalendarHours.calendar, CalendarHours.weekday,
                                     CalendarHours.opens, CalendarHours.closes)
                              .order_by(CalendarHours.id)).all()
        closed: dict[str, dict[date, str]] = {r.name: {} for r in rows}
        for cal, day, name in days:
            closed.setdefault(cal, {})[day] = name
        windows: dict[str, list[Hours]] = {r.name: [] for r in rows}
        for cal, weekday, opens, closes in hours:
            windows.setdefault(cal, []).append(Hours(weekday, time.fromisoformat(opens),
                                                     time.fromisoformat(closes)))
        return {r.name: Calendar(r.name, r.timezone, closed[r.name], tuple(windows[r.name]))
                for r in rows}


def replace(s: Session, calendar: Calendar, *, source: str = "", now: datetime) -> None:
    """Create or replace ``calendar`` in the caller's transaction (the web commits it with its
    audit entry)."""
    row = s.get(CalendarRow, calendar.name)
    if row is None:
        s.add(CalendarRow(name=calendar.name, timezone=calendar.timezone, source=source, updated_at=now))
    else:
        row.timezone, row.source, row.updated_at = calendar.timezone, source, now
    s.flush()
    s.execute(delete(CalendarDay).where(CalendarDay.calendar == calendar.name))
    s.execute(delete(CalendarHours).where(CalendarHours.calendar == calendar.name))
    s.add_all(CalendarDay(calendar=calendar.name, day=d, name=n) for d, n in sorted(calendar.closed.items()))
    s.add_all(CalendarHours(calendar=calendar.name, weekday=h.weekday,
                            opens=f"{h.opens:%H:%M}", closes=f"{h.closes:%H:%M}")
              for h in calendar.hours)


def remove_day(s: Session, name: str, day: date, *, now: datetime) -> str | None:
    """Drop one closed day in the caller's transaction; its holiday name, or None if the
    calendar has no such day."""
    row = s.get(CalendarDay, (name, day))
    if row is None:
        return None
    holiday = row.name
    s.delete(row)
    s.get(CalendarRow, name).updated_at = now
    return holiday


class CalendarBook:
    """Every calendar, re-read from the database at most every ``refresh`` seconds.

    Calls ask many times a second and calendars change a few times a year: one small query
    per ``refresh`` on the asking thread, and an import is seen within ``refresh``."""

    def __init__(self, store: CalendarStore, *, refresh: float = REFRESH_SECONDS,
                 monotonic: Callable[[], float] = clock.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.store = store
        self.now = now
        self.refresh = refresh
        self.monotonic = monotonic
        self._calendars: dict[str, Calendar] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def get(self, name: str) -> Calendar | None:
        with self._lock:
            now = self.monotonic()
            if self._loaded_at is None or now - self._loaded_at >= self.refresh:
                self._reload(now)
            return self._calendars.get(name)

    def open_now(self, name: str) -> bool:
        """Is calendar ``name`` open at this instant (in its own time zone)?  An unknown
        calendar is open: a typo must not close a queue."""
        calendar = self.get(name)
        if calendar is None:
            logger.warning("calendar %r is not stored: treated as open", name)
            return True
        return calendar.is_open(self.now().astimezone(ZoneInfo(calendar.timezone)))

    def _reload(self, now: float) -> None:
        try:
            self._calendars = self.store.all()
        except Exception:   # noqa: BLE001  (keep serving the last known calendars)
            logger.exception("calendars not reloaded; keeping %d known", len(self._calendars))
        self._loaded_at = now

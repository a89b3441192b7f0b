"""Named business calendars: closed days (holidays) and weekly opening hours, as data.

A :class:`Calendar` is a value (no I/O, no clock: the caller passes the local time).  It is
read from files by :func:`parse_ics` (iCalendar: every all-day ``VEVENT`` is a closed day)
and :func:`parse_csv` (``date,name`` rows for closed days, ``weekday,open,close`` rows for
opening hours), stored by :mod:`callpilot.infra.db.calendars`, and used by ivr ``branch``
conditions and by the ACD's queue opening hours.

Open at a local time ``t``: not a closed day, and either the calendar has no opening hours
at all (a pure holiday list) or ``t`` falls in one of that weekday's ``[open, close)`` windows.
"""
from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Iterable

logger = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_EVENT_DAYS = 366        # an all-day event longer than a year is a mistake, not a holiday


class CalendarFileError(ValueError):
    """A calendar file that cannot be imported; the message names the line or event."""


@dataclass(frozen=True)
class Hours:
    weekday: int            # 0 = Monday
    opens: time
    closes: time            # closes <= opens: open past midnight


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: str = "UTC"
    closed: dict[date, str] = field(default_factory=dict)    # day -> holiday name
    hours: tuple[Hours, ...] = ()

    def holidays(self) -> frozenset[date]:
        return frozenset(self.closed)

    def is_holiday(self, day: date) -> bool:
        return day in self.closed

    def is_open(self, local: datetime) -> bool:
        """Open at ``local`` (a time in the calendar's zone)?"""
        if self.is_holiday(local.date()):
            return False
        if not self.hours:
            return True
        now = local.time().replace(second=0, microsecond=0)
        return any(_in_window(h, local.weekday(), now) for h in self.hours)


def _in_window(hours: Hours, weekday: int, now: time) -> bool:
    """A window past midnight (fri 22:00-02:00) belongs to the day it opens."""
    if hours.opens < hours.closes:
        return hours.weekday == weekday and hours.opens <= now < hours.closes
    if hours.weekday == weekday:
        return now >= hours.opens
    return (hours.weekday + 1) % 7 == weekday and now < hours.closes


# --------------------------------------------------------------------------- iCalendar


def parse_ics(data: bytes | str) -> dict[date, str]:
    """Closed days from an iCalendar file: each day of every all-day ``VEVENT``.

    Timed events (a meeting at 10:00) say nothing about opening: they are skipped and
    logged.  Recurrence rules are not expanded (a yearly holiday is listed per year)."""
    import icalendar

    try:
        cal = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise CalendarFileError(f"not an iCalendar file: {exc}") from exc
    closed: dict[date, str] = {}
    for event in cal.walk("VEVENT"):
        closed.update(_event_days(event))
    return closed


def _event_days(event) -> dict[date, str]:
    summary = str(event.get("SUMMARY", "")).strip() or "closed"
    start = event.decoded("DTSTART", None)
    if start is None:
        raise CalendarFileError(f"event {summary!r} has no DTSTART")
    if isinstance(start, datetime):
        logger.info("event %r at %s is not all-day: skipped", summary, start)
        return {}
    end = event.decoded("DTEND", None) or start + timedelta(days=1)
    days = (end - start).days if isinstance(end, date) and not isinstance(end, datetime) else 1
    if not 1 <= days <= MAX_EVENT_DAYS:
        raise CalendarFileError(f"event {summary!r}: {days} days from {start}")
    return {start + timedelta(days=i): summary for i in range(days)}


# --------------------------------------------------------------------------- CSV


def parse_csv(text: str) -> tuple[dict[date, str], tuple[Hours, ...]]:
    """``2026-12-25,Christmas`` (closed day) and ``mon,09:00,18:00`` (opening hours) rows.

    Blank lines, ``#`` comments and a header row (``date,name`` / ``weekday,open,close``)
    are skipped; any other bad row raises :class:`CalendarFileError` naming its line."""
    closed: dict[date, str] = {}
    hours: list[Hours] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#") or _is_header(cells):
            continue
        _csv_row(cells, number, closed, hours)
    return closed, tuple(hours)


def _is_header(cells: list[str]) -> bool:
    return cells[0].lower() in ("date", "weekday", "day")


def _csv_row(cells: list[str], number: int, closed: dict[date, str], hours: list[Hours]) -> None:
    key = cells[0].lower()
    if key[:3] in WEEKDAYS and len(cells) == 3:
        hours.append(Hours(WEEKDAYS.index(key[:3]), _hhmm(cells[1], number), _hhmm(cells[2], number)))
        return
    try:
        day = date.fromisoformat(cells[0])
    except ValueError:
        raise CalendarFileError(f"line {number}: expected YYYY-MM-DD,name or "
                                f"weekday,HH:MM,HH:MM, got {','.join(cells)!r}") from None
    closed[day] = cells[1] if len(cells) > 1 and cells[1] else "closed"


def _hhmm(text: str, number: int) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match is None or int(match[1]) > 24 or int(match[2]) > 59:
        raise CalendarFileError(f"line {number}: {text!r} is not HH:MM")
    hour, minute = int(match[1]), int(match[2])
    return time(0, 0) if hour == 24 else time(hour, minute)   # 24:00 = closes at midnight


def hours_text(hours: Iterable[Hours]) -> list[str]:
    """``["mon 09:00-18:00", ...]`` for listings."""
    return [f"{WEEKDAYS[h.weekday]} {h.opens:%H:%M}-{h.closes:%H:%M}" for h in hours]


def read_calendar(name: str, data: bytes, zone: str) -> Calendar:
    """A calendar from the bytes of an iCalendar or CSV file (told apart by content, not by
    file name): the one reader behind ``callpilot calendars import`` and the web's upload.
    Raises :class:`CalendarFileError` (or ``UnicodeDecodeError`` for a CSV not in UTF-8)."""
    if data.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
        return Calendar(name, zone, parse_ics(data))
    closed, hours = parse_csv(data.decode("utf-8-sig"))
    return Calendar(name, zone, closed, hours)


def describe(calendar: Calendar) -> dict:
    """JSON-able: name, time zone, closed days by ISO date, opening hours as text."""
    return {"name": calendar.name, "timezone": calendar.timezone,
            "closed": {d.isoformat(): n for d, n in sorted(calendar.closed.items())},
            "hours": hours_text(calendar.hours)}

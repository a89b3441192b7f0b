"""Calendars (opening hours and closed days): listed with the queues that use them; created,
filled from an uploaded .ics or CSV file (the reader ``callpilot calendars import`` uses,
:func:`callpilot.infra.calendar.read_calendar`) and pruned day by day.  Every change is
audited in the same transaction.  serve re-reads calendars within 10 s (its CalendarBook)."""
from __future__ import annotations

import logging
import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin_web import audit, db
from admin_web.accounts import now
from admin_web.security import require
from callpilot.infra.calendar import CalendarFileError, describe, read_calendar
from callpilot.infra.db.calendars import (CalendarDay, CalendarHours, CalendarRow, CalendarStore, remove_day,
                                          replace)
from callpilot.infra.db.models import Queue

logger = logging.getLogger(__name__)

bp = Blueprint("calendars", __name__, url_prefix="/calendars")

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@bp.get("/")
@require("queues.view")
def index():
    session = db.get()
    rows = []
    for calendar in session.scalars(select(CalendarRow).order_by(CalendarRow.name)):
        hours = session.scalars(select(CalendarHours).where(CalendarHours.calendar == calendar.name)
                                .order_by(CalendarHours.weekday, CalendarHours.opens)).all()
        days = session.scalars(select(CalendarDay).where(CalendarDay.calendar == calendar.name)
                               .where(CalendarDay.day >= date.today()).order_by(CalendarDay.day).limit(20)).all()
        queues = session.scalars(select(Queue.name).where(Queue.calendar == calendar.name)).all()
        rows.append({"calendar": calendar, "queues": queues, "days": days,
                     "hours": [f"{WEEKDAYS[h.weekday]} {h.opens}-{h.closes}" for h in hours]})
    return render_template("calendars/index.html", rows=rows)


def _zone(text: str) -> str | None:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return text


def _calendar(name: str) -> CalendarRow:
    row = db.get().get(CalendarRow, name)
    if row is None:
        abort(404)
    return row


def _before(name: str) -> dict | None:
    calendar = CalendarStore(db.sessions()).get(name)
    return describe(calendar) if calendar is not None else None


@bp.post("/new")
@require("calendars.edit")
def create():
    name, zone = request.form.get("name", "").strip(), _zone(request.form.get("timezone", "UTC").strip())
    session = db.get()
    if not NAME.fullmatch(name) or zone is None or session.get(CalendarRow, name) is not None:
        flash("A new calendar needs an unused name (letters, digits, _ -) and a known time zone.", "error")
        return redirect(url_for("calendars.index")), 303
    session.add(CalendarRow(name=name, timezone=zone, source="", updated_at=now()))
    audit.record(session, "calendar", name, "create", None, {"name": name, "timezone": zone})
    session.commit()
    flash(f"Calendar {name} created: always open until days or hours are imported.", "ok")
    return redirect(url_for("calendars.index")), 303


@bp.post("/<name>/import")
@require("calendars.edit")
def import_file(name: str):
    """Replace the calendar's closed days and hours with the uploaded file's."""
    row = _calendar(name)
    zone = _zone(request.form.get("timezone", "").strip() or row.timezone)
    upload = request.files.get("file")
    if zone is None or upload is None or not upload.filename:
        flash("Choose an .ics or .csv file and a known time zone.", "error")
        return redirect(url_for("calendars.index")), 303
    try:
        calendar = read_calendar(name, upload.read(), zone)
    except (CalendarFileError, UnicodeDecodeError) as exc:
        flash(f"{upload.filename}: {exc}", "error")
        return redirect(url_for("calendars.index")), 303
    before, session = _before(name), db.get()
    replace(session, calendar, source=f"web upload {upload.filename}", now=now())
    audit.record(session, "calendar", name, "import", before, describe(calendar), detail=upload.filename)
    session.commit()
    flash(f"Calendar {name}: {len(calendar.closed)} closed day(s), {len(calendar.hours)} opening "
          f"window(s) from {upload.filename}.", "ok")
    return redirect(url_for("calendars.index")), 303


@bp.post("/<name>/days/<day>/delete")
@require("calendars.edit")
def delete_day(name: str, day: str):
    _calendar(name)
    try:
        when = date.fromisoformat(day)
    except ValueError:
        abort(404)
    session = db.get()
    holiday = remove_day(session, name, when, now=now())
    if holiday is None:
        abort(404)
    audit.record(session, "calendar", name, "delete_day", {"day": day, "name": holiday}, None)
    session.commit()
    flash(f"{day} ({holiday or 'closed'}) removed from {name}.", "ok")
    return redirect(url_for("calendars.index")), 303

"""Calendars (opening hours and closed days), as imported by ``callpilot calendars``: listed
with the queues that use them.  Read-only here: editing arrives with its own issue."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template
from sqlalchemy import select

from admin_web import db
from admin_web.security import require
from callpilot.infra.db.calendars import CalendarDay, CalendarHours, CalendarRow
from callpilot.infra.db.models import Queue

bp = Blueprint("calendars", __name__, url_prefix="/calendars")

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


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

"""Callbacks: the list (filters: queue, state, day requested) with every attempt, and cancel.

Read and written through ``callpilot.infra.db.callback_store`` (the store serve uses), never
with SQL of our own.  Cancel is the store's conditional close (``UPDATE ... WHERE state =
'pending'``): a callback serve has already claimed (``dialling``) is refused with a message,
never changed under serve's feet; serve drops a cancelled one from its line at its next
refresh (``acd.callbacks.REFRESH_SECONDS``).  Agents do not see this page: their own
callback's reason and context reach them on the agent page (screen pop)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from admin_web import audit, db
from admin_web.accounts import now
from admin_web.security import require
from callpilot.infra.db.callback_store import CallbackStore
from callpilot.infra.db.callbacks import Callback, CallbackAttempt, CallbackState
from callpilot.infra.db.models import Queue

logger = logging.getLogger(__name__)

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")

SHOWN = 500
FILTERS = ("queue", "state", "day")


def _store() -> CallbackStore:
    return CallbackStore(db.sessions(), instance="web")


def _filters() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {key: source.get(key, "").strip() for key in FILTERS}


def _day_bounds(day: str) -> tuple[datetime | None, datetime | None]:
    """The day (this server's local time) as an interval of instants; (None, None) if empty."""
    if not day:
        return None, None
    try:
        start = datetime.combine(date.fromisoformat(day), time()).astimezone()
    except ValueError:
        abort(400, f"not a date: {day!r}")
    return start, start + timedelta(days=1)


def _states(state: str) -> list[CallbackState] | None:
    if not state:
        return None
    try:
        return [CallbackState(state)]
    except ValueError:
        abort(400, f"not a callback state: {state!r}")


def find(filters: dict[str, str]) -> tuple[list[Callback], dict[str, list[CallbackAttempt]]]:
    """The callbacks matching the filters (queue, state, day; empty = any), newest first, with
    their attempts: the page and the JSON API read through here."""
    since, until = _day_bounds(filters.get("day", ""))
    store = _store()
    rows = store.search(queue=filters.get("queue") or None, states=_states(filters.get("state", "")),
                        since=since, until=until, limit=SHOWN)
    return rows, store.attempts_of(r.id for r in rows)


@dataclass(frozen=True)
class CancelResult:
    cancelled: bool
    message: str
    callback: dict          # the row after the attempt (audit snapshot columns)


def cancel_pending(callback_id: str, detail: str) -> CancelResult:
    """Cancel a callback if it is still pending (the store's conditional close), with its audit
    entry in the same transaction; a claimed or closed one is refused with the reason.
    404 if there is no such callback.  The page and the JSON API cancel through here."""
    session = db.get()
    before = _snapshot(session.get(Callback, callback_id))
    if before is None:
        abort(404, f"no callback {callback_id}")
    session.rollback()     # end the read: the close's transaction starts with its write (SQLite
    #                        would refuse a write after a read that serve's commit made stale)
    if CallbackStore.close_in(session, callback_id, CallbackState.CANCELLED, now(), detail,
                              only_from=(CallbackState.PENDING,)):
        session.expire_all()
        after = _snapshot(session.get(Callback, callback_id))
        audit.record(session, "callback", callback_id, "cancel", before, after)
        session.commit()                     # the close and its audit entry: one transaction
        return CancelResult(True, f"Callback to {before['number']} ({before['queue']}) cancelled.", after)
    session.rollback()
    current = session.get(Callback, callback_id)
    return CancelResult(False, _refusal(current), _snapshot(current))


@bp.get("/")
@require("callbacks.view")
def index():
    filters = _filters()
    rows, attempts = find(filters)
    queues = db.get().scalars(select(Queue.name).order_by(Queue.name)).all()
    return render_template("callbacks/index.html", rows=rows, attempts=attempts,
                           filters=filters, queues=queues, states=[s.value for s in CallbackState],
                           shown=SHOWN)


@bp.post("/<callback_id>/cancel")
@require("callbacks.cancel")
def cancel(callback_id: str):
    result = cancel_pending(callback_id, f"cancelled in the web by {g.user.username}")
    flash(result.message, "ok" if result.cancelled else "error")
    return redirect(url_for("callbacks.index", **{k: v for k, v in _filters().items() if v}))


def _refusal(callback: Callback) -> str:
    if callback.state == CallbackState.DIALLING.value:
        return (f"Callback to {callback.number} is being dialled right now: it cannot be cancelled. "
                f"If it fails and goes back to the line, cancel it then.")
    return f"Callback to {callback.number} is already {callback.state}: nothing to cancel."


def _snapshot(callback: Callback | None) -> dict | None:
    if callback is None:
        return None
    return audit.snapshot(callback, exclude=("ticket", "open_key", "dialling_number"))

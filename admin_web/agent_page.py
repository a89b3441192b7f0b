"""The agent's own page: their state (available / pause with a reason / log out) and, as
their phone rings, the caller's profile, IVR path and what the caller said (screen pop)."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from admin_web import db, live, pop_context
from admin_web.security import require
from admin_web.wallboard import sse

logger = logging.getLogger(__name__)

bp = Blueprint("agent", __name__, url_prefix="/agent")

ACTIONS = {"available": "unpause", "pause": "pause", "login": "login", "logout": "logout"}


def _extension() -> str:
    if not g.user.agent_extension:
        abort(403, "this login has no agent extension")
    return g.user.agent_extension


def _producer(app, extension: str):
    services = app.extensions["callpilot_services"]
    sessions = db.sessions()

    def produce():
        snapshot = services.live_status() if services.live_status else None
        state = (snapshot or {}).get("agents", {}).get(extension)
        with sessions() as session:
            pop = live.screen_pop(session, extension, services.age_band)
        pop = pop_context.with_context(sessions, extension, pop, services.age_band)
        return {"serve": "up" if snapshot else "down", "agent": extension, "state": state, "call": pop}
    return produce


@bp.get("/")
@require("agent.page")
def index():
    return render_template("agent/index.html", extension=_extension())


@bp.get("/stream")
@require("agent.page")
def stream():
    return sse(live.event_stream(_producer(current_app._get_current_object(), _extension())))


@bp.post("/state")
@require("agent.page")
def set_state():
    extension = _extension()
    action = ACTIONS.get(request.form.get("state", ""))
    command = current_app.extensions["callpilot_services"].agent_command
    if action is None or command is None:
        abort(400)
    status, body = command(extension, action, request.form.get("reason", "").strip())
    if status == 200:
        flash(f"You are now {body.get('state')}{' (' + body['pause_reason'] + ')' if body.get('pause_reason') else ''}.", "ok")
    else:
        flash(f"Not changed: {body.get('error', status)}", "error")
    return redirect(url_for("agent.index"))

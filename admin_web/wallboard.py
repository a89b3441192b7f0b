"""Wallboard: per queue waiting, longest wait, today's service level, ASA, abandon rate;
agents by state with time in state.  Pushed to the page by server-sent events."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, jsonify, render_template

from admin_web import live, streams
from admin_web.security import require

logger = logging.getLogger(__name__)

bp = Blueprint("wallboard", __name__, url_prefix="/wallboard")

CLOCK = "callpilot_state_clock"


def producer(app):
    """A function giving the board now; statistics refreshed every STATS_SECONDS."""
    services = app.extensions["callpilot_services"]
    clock = app.extensions.setdefault(CLOCK, live.StateClock())
    cache = {"at": float("-inf"), "stats": {}}

    def produce():
        now = time.monotonic()
        if services.queue_stats and now - cache["at"] >= live.STATS_SECONDS:
            cache["stats"], cache["at"] = services.queue_stats(_midnight()), now
        snapshot = services.live_status() if services.live_status else None
        return live.wallboard(snapshot, cache["stats"], clock, now)
    return produce


def _midnight() -> datetime:
    """Start of today (local time of the server), for 'today' statistics."""
    return datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


@bp.get("/")
@require("wallboard.view")
def index():
    return render_template("wallboard/index.html")


@bp.get("/data")
@require("wallboard.view")
def data():
    return jsonify(producer(current_app._get_current_object())())


@bp.get("/stream")
@require("wallboard.view")
def stream():
    produce = producer(current_app._get_current_object())
    return sse(live.event_stream(produce))


def sse(events) -> Response:
    """The stream, if the cap on open streams allows one more (``admin_web.streams``)."""
    return streams.event_stream_response(events)

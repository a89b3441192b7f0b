"""A cap on the live pages' event streams, so they never take every WSGI thread.

waitress serves each request from a fixed pool of threads, and a server-sent-event stream
holds its thread as long as the page stays open.  Without a cap, as many open wallboards and
agent pages as there are threads stop the whole admin UI (logins, forms, the API).  The gate
lets at most ``limit`` streams run at once (``callpilot web`` sets it to the thread count
minus the threads kept for ordinary requests, ``web_threads`` / ``web_live_streams`` in the
config); the next page gets ``503`` with ``Retry-After`` and its script tries again later.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from flask import Flask, Response, current_app

logger = logging.getLogger(__name__)

GATE = "callpilot_stream_gate"
RETRY_AFTER_SECONDS = 10


class StreamGate:
    """A counting gate that never blocks: a slot now, or no."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)


def init_app(app: Flask, limit: int) -> None:
    app.extensions[GATE] = StreamGate(limit)


def event_stream_response(events: Iterable[str]) -> Response:
    """``events`` as ``text/event-stream`` if a stream slot is free, else 503 + Retry-After.

    The slot is given back when the server closes the response (the page went away, or the
    client disconnected and the next write failed), whether or not the stream ever started."""
    gate: StreamGate = current_app.extensions[GATE]
    if not gate.try_enter():
        logger.warning("live page refused: %d event streams open (the cap keeps threads for "
                       "other requests)", gate.open)
        return Response("too many live pages open; retrying\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})
    response = Response(events, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(_once(gate.leave))
    return response


def _once(action):
    done = threading.Event()

    def run() -> None:
        if not done.is_set():
            done.set()
            action()
    return run

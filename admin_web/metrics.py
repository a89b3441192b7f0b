"""Prometheus metrics at ``/metrics``: the web's own figures (requests, logins, live-page
stream slots) and, read from serve's snapshot at scrape time, serve's gauges under serve's own
names (built by the function serve's endpoint uses, passed in as ``WebServices.serve_gauges``).
Every name is listed in docs/metrics.md.  Scraped with a bearer token (``admin_web.tokens``)
of a user who may see the wallboard, or with such a user's session."""
from __future__ import annotations

import logging
from typing import Any, Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from admin_web import db, streams, tokens
from admin_web.security import can

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

REGISTRY = "callpilot_metrics_registry"
LOGINS = "callpilot_metrics_logins"


class ServeCollector:
    """``callpilot_serve_up`` (the web's view: does serve answer on its status socket) and,
    when it does, serve's gauges from its snapshot, taken when scraped."""

    def __init__(self, services: Any) -> None:
        self._services = services      # admin_web.services.WebServices

    def collect(self) -> Iterator[Any]:
        status = self._services.local_status or self._services.live_status   # this node's serve
        live = status() if status else None
        up = GaugeMetricFamily("callpilot_serve_up", "1 when serve answers the web on its status socket")
        up.add_metric([], 1 if live else 0)
        yield up
        if live and self._services.serve_gauges is not None:
            yield from self._services.serve_gauges(live)


class StreamSlotCollector:
    """The live pages' event-stream slots (``admin_web.streams``): open and the cap."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        gate = self._app.extensions.get(streams.GATE)
        if gate is None:
            return
        for name, doc, value in (("callpilot_web_live_streams", "live-page event streams open", gate.open),
                                 ("callpilot_web_live_streams_limit", "the cap on open live-page streams",
                                  gate.limit)):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    registry.register(ServeCollector(app.extensions["callpilot_services"]))
    registry.register(StreamSlotCollector(app))
    requests = Counter("callpilot_web_requests", "admin web requests", ["blueprint", "status"], registry=registry)
    app.extensions[LOGINS] = Counter("callpilot_web_logins", "login attempts on the admin web", ["outcome"],
                                     registry=registry)
    app.extensions[REGISTRY] = registry

    @app.after_request
    def count(response):
        requests.labels(request.blueprint or "app", str(response.status_code)).inc()
        return response


def count_login(outcome: str) -> None:
    """``ok`` or ``refused`` (wrong username or password)."""
    current_app.extensions[LOGINS].labels(outcome).inc()


@bp.get("/metrics")
def metrics():
    header = request.headers.get("Authorization", "")
    user = tokens.user_for(db.get(), header[7:].strip()) if header.startswith("Bearer ") else g.get("user")
    if user is None:
        abort(401)
    if not can(user.role, "wallboard.view"):
        abort(403)
    return Response(generate_latest(current_app.extensions[REGISTRY]), mimetype=CONTENT_TYPE_LATEST)

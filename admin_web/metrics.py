"""Prometheus metrics at ``/metrics``: serve's live state read at scrape time (calls,
waiting calls and longest wait per queue, agents by state, ARI/AMI connection) and the web's
own request counts.  Scraped with a bearer token (``admin_web.tokens``) of a user who may see
the wallboard, or with such a user's session."""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Callable, Iterator, Mapping

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter as PromCounter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from admin_web import db, tokens
from admin_web.security import can

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

REGISTRY = "callpilot_metrics_registry"
AGENT_STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused")


class ServeCollector:
    """Gauges from serve's snapshot (``callpilot status --json``), taken when scraped."""

    def __init__(self, services: Any) -> None:
        self._services = services      # admin_web.services.WebServices

    def collect(self) -> Iterator[Any]:
        live_status: Callable[[], Mapping[str, Any] | None] | None = self._services.live_status
        live = live_status() if live_status else None
        up = GaugeMetricFamily("callpilot_serve_up", "1 when serve answers on its status socket")
        up.add_metric([], 1 if live else 0)
        yield up
        if not live:
            return
        yield from _connections(live)
        yield from _queues(live)
        yield _agents(live)


def _connections(live: Mapping[str, Any]) -> Iterator[Any]:
    calls = GaugeMetricFamily("callpilot_calls", "calls in serve (IVR and ACD)")
    calls.add_metric([], live.get("calls", 0))
    yield calls
    for link in ("ari", "ami"):
        gauge = GaugeMetricFamily(f"callpilot_{link}_connected", f"1 when serve's {link.upper()} link is connected")
        gauge.add_metric([], 1 if live.get(link) == "connected" else 0)
        yield gauge
    connects = CounterMetricFamily("callpilot_ari_connects", "ARI events socket (re)connections since serve started")
    connects.add_metric([], live.get("ari_connects", 0))
    yield connects


def _queues(live: Mapping[str, Any]) -> Iterator[Any]:
    waiting = GaugeMetricFamily("callpilot_queue_waiting", "calls waiting in the queue", labels=["queue"])
    longest = GaugeMetricFamily("callpilot_queue_longest_wait_seconds", "longest current wait", labels=["queue"])
    available = GaugeMetricFamily("callpilot_queue_agents_available", "routable agents of the queue", labels=["queue"])
    waits: dict[str, list[float]] = {}
    for call in live.get("waiting", []):
        waits.setdefault(call.get("queue") or "?", []).append(float(call.get("waited", 0.0)))
    for name, queue in sorted(live.get("queues", {}).items()):
        waiting.add_metric([name], queue.get("waiting", 0))
        available.add_metric([name], queue.get("agents_available", 0))
        longest.add_metric([name], max(waits.get(name, [0.0])))
    yield from (waiting, longest, available)


def _agents(live: Mapping[str, Any]) -> GaugeMetricFamily:
    agents = GaugeMetricFamily("callpilot_agents", "agents by ACD state", labels=["state"])
    counts = Counter(str(a.get("state")) for a in live.get("agents", {}).values())
    for state in sorted(set(AGENT_STATES) | set(counts)):
        agents.add_metric([state], counts.get(state, 0))
    return agents


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    registry.register(ServeCollector(app.extensions["callpilot_services"]))
    requests = PromCounter("callpilot_web_requests", "admin web requests", ["blueprint", "status"],
                           registry=registry)
    app.extensions[REGISTRY] = registry

    @app.after_request
    def count(response):
        requests.labels(request.blueprint or "app", str(response.status_code)).inc()
        return response


@bp.get("/metrics")
def metrics():
    header = request.headers.get("Authorization", "")
    user = tokens.user_for(db.get(), header[7:].strip()) if header.startswith("Bearer ") else g.get("user")
    if user is None:
        abort(401)
    if not can(user.role, "wallboard.view"):
        abort(403)
    return Response(generate_latest(current_app.extensions[REGISTRY]), mimetype=CONTENT_TYPE_LATEST)

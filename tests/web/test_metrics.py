"""Prometheus metrics: serve's live state at scrape time and the web's request counts."""
from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from callpilot.app.serve_metrics import SnapshotCollector

from tests.web.test_live import SNAPSHOT


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _token(auth, user: str) -> str:
    auth.login(user)
    html = auth.post("/tokens/", {"name": "prometheus"}).get_data(as_text=True)
    auth.logout()
    return re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)


def test_metrics_from_serves_snapshot(client, auth, services):
    services.live_status = services.local_status = lambda: {**SNAPSHOT, "call_states": {"queued": 2, "connected": 1},
                                    "ari": "connected", "ami": "auth_failed", "ari_connects": 2}
    token = _token(auth, "super")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = _samples(response.get_data(as_text=True))
    assert samples[("callpilot_serve_up", ())] == 1
    assert samples[("callpilot_calls_in_progress", (("state", "queued"),))] == 2
    assert samples[("callpilot_ari_connection_state", (("state", "connected"),))] == 1
    assert samples[("callpilot_ami_connection_state", (("state", "auth_failed"),))] == 1
    assert samples[("callpilot_ari_connects_total", ())] == 2
    assert samples[("callpilot_queue_waiting_calls", (("queue", "billing"),))] == 2
    assert samples[("callpilot_queue_longest_wait_seconds", (("queue", "billing"),))] == 12.4
    assert samples[("callpilot_queue_agents_available", (("queue", "cards"),))] == 1
    assert samples[("callpilot_agents", (("state", "on_call"),))] == 1
    assert samples[("callpilot_agents", (("state", "paused"),))] == 1
    assert samples[("callpilot_agents", (("state", "available"),))] == 0
    assert samples[("callpilot_web_requests_total", (("blueprint", "auth"), ("status", "200")))] >= 1


def _names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text) if not f.name.endswith("_created")}


def test_serve_figures_have_serves_names(client, auth, services):
    """The web's serve gauges are serve's own, name for name (the old web-only names are gone)."""
    live = {**SNAPSHOT, "ari": "connected", "ami": "connected"}
    services.live_status = services.local_status = lambda: live
    auth.login("admin")
    web = _names(client.get("/metrics").get_data(as_text=True))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: live))
    serve = _names(generate_latest(registry).decode())
    assert serve and serve <= web
    web_own = {"callpilot_serve_up", "callpilot_web_requests", "callpilot_web_logins",
               "callpilot_web_live_streams", "callpilot_web_live_streams_limit"}
    assert web - serve == web_own
    assert not {"callpilot_queue_waiting", "callpilot_calls", "callpilot_ari_connected"} & web


def test_the_webs_own_figures(client, auth, services):
    services.live_status = services.local_status = lambda: None
    auth.login("admin", "wrong-password")
    auth.login("admin")
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert samples[("callpilot_web_logins_total", (("outcome", "refused"),))] == 1
    assert samples[("callpilot_web_logins_total", (("outcome", "ok"),))] == 1
    assert samples[("callpilot_web_live_streams", ())] == 0
    assert samples[("callpilot_web_live_streams_limit", ())] >= 1


def test_serve_down(client, auth, services):
    services.live_status = services.local_status = lambda: None
    auth.login("admin")
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert samples[("callpilot_serve_up", ())] == 0
    assert not any(name.startswith(("callpilot_queue", "callpilot_calls")) for name, _ in samples)


def test_serve_up_is_this_nodes_serve_not_the_centers_picture(client, auth, services):
    """Several nodes: the wallboard's picture may come from the other nodes while this node's
    serve is down; the web's metrics say so (serve_up 0, no serve figures)."""
    services.live_status = lambda: {"node": "b", "queues": {"billing": {"waiting": 1, "agents_available": 0}},
                                    "waiting_by_queue": {"billing": {"count": 1, "longest": 3.0}}}
    services.local_status = lambda: None
    auth.login("admin")
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert samples[("callpilot_serve_up", ())] == 0
    assert not any(name.startswith(("callpilot_queue", "callpilot_calls")) for name, _ in samples)


def test_metrics_need_a_token_or_a_session(client, auth):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer cp_nope"}).status_code == 401
    token = _token(auth, "agent")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 403

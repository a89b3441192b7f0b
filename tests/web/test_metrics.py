"""Prometheus metrics: serve's live state at scrape time and the web's request counts."""
from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

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
    services.live_status = lambda: {**SNAPSHOT, "calls": 3, "ari": "connected", "ami": "backoff",
                                    "ari_connects": 2}
    token = _token(auth, "super")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = _samples(response.get_data(as_text=True))
    assert samples[("callpilot_serve_up", ())] == 1
    assert samples[("callpilot_calls", ())] == 3
    assert samples[("callpilot_ari_connected", ())] == 1 and samples[("callpilot_ami_connected", ())] == 0
    assert samples[("callpilot_ari_connects_total", ())] == 2
    assert samples[("callpilot_queue_waiting", (("queue", "billing"),))] == 2
    assert samples[("callpilot_queue_longest_wait_seconds", (("queue", "billing"),))] == 12.4
    assert samples[("callpilot_queue_agents_available", (("queue", "cards"),))] == 1
    assert samples[("callpilot_agents", (("state", "on_call"),))] == 1
    assert samples[("callpilot_agents", (("state", "paused"),))] == 1
    assert samples[("callpilot_agents", (("state", "available"),))] == 0
    assert samples[("callpilot_web_requests_total", (("blueprint", "auth"), ("status", "200")))] >= 1


def test_serve_down(client, auth, services):
    services.live_status = lambda: None
    auth.login("admin")
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert samples[("callpilot_serve_up", ())] == 0
    assert ("callpilot_calls", ()) not in samples


def test_metrics_need_a_token_or_a_session(client, auth):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer cp_nope"}).status_code == 401
    token = _token(auth, "agent")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 403

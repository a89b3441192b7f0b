"""JSON API: tokens (shown once, hashed, revocable), session + CSRF header, roles, audit,
and the OpenAPI file generated from the code."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.models import Agent, Queue
from callpilot.infra.db.web_users import ApiToken, AuditEntry
from tests.web.conftest import csrf_token


def _token(client, auth, user="admin", name="crm") -> str:
    auth.login(user)
    html = auth.post("/tokens/", {"name": name}).get_data(as_text=True)
    token = re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)
    auth.logout()
    return token


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def queue(app):
    with app.app_context():
        db.get().merge(Queue(name="billing", title="Billing"))   # merge: shared with other data fixtures
        db.get().commit()


def test_openapi_is_served_and_lists_the_resources(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"] == "3.0.3" and spec["info"]["title"] == "CallPilot"
    for path in ("/api/v1/flows", "/api/v1/flows/{name}/draft", "/api/v1/flows/{name}/publish",
                 "/api/v1/queues/{name}", "/api/v1/agents", "/api/v1/wallboard"):
        assert path in spec["paths"], path
    assert "patch" in spec["paths"]["/api/v1/queues/{name}"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_no_credentials_is_401_json(client):
    response = client.get("/api/v1/flows")
    assert response.status_code == 401 and response.get_json()["code"] == 401


def test_token_is_shown_once_and_stored_hashed(app, client, auth):
    token = _token(client, auth)
    assert token.startswith("cp_") and len(token) > 40
    with app.app_context():
        row = db.get().scalars(select(ApiToken)).one()
    assert row.token_sha256 != token and token not in row.token_sha256
    auth.login()
    assert token not in client.get("/tokens/").get_data(as_text=True)


def test_token_reads_and_publishes_flows(client, auth, services):
    token = _token(client, auth)
    flows = client.get("/api/v1/flows", headers=_bearer(token)).get_json()
    assert flows == [{"name": "main", "live_version": 1, "problems": 0}]
    draft = client.get("/api/v1/flows/main", headers=_bearer(token)).get_json()["draft"]
    draft["nodes"]["to_billing"]["priority"] = 500
    problems = client.put("/api/v1/flows/main/draft", json={"document": draft}, headers=_bearer(token)).get_json()
    assert problems == [{"node_id": "to_billing", "reason": "priority must be within 0..100, got 500"}]
    refused = client.post("/api/v1/flows/main/publish", json={}, headers=_bearer(token))
    assert refused.status_code == 409 and "priority" in refused.get_json()["message"]
    draft["nodes"]["to_billing"]["priority"] = 7
    assert client.put("/api/v1/flows/main/draft", json={"document": draft}, headers=_bearer(token)).get_json() == []
    published = client.post("/api/v1/flows/main/publish", json={"comment": "api"}, headers=_bearer(token))
    assert published.status_code == 201 and published.get_json() == {"version": 2}
    assert services.flows.document("main", 2)["nodes"]["to_billing"]["priority"] == 7
    rolled = client.post("/api/v1/flows/main/rollback", json={"version": 1}, headers=_bearer(token))
    assert rolled.get_json() == {"version": 3}


def test_token_has_its_users_role(client, auth):
    token = _token(client, auth, "super")
    assert client.get("/api/v1/queues", headers=_bearer(token)).status_code == 200
    response = client.post("/api/v1/flows/main/publish", json={}, headers=_bearer(token))
    assert response.status_code == 403 and "flows.publish" in response.get_json()["message"]


def test_revoked_token_is_refused(app, client, auth):
    token = _token(client, auth)
    auth.login()
    with app.app_context():
        token_id = db.get().scalars(select(ApiToken.id)).one()
    auth.post(f"/tokens/{token_id}/revoke")
    auth.logout()
    assert client.get("/api/v1/flows", headers=_bearer(token)).status_code == 401
    assert client.get("/api/v1/flows", headers=_bearer("cp_made_up")).status_code == 401


def test_patch_queue_validated_and_audited(app, client, auth):
    token = _token(client, auth)
    bad = client.patch("/api/v1/queues/billing", json={"sl_target_percent": 150}, headers=_bearer(token))
    assert bad.status_code == 422
    bad_steps = client.patch("/api/v1/queues/billing", json={"steps": [{"conditions": [], "expiry": 0}]},
                             headers=_bearer(token))
    assert bad_steps.status_code == 422 and "expiry" in bad_steps.get_json()["message"]
    ok = client.patch("/api/v1/queues/billing", json={"sl_target_seconds": 30}, headers=_bearer(token))
    assert ok.status_code == 200 and ok.get_json()["sl_target_seconds"] == 30
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "queue")).one()
    assert (entry.actor, entry.before["sl_target_seconds"], entry.after["sl_target_seconds"]) == ("admin", 20, 30)


def test_patch_queue_callback_offer(app, client, auth):
    token = _token(client, auth)
    for bad in ({"callback_offer_key": "x"}, {"callback_offer_after": -5}, {"callback_customer_first": "maybe"}):
        assert client.patch("/api/v1/queues/billing", json=bad, headers=_bearer(token)).status_code == 422
    ok = client.patch("/api/v1/queues/billing", json={"callback_offer_key": "#", "callback_offer_after": 90,
                                                      "callback_customer_first": True}, headers=_bearer(token))
    body = ok.get_json()
    assert ok.status_code == 200
    assert (body["callback_offer_key"], body["callback_offer_after"], body["callback_customer_first"]) == ("#", 90, True)
    cleared = client.patch("/api/v1/queues/billing", json={"callback_offer_key": None}, headers=_bearer(token))
    assert cleared.get_json()["callback_offer_key"] is None


def test_session_calls_need_the_csrf_header(client, auth):
    auth.login()
    assert client.get("/api/v1/queues").status_code == 200
    refused = client.patch("/api/v1/queues/billing", json={"title": "x"})
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["message"]
    token = csrf_token(client)
    allowed = client.patch("/api/v1/queues/billing", json={"title": "x"}, headers={"X-CSRFToken": token})
    assert allowed.status_code == 200 and allowed.get_json()["title"] == "x"


def test_agents_list(app, client, auth):
    with app.app_context():
        db.get().add(Agent(extension="1001", name="Lee", sip_md5_cred="0" * 32, languages=["ko"]))
        db.get().commit()
    token = _token(client, auth, "super")
    agents = client.get("/api/v1/agents", headers=_bearer(token)).get_json()
    assert agents == [{"extension": "1001", "name": "Lee", "birth_year": None, "languages": ["ko"],
                       "skills": {}, "queues": [], "auto_login": True, "wrapup_seconds": None}]
    assert "sip_md5_cred" not in str(agents)


def test_pages_keep_html_errors(client, auth):
    auth.login()
    response = client.get("/flows/nope/")
    assert response.status_code == 404 and response.mimetype == "text/html"

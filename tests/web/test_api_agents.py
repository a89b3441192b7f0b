"""JSON API for agents: create (SIP password in the create answer only) and edit, with the
agent form's checks, audited, and serve told exactly as the form tells it (``notify_serve``
-> ``POST /reload/agents``; recorded here, the e2e tests drive the real one)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent
from callpilot.infra.db.web_users import AuditEntry
from tests.web.conftest import csrf_token
from tests.web.test_agents import agents  # noqa: F401  (autouse fixture: queues billing, cards; agent 1001)
from tests.web.test_agents import _agent
from tests.web.test_api import _bearer, _token


@pytest.fixture
def notified(services):
    calls: list[str] = []
    services.notify_serve = lambda what: calls.append(what) or True
    return calls


def test_openapi_documents_create_and_edit(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/v1/agents"]
    assert {"patch", "delete"} <= set(paths["/api/v1/agents/{extension}"])
    created = paths["/api/v1/agents"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/AgentCreated")


def test_create_shows_the_sip_password_once_and_notifies(app, client, auth, notified):
    headers = _bearer(_token(client, auth))
    response = client.post("/api/v1/agents", headers=headers, json={
        "extension": "1010", "name": "Park", "languages": ["KO", "en"], "skills": {"Billing": 4},
        "queues": ["billing"], "wrapup_seconds": 15})
    body = response.get_json()
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    assert (body["extension"], body["name"], body["languages"], body["skills"], body["queues"]) == (
        "1010", "Park", ["ko", "en"], {"billing": 4}, ["billing"])      # lower case, as the form stores them
    assert body["serve_reloaded"] is True and body["sip_realm"] == "callpilot"
    assert len(body["sip_password"]) >= 16
    assert _agent(app, "1010").sip_md5_cred == sip_md5_cred("1010", body["sip_password"])
    assert body["sip_password"] not in client.get("/api/v1/agents", headers=headers).get_data(as_text=True)
    assert notified == ["agents"]
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity_id == "1010")).one()
    assert (entry.actor, entry.action, entry.after["skills"]) == ("admin", "create", {"billing": 4})
    assert "sip_md5_cred" not in entry.after


@pytest.mark.parametrize("body, status", [
    ({"extension": "1001"}, 409),                                   # taken
    ({"extension": "1x"}, 422),
    ({"extension": "1011", "skills": {"billing": 9}}, 422),         # the form's level 1-5
    ({"extension": "1011", "skills": {"bill ing": 2}}, 422),
    ({"extension": "1011", "languages": ["korean!"]}, 422),
    ({"extension": "1011", "birth_year": 1700}, 422),
    ({"extension": "1011", "queues": ["nope"]}, 422),
])
def test_create_refusals_change_nothing_and_notify_nobody(app, client, auth, notified, body, status):
    response = client.post("/api/v1/agents", headers=_bearer(_token(client, auth)), json=body)
    assert response.status_code == status, response.get_json()
    with app.app_context():
        assert db.get().scalars(select(Agent.extension)).all() == ["1001"]
    assert notified == []


def test_edit_with_the_forms_checks_audited_and_notified(app, client, auth, notified):
    headers = _bearer(_token(client, auth, "super"))
    bad = client.patch("/api/v1/agents/1001", headers=headers, json={"skills": {"billing": 0}})
    assert bad.status_code == 422 and "level 1-5" in str(bad.get_json()["errors"]["json"]["skills"])
    assert notified == []
    ok = client.patch("/api/v1/agents/1001", headers=headers,
                      json={"skills": {"billing": 3, "cards": 1}, "queues": ["billing", "cards"]})
    assert ok.status_code == 200 and ok.get_json()["serve_reloaded"] is True
    agent = _agent(app)
    assert (agent.name, agent.skill_map, agent.queue_names) == ("Lee", {"billing": 3, "cards": 1}, ["billing", "cards"])
    assert notified == ["agents"]
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "agent")).one()
    assert (entry.actor, entry.before["skills"], entry.after["skills"]) == ("super", {"billing": 2}, {"billing": 3, "cards": 1})
    assert client.patch("/api/v1/agents/9999", headers=headers, json={"name": "x"}).status_code == 404


def test_serve_down_is_said(client, auth, services):
    services.notify_serve = lambda what: False
    response = client.patch("/api/v1/agents/1001", headers=_bearer(_token(client, auth)), json={"name": "Kim"})
    assert response.status_code == 200 and response.get_json()["serve_reloaded"] is False


@pytest.mark.parametrize("user, create, edit", [("admin", 201, 200), ("super", 403, 200), ("agent", 403, 403)])
def test_permissions_per_role(client, auth, notified, user, create, edit):
    headers = _bearer(_token(client, auth, user))
    assert client.post("/api/v1/agents", headers=headers, json={"extension": "1020"}).status_code == create
    assert client.patch("/api/v1/agents/1001", headers=headers, json={"name": "Kim"}).status_code == edit


def test_session_calls_need_the_csrf_header(app, client, auth, notified):
    auth.login()
    assert client.post("/api/v1/agents", json={"extension": "1020"}).status_code == 400
    assert client.patch("/api/v1/agents/1001", json={"name": "Kim"}).status_code == 400
    assert notified == []
    headers = {"X-CSRFToken": csrf_token(client)}
    assert client.post("/api/v1/agents", json={"extension": "1020"}, headers=headers).status_code == 201
    assert notified == ["agents"]


@pytest.mark.parametrize("user, status", [("admin", 200), ("super", 403), ("agent", 403)])
def test_delete_by_api_is_admin_only_audited_and_notified(app, client, auth, notified, user, status):
    headers = _bearer(_token(client, auth, user))
    response = client.delete("/api/v1/agents/1001", headers=headers)
    assert response.status_code == status
    with app.app_context():
        present = db.get().get(Agent, "1001") is not None
        entries = db.get().scalars(select(AuditEntry).where(AuditEntry.action == "delete")).all()
    assert present is (status != 200)
    assert notified == (["agents"] if status == 200 else [])
    assert [(e.actor, e.before["skills"], e.after) for e in entries] == ([("admin", {"billing": 2}, None)]
                                                                          if status == 200 else [])
    if status == 200:
        assert response.get_json() == {"serve_reloaded": True}
        assert client.delete("/api/v1/agents/1001", headers=headers).status_code == 404

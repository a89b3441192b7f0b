"""Agents page: skills and levels, birth year, languages, queues; SIP password shown once."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent, AgentSkill, Queue, QueueMember
from callpilot.infra.db.web_users import AuditEntry

FORM = {"name": "Kim", "birth_year": "1990", "languages": "ko, en", "skills": "billing:3, cards:1",
        "queues": ["billing", "cards"], "auto_login": "y", "wrapup_seconds": ""}


@pytest.fixture(autouse=True)
def agents(app):
    with app.app_context():
        session = db.get()
        for name in ("billing", "cards"):
            session.merge(Queue(name=name, title=name))   # merge: shared with other data fixtures
        session.add(Agent(extension="1001", name="Lee", sip_md5_cred=sip_md5_cred("1001", "x"),
                          birth_year=1980, languages=["ko"], skills=[AgentSkill(skill="billing", level=2)],
                          queues=[QueueMember(queue_name="billing")]))
        session.commit()


def _agent(app, ext="1001") -> Agent:
    with app.app_context():
        agent = db.get().get(Agent, ext)
        agent.skill_map = {s.skill: s.level for s in agent.skills}
        agent.queue_names = sorted(m.queue_name for m in agent.queues)
        return agent


def test_list_and_edit_page(client, auth):
    auth.login("super")
    html = client.get("/agents/").get_data(as_text=True)
    assert 'href="/agents/1001"' in html and "billing:2" in html
    html = client.get("/agents/1001").get_data(as_text=True)
    assert 'value="billing:2"' in html and 'value="1980"' in html


def test_edit_skills_languages_queues_and_audit(app, client, auth):
    auth.login("super")
    assert auth.post("/agents/1001", FORM).status_code == 302
    agent = _agent(app)
    assert (agent.name, agent.birth_year, agent.languages) == ("Kim", 1990, ["ko", "en"])
    assert agent.skill_map == {"billing": 3, "cards": 1}
    assert agent.queue_names == ["billing", "cards"]
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "agent")).one()
    assert entry.before["skills"] == {"billing": 2} and entry.after["skills"] == {"billing": 3, "cards": 1}
    assert entry.after["queues"] == ["billing", "cards"]
    assert "sip_md5_cred" not in entry.before and "sip_md5_cred" not in entry.after


@pytest.mark.parametrize("field, value", [("skills", "billing:9"), ("skills", "billing"),
                                          ("languages", "korean!"), ("birth_year", "1700")])
def test_bad_values_are_refused(app, auth, field, value):
    auth.login()
    response = auth.post("/agents/1001", {**FORM, field: value})
    assert response.status_code == 400
    assert _agent(app).skill_map == {"billing": 2}


def test_new_agent_gets_a_sip_password_shown_once(app, client, auth):
    auth.login()
    response = auth.post("/agents/new", {"extension": "1010", "name": "Park"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r'<code id="sip-password">([^<]+)</code>', html).group(1)
    assert len(password) >= 16
    agent = _agent(app, "1010")
    assert agent.sip_md5_cred == sip_md5_cred("1010", password)
    assert password not in client.get("/agents/1010").get_data(as_text=True)
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity_id == "1010")).one()
    assert entry.action == "create" and password not in str(entry.after)


def test_new_sip_password_replaces_the_old_one(app, auth):
    auth.login()
    html = auth.post("/agents/1001/sip-password").get_data(as_text=True)
    password = re.search(r'<code id="sip-password">([^<]+)</code>', html).group(1)
    assert _agent(app).sip_md5_cred == sip_md5_cred("1001", password)


def test_supervisor_edits_but_cannot_create_agents_or_credentials(auth):
    auth.login("super")
    assert auth.post("/agents/new", {"extension": "1011"}).status_code == 403
    assert auth.post("/agents/1001/sip-password").status_code == 403


def test_agent_role_cannot_edit_agents(client, auth):
    auth.login("agent")
    assert client.get("/agents/").status_code == 403
    assert auth.post("/agents/1001", FORM).status_code == 403


@pytest.fixture
def notified(services):
    """serve's reload endpoint, recorded (the e2e test drives the real one)."""
    calls: list[str] = []
    services.notify_serve = lambda what: calls.append(what) or True
    return calls


def test_every_agent_change_notifies_serve(client, auth, notified):
    auth.login("admin")
    saved = auth.post("/agents/1001", FORM, follow_redirects=True)
    assert b"serve and the phones use it now" in saved.data
    created = auth.post("/agents/new", {"extension": "1012", "name": "Han"}).get_data(as_text=True)
    assert "serve and the phones use it now" in created
    auth.post("/agents/1012/sip-password")
    assert notified == ["agents", "agents", "agents"]


def test_a_refused_create_does_not_notify(client, auth, notified):
    auth.login("admin")
    auth.post("/agents/new", {"extension": "1001"})          # taken
    auth.post("/agents/1001", {**FORM, "skills": "billing:9"})  # invalid
    assert notified == []


def test_serve_down_is_said(client, auth, services):
    services.notify_serve = lambda what: False
    auth.login("admin")
    saved = auth.post("/agents/1001", FORM, follow_redirects=True)
    assert b"serve did not confirm" in saved.data


def test_delete_page_is_admin_only_audited_and_notified(app, client, auth, notified):
    auth.login("super")
    assert 'id="delete-agent"' not in client.get("/agents/1001").get_data(as_text=True)
    assert auth.post("/agents/1001/delete").status_code == 403
    assert notified == [] and _agent(app) is not None
    auth.logout()
    auth.login("admin")
    assert 'id="delete-agent"' in client.get("/agents/1001").get_data(as_text=True)
    assert client.post("/agents/1001/delete").status_code == 400          # no CSRF token
    deleted = auth.post("/agents/1001/delete", follow_redirects=True)
    assert b"serve and the phones use it now" in deleted.data
    assert notified == ["agents"]
    with app.app_context():
        assert db.get().get(Agent, "1001") is None
        assert db.get().scalars(select(QueueMember)).all() == []
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.action == "delete")).one()
    assert (entry.actor, entry.entity_id, entry.before["queues"], entry.after) == ("admin", "1001", ["billing"], None)

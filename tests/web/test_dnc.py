"""Do-not-call list: E.164 numbers, per campaign or all, audited; roles."""
from __future__ import annotations

from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.campaigns import GLOBAL_DNC, DncEntry
from callpilot.infra.db.web_users import AuditEntry


def _entries(app):
    with app.app_context():
        return [(e.phone, e.scope, e.reason) for e in db.get().scalars(select(DncEntry).order_by(DncEntry.phone))]


def test_add_normalised_and_remove_audited(app, client, auth):
    auth.login("super")
    response = auth.post("/dnc/", {"phone": "+82 10-1234-5678", "scope": GLOBAL_DNC, "reason": "asked"},
                         follow_redirects=True)
    assert b"will not be called by any campaign" in response.data
    assert _entries(app) == [("+821012345678", GLOBAL_DNC, "asked")]
    assert b"+821012345678" in client.get("/dnc/").data
    auth.post("/dnc/remove", {"phone": "+821012345678", "scope": GLOBAL_DNC})
    assert _entries(app) == []
    with app.app_context():
        actions = [(e.action, e.entity_id) for e in db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "dnc"))]
    assert actions == [("add", "+821012345678"), ("remove", "+821012345678")]


def test_invalid_number_is_refused(app, auth):
    auth.login()
    response = auth.post("/dnc/", {"phone": "12345", "scope": GLOBAL_DNC}, follow_redirects=True)
    assert b"international form" in response.data and _entries(app) == []


def test_agents_cannot_see_or_change_the_list(client, auth):
    auth.login("agent")
    assert client.get("/dnc/").status_code == 403
    assert auth.post("/dnc/", {"phone": "+821012345678"}).status_code == 403

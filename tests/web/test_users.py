"""Web users page: admin only; generated password shown once; deactivation; audit."""
from __future__ import annotations

import re

from sqlalchemy import select

from admin_web import db
from admin_web.security import verify_password
from callpilot.infra.db.web_users import AuditEntry, WebUser


def _user(app, name):
    with app.app_context():
        return db.get().scalar(select(WebUser).where(WebUser.username == name))


def test_admin_creates_a_user_with_a_generated_password(app, client, auth):
    auth.login()
    html = auth.post("/users/", {"username": "kim", "role": "agent", "agent_extension": "1002"}).get_data(as_text=True)
    password = re.search(r'<code id="new-password">([^<]+)</code>', html).group(1)
    user = _user(app, "kim")
    assert (user.role, user.agent_extension) == ("agent", "1002")
    assert verify_password(user.password_hash, password)
    auth.logout()
    assert auth.login("kim", password).headers["Location"] == "/agent/"
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "user")).one()
    assert "password_hash" not in entry.after and entry.after["role"] == "agent"


def test_unknown_role_is_refused(app, auth):
    auth.login()
    response = auth.post("/users/", {"username": "x", "role": "root"}, follow_redirects=True)
    assert b"unknown role" in response.data and _user(app, "x") is None


def test_deactivated_user_cannot_log_in_and_is_logged_out(app, client, auth):
    auth.login()
    auth.post(f"/users/{_user(app, 'super').id}/active", {"active": "0"})
    assert _user(app, "super").active is False
    auth.logout()
    auth.login("super")
    assert client.get("/flows/").status_code == 302


def test_only_admins_manage_users(client, auth):
    auth.login("super")
    assert client.get("/users/").status_code == 403
    assert auth.post("/users/", {"username": "y", "role": "admin"}).status_code == 403

"""Login, logout, roles, CSRF, rate limiting, session cookie and security headers."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_web import accounts, db
from admin_web.security import CSP, PERMISSIONS, hash_password, verify_password
from callpilot.infra.db.web_users import WebUser


def test_login_page_and_redirect_when_anonymous(client):
    assert client.get("/auth/login").status_code == 200
    response = client.get("/flows/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_login_logout(client, auth):
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/flows/"
    assert client.get("/flows/").status_code == 200
    auth.logout()
    assert client.get("/flows/").status_code == 302


def test_wrong_password_is_refused(client, auth):
    response = auth.login("admin", "nope")
    assert response.status_code == 200
    assert b"Wrong username or password" in response.data
    assert client.get("/flows/").status_code == 302


def test_login_redirect_stays_on_this_site(client, auth):
    token = __import__("tests.web.conftest", fromlist=["csrf_token"]).csrf_token(client)
    response = client.post("/auth/login?next=//evil.example/x",
                           data={"username": "admin", "password": "admin-pw-1", "csrf_token": token})
    assert response.headers["Location"] == "/flows/"


def test_passwords_are_argon2_hashes(app):
    with app.app_context():
        user = db.get().scalar(select(WebUser).where(WebUser.username == "admin"))
    assert user.password_hash.startswith("$argon2id$")
    assert "admin-pw-1" not in user.password_hash
    assert verify_password(user.password_hash, "admin-pw-1")
    assert not verify_password(user.password_hash, "admin-pw-2")
    assert not verify_password("not a hash", "x")


def test_first_admin_is_generated_once(app):
    with app.app_context():
        session = db.get()
        assert accounts.bootstrap_admin(session) is None        # accounts exist already
        session.query(WebUser).delete()
        session.commit()
        password = accounts.bootstrap_admin(session)
        assert password and len(password) >= 16
        admin = session.scalar(select(WebUser).where(WebUser.username == "admin"))
        assert admin.role == "admin" and verify_password(admin.password_hash, password)
        assert accounts.bootstrap_admin(session) is None        # printed once only


def test_form_post_without_csrf_token_is_rejected(client, auth):
    auth.login()
    response = client.post("/flows/new", data={"name": "sneaky"})
    assert response.status_code == 400
    assert b"CSRF" in response.data
    assert client.get("/flows/sneaky/").status_code == 404


def test_login_without_csrf_token_is_rejected(client):
    response = client.post("/auth/login", data={"username": "admin", "password": "admin-pw-1"})
    assert response.status_code == 400
    assert client.get("/flows/").status_code == 302       # not logged in


def test_login_attempts_are_rate_limited(client, auth):
    for _ in range(5):
        assert auth.login("admin", "wrong").status_code == 200
    response = auth.login("admin")                         # even the right password
    assert response.status_code == 429
    assert client.get("/flows/").status_code == 302


@pytest.mark.parametrize("user, path, status", [
    ("admin", "/flows/", 200), ("admin", "/audit/", 200),
    ("super", "/flows/", 200), ("super", "/audit/", 200),
    ("agent", "/flows/", 403), ("agent", "/audit/", 403), ("agent", "/flows/main/", 403),
])
def test_pages_per_role(client, auth, user, path, status):
    auth.login(user)
    assert client.get(path).status_code == status


def test_supervisor_cannot_edit_or_publish_flows(client, auth):
    auth.login("super")
    assert auth.post("/flows/new", {"name": "x"}).status_code == 403
    assert auth.post("/flows/main/publish").status_code == 403
    assert auth.post("/flows/main/rollback/1").status_code == 403


def test_roles_are_ordered_by_what_they_may_do():
    assert PERMISSIONS["supervisor"] < PERMISSIONS["admin"]
    assert "flows.publish" not in PERMISSIONS["supervisor"]
    assert PERMISSIONS["agent"].isdisjoint(PERMISSIONS["admin"])


def test_session_cookie_flags(client, auth):
    response = auth.login()
    cookie = next(v for k, v in response.headers.items()
                  if k == "Set-Cookie" and v.startswith("callpilot_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie                           # plain HTTP on loopback
    assert "Expires=" in cookie                             # idle timeout (permanent session)


def test_secure_cookie_behind_tls(tmp_path, services, db_file):
    from admin_web.app import create_app
    from callpilot.infra.config import Config
    app = create_app(Config(state_dir=tmp_path, web_behind_tls=True), services,
                     {"SECRET_KEY": "k", "DATABASE_URL": db_file})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    response = app.test_client().get("/auth/login")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "max-age" in response.headers["Strict-Transport-Security"]
    db.dispose(app)


def test_session_expires_after_max_age(app, client, auth):
    auth.login()
    with client.session_transaction() as session:
        session["login_at"] -= app.config["SESSION_MAX_HOURS"] * 3600 + 1
    assert client.get("/flows/").status_code == 302


def test_idle_timeout_is_configured(app):
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 30 * 60


def test_security_headers(client):
    response = client.get("/auth/login")
    assert response.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_inline_script_in_pages(client, auth):
    auth.login()
    for path in ("/auth/login", "/flows/", "/flows/main/", "/flows/main/?node=main_menu",
                 "/flows/main/versions", "/audit/"):
        html = client.get(path).get_data(as_text=True)
        for tag in html.split("<script")[1:]:
            head, _, rest = tag.partition(">")
            assert "src=" in head or 'type="application/json"' in head, (path, head)
        assert " on" + "click=" not in html and "javascript:" not in html


def test_hash_password_salts():
    assert hash_password("same") != hash_password("same")

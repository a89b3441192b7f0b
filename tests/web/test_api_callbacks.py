"""JSON API for callbacks: list with the page's filters, cancel through the page's conditional
close (a callback serve has claimed is refused with 409), roles, tokens, CSRF, audit."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.web_users import AuditEntry
from tests.web.conftest import csrf_token
from tests.web.test_api import _bearer, _token
from tests.web.test_callbacks import NOW, callbacks, store  # noqa: F401  (fixtures)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [row["id"] for row in response.get_json()]


def test_openapi_documents_the_callbacks(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/v1/callbacks"]
    assert {"queue", "state", "day"} <= {p["name"] for p in paths["/api/v1/callbacks"]["get"]["parameters"]}
    assert {"200", "409"} <= set(paths["/api/v1/callbacks/{callback_id}/cancel"]["post"]["responses"])


def test_list_with_filters_and_attempts(client, auth, callbacks):
    token = _token(client, auth, "super")
    headers = _bearer(token)
    assert set(_ids(client.get("/api/v1/callbacks", headers=headers))) == set(callbacks.values())
    assert _ids(client.get("/api/v1/callbacks?queue=cards", headers=headers)) == [callbacks["dialling"], callbacks["old"]]
    assert _ids(client.get("/api/v1/callbacks?state=dialling", headers=headers)) == [callbacks["dialling"]]
    today = NOW.astimezone().date().isoformat()     # the callbacks' day (NOW: set at import)
    assert _ids(client.get(f"/api/v1/callbacks?day={today}&queue=cards", headers=headers)) == [callbacks["dialling"]]
    rows = {row["id"]: row for row in client.get("/api/v1/callbacks", headers=headers).get_json()}
    pending = rows[callbacks["pending"]]
    assert (pending["reason"], pending["context"], pending["state"]) == ("card blocked", {"reference": "TX-88121"}, "pending")
    assert [(a["agent"], a["outcome"]) for a in rows[callbacks["dialling"]]["history"]] == [("1001", "no_answer"), ("1002", None)]
    assert "open_key" not in pending and "ticket" not in pending
    assert client.get("/api/v1/callbacks?state=nonsense", headers=headers).status_code == 422
    assert client.get("/api/v1/callbacks?day=yesterday", headers=headers).status_code == 422


@pytest.mark.parametrize("user, allowed", [("admin", True), ("super", True), ("agent", False)])
def test_permissions_per_role_by_token(store, client, auth, callbacks, user, allowed):
    headers = _bearer(_token(client, auth, user))
    listed = client.get("/api/v1/callbacks", headers=headers)
    cancelled = client.post(f"/api/v1/callbacks/{callbacks['pending']}/cancel", headers=headers)
    assert (listed.status_code, cancelled.status_code) == ((200, 200) if allowed else (403, 403))
    assert store.get(callbacks["pending"]).state == ("cancelled" if allowed else "pending")


@pytest.mark.parametrize("user, allowed", [("admin", True), ("super", True), ("agent", False)])
def test_permissions_per_role_by_session(store, client, auth, callbacks, user, allowed):
    auth.login(user)
    assert client.get("/api/v1/callbacks").status_code == (200 if allowed else 403)
    headers = {"X-CSRFToken": csrf_token(client)}
    cancelled = client.post(f"/api/v1/callbacks/{callbacks['pending']}/cancel", headers=headers)
    assert cancelled.status_code == (200 if allowed else 403)


def test_cancel_audited(app, store, client, auth, callbacks):
    headers = _bearer(_token(client, auth, "super"))
    response = client.post(f"/api/v1/callbacks/{callbacks['pending']}/cancel", headers=headers)
    body = response.get_json()
    assert response.status_code == 200 and body["state"] == "cancelled" and "super" in body["detail"]
    row = store.get(callbacks["pending"])
    assert row.state == "cancelled" and row.open_key is None
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "callback")).one()
    assert (entry.actor, entry.action, entry.entity_id) == ("super", "cancel", callbacks["pending"])
    assert (entry.before["state"], entry.after["state"]) == ("pending", "cancelled")
    again = client.post(f"/api/v1/callbacks/{callbacks['pending']}/cancel", headers=headers)
    assert again.status_code == 409 and "already cancelled" in again.get_json()["message"]


def test_claimed_callback_is_refused_with_409(app, store, client, auth, callbacks):
    headers = _bearer(_token(client, auth))
    response = client.post(f"/api/v1/callbacks/{callbacks['dialling']}/cancel", headers=headers)
    assert response.status_code == 409 and "being dialled right now" in response.get_json()["message"]
    assert store.get(callbacks["dialling"]).state == "dialling"
    with app.app_context():
        assert db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "callback")).all() == []


def test_session_cancel_needs_the_csrf_header(store, client, auth, callbacks):
    auth.login("super")
    refused = client.post(f"/api/v1/callbacks/{callbacks['pending']}/cancel")
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["message"]
    assert store.get(callbacks["pending"]).state == "pending"


def test_unknown_callback_is_404_json(client, auth, callbacks):
    response = client.post("/api/v1/callbacks/nope/cancel", headers=_bearer(_token(client, auth)))
    assert response.status_code == 404 and response.get_json()["code"] == 404

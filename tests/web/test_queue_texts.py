"""A queue's texts per language (D31) in the queue form and the JSON API: the languages the
system speaks are offered, empty boxes mean "the default", the checks (length, an empty text
for a listed language, a language not offered), roles, CSRF, audit, serve told to reload."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin_web import db
from admin_web.queue_texts import MAX_TEXT
from callpilot.infra.db.models import Queue
from callpilot.infra.db.web_users import AuditEntry
from tests.web.conftest import csrf_token
from tests.web.test_api import _bearer, _token
from tests.web.test_queues import FORM, _queue, queues  # noqa: F401  (queues: the autouse fixture)

KO_WAIT, KO_CLOSED = "기다려 주셔서 감사합니다.", "지금은 영업 시간이 아닙니다."
TEXTS = {"periodic_announce_ko": KO_WAIT, "periodic_announce_en": "Thanks for holding, in English.",
         "closed_message_ko": KO_CLOSED, "closed_message_en": ""}


def _audit(app) -> list[AuditEntry]:
    with app.app_context():
        return db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "queue")
                                .order_by(AuditEntry.id)).all()


def test_the_form_offers_a_box_per_text_and_language(client, auth):
    auth.login("super")
    html = client.get("/queues/billing").get_data(as_text=True)
    fieldset = html[html.index('id="queue-texts"'):html.index("</fieldset>")]
    names = re.findall(r'name="([a-z_]+)"', fieldset)
    assert names == ["periodic_announce_en", "closed_message_en", "periodic_announce_ko", "closed_message_ko"]
    assert 'name="periodic_announce"' in html and 'name="closed_message"' in html    # the defaults


def test_supervisor_saves_texts_per_language_audited_and_reloaded(app, client, auth, services):
    told = []
    services.notify_serve = lambda what: told.append(what) or True
    auth.login("super")
    assert auth.post("/queues/billing", {**FORM, **TEXTS}).status_code == 302
    queue = _queue(app)
    assert queue.periodic_announce == "Thanks for waiting."                           # the default stays
    assert queue.periodic_announce_translations == {"ko": KO_WAIT, "en": "Thanks for holding, in English."}
    assert queue.closed_message_translations == {"ko": KO_CLOSED}, "an empty box is no text"
    assert told == ["queues"]
    [entry] = _audit(app)
    assert entry.before["closed_message_translations"] == {} and entry.after["closed_message_translations"] == {
        "ko": KO_CLOSED}
    html = client.get("/queues/billing").get_data(as_text=True)
    assert KO_WAIT in html and KO_CLOSED in html
    # a post without the boxes (an older script) keeps the texts; emptying a box takes one away
    assert auth.post("/queues/billing", FORM).status_code == 302
    assert _queue(app).closed_message_translations == {"ko": KO_CLOSED}
    assert auth.post("/queues/billing", {**FORM, **TEXTS, "closed_message_ko": "  "}).status_code == 302
    assert _queue(app).closed_message_translations == {}
    assert _queue(app).periodic_announce_translations["ko"] == KO_WAIT


def test_a_language_the_queue_already_has_stays_offered(app, client, auth):
    with app.app_context():
        db.get().get(Queue, "billing").closed_message_translations = {"ja": "閉店しました。"}
        db.get().commit()
    auth.login()
    html = client.get("/queues/billing").get_data(as_text=True)
    assert 'name="closed_message_ja"' in html and "閉店しました。" in html
    assert auth.post("/queues/billing", {**FORM, "closed_message_ja": "閉店しました。"}).status_code == 302
    assert _queue(app).closed_message_translations == {"ja": "閉店しました。"}


@pytest.mark.parametrize("field", ["periodic_announce_ko", "closed_message_en", "periodic_announce", "closed_message"])
def test_too_long_a_text_is_refused(app, auth, field):
    auth.login()
    response = auth.post("/queues/billing", {**FORM, **TEXTS, field: "x" * (MAX_TEXT + 1)})
    assert response.status_code == 400 and f"longer than {MAX_TEXT}" in response.get_data(as_text=True)
    assert _queue(app).periodic_announce_translations == {}


def test_agent_role_cannot_change_texts_and_csrf_is_required(app, client, auth):
    auth.login("agent")
    assert auth.post("/queues/billing", {**FORM, **TEXTS}).status_code == 403
    auth.logout()
    auth.login()
    assert client.post("/queues/billing", data={**FORM, **TEXTS}).status_code == 400
    assert _queue(app).periodic_announce_translations == {}


# -- JSON API ---------------------------------------------------------------------------------

def test_api_patches_translations_and_reads_them_back(app, client, auth, services):
    told = []
    services.notify_serve = lambda what: told.append(what) or True
    token = _token(client, auth, "super")
    body = {"periodic_announce_translations": {"ko": KO_WAIT}, "closed_message_translations": {"ko": KO_CLOSED,
                                                                                               "en": "Closed."}}
    ok = client.patch("/api/v1/queues/billing", json=body, headers=_bearer(token))
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["closed_message_translations"] == {"ko": KO_CLOSED, "en": "Closed."}
    read = client.get("/api/v1/queues/billing", headers=_bearer(token)).get_json()
    assert read["periodic_announce_translations"] == {"ko": KO_WAIT} and read["periodic_announce"] == ""
    assert told == ["queues"]
    [entry] = _audit(app)
    assert (entry.actor, entry.detail) == ("super", "api")
    assert entry.after["periodic_announce_translations"] == {"ko": KO_WAIT}
    # a PATCH replaces a field's translations as a whole
    client.patch("/api/v1/queues/billing", json={"closed_message_translations": {"en": "Closed."}},
                 headers=_bearer(token))
    assert _queue(app).closed_message_translations == {"en": "Closed."}
    assert _queue(app).periodic_announce_translations == {"ko": KO_WAIT}


@pytest.mark.parametrize("body, message", [
    ({"closed_message_translations": {"ko": ""}}, "ko: empty text"),
    ({"closed_message_translations": {"ko": "   "}}, "ko: empty text"),
    ({"periodic_announce_translations": {"fr": "Merci"}}, "'fr' is not a language offered"),
    ({"periodic_announce_translations": {"ko": "가" * (MAX_TEXT + 1)}}, f"at most {MAX_TEXT}"),
])
def test_api_refuses_bad_translations(app, client, auth, body, message):
    token = _token(client, auth)
    response = client.patch("/api/v1/queues/billing", json=body, headers=_bearer(token))
    assert response.status_code == 422 and message in response.get_json()["message"]
    assert _queue(app).closed_message_translations == {} and _audit(app) == []


@pytest.mark.parametrize("body", [{"periodic_announce_translations": ["ko"]},
                                  {"closed_message_translations": {"ko": 5}},
                                  {"closed_message_translations": None},
                                  {"closed_message": "x" * (MAX_TEXT + 1)}])
def test_api_refuses_malformed_texts(app, client, auth, body):
    token = _token(client, auth)
    assert client.patch("/api/v1/queues/billing", json=body, headers=_bearer(token)).status_code == 422


def test_api_roles_and_csrf_for_translations(app, client, auth):
    token = _token(client, auth, "agent")
    body = {"closed_message_translations": {"ko": KO_CLOSED}}
    assert client.patch("/api/v1/queues/billing", json=body, headers=_bearer(token)).status_code == 403
    auth.login()
    refused = client.patch("/api/v1/queues/billing", json=body)
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["message"]
    assert _queue(app).closed_message_translations == {}
    allowed = client.patch("/api/v1/queues/billing", json=body, headers={"X-CSRFToken": csrf_token(client)})
    assert allowed.status_code == 200 and _queue(app).closed_message_translations == {"ko": KO_CLOSED}


def test_openapi_describes_the_translations(client):
    spec = client.get("/api/openapi.json").get_json()
    queue = spec["components"]["schemas"]["Queue"]["properties"]
    for field in ("periodic_announce_translations", "closed_message_translations"):
        assert queue[field]["type"] == "object" and queue[field]["additionalProperties"] == {"type": "string"}
        assert "language" in queue[field]["description"]
    assert queue["closed_message"]["maxLength"] == MAX_TEXT

"""The web/app "call me" endpoint (admin_web.callme) on a real SQLite database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from admin_web.app import create_app
from callpilot.infra.config import CallbacksConfig, Config
from callpilot.infra.db.api_tokens import ApiTokens
from callpilot.infra.db.callback_store import CallbackStore
from callpilot.infra.db.callbacks import CallbackState
from callpilot.infra.db.models import Queue
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

NOW = datetime.now(timezone.utc)


@pytest.fixture
def web(tmp_path):
    config = Config(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'cp.db'}",
                    callbacks=CallbacksConfig(api_rate_limit="5 per minute"))
    engine = make_engine(config.database_url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        s.add(Queue(name="cards", title="Cards"))
    token = ApiTokens(sessions).create("website", NOW)
    app = create_app(config)
    app.config["TESTING"] = True
    yield app.test_client(), token, CallbackStore(sessions)
    engine.dispose()


def _post(client, token, body):
    return client.post("/api/v1/callbacks", json=body, headers={"Authorization": f"Bearer {token}"})


def test_creates_a_callback_with_context(web):
    client, token, store = web
    answer = _post(client, token, {"queue": "cards", "number": "010-1234-5678", "name": "Kim Minji",
                                   "reason": "card declined abroad", "source": "app",
                                   "context": {"page": "/cards/declined", "reference": "TX-88121"}})
    assert answer.status_code == 201, answer.json
    body = answer.json
    assert body["created"] and body["number"] == "+821012345678" and body["state"] == "pending"
    row = store.get(body["id"])
    assert row.source == "app" and row.reason == "card declined abroad" and row.name == "Kim Minji"
    assert row.context == {"page": "/cards/declined", "reference": "TX-88121"}
    again = _post(client, token, {"queue": "cards", "number": "+82 10 1234 5678"})
    assert again.status_code == 200 and again.json["id"] == body["id"] and not again.json["created"]
    assert len(store.in_states([CallbackState.PENDING])) == 1


def test_a_window_later_today(web):
    client, token, store = web
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    answer = _post(client, token, {"queue": "cards", "number": "02-312-3456",
                                   "window": {"start": start.isoformat(), "end": end.isoformat()}})
    assert answer.status_code == 201, answer.json
    row = store.get(answer.json["id"])
    assert row.not_before == start and row.entered_at == start and row.window_end == end
    assert row.expires_at == row.window_end


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_wrong_token_refused(web, headers):
    client, _, store = web
    answer = client.post("/api/v1/callbacks", json={"queue": "cards", "number": "010-1234-5678"}, headers=headers)
    assert answer.status_code == 401 and answer.json["error"] == "token-invalid"
    assert store.in_states() == []


@pytest.mark.parametrize("body,status,code", [
    ({"queue": "cards", "number": "12345"}, 400, "number-invalid"),
    ({"queue": "cards", "number": "060-234-5678"}, 400, "number-type"),
    ({"queue": "cards", "number": "+1 201 555 0123"}, 400, "number-country"),
    ({"queue": "cards"}, 400, "number-missing"),
    ({"queue": "nope", "number": "010-1234-5678"}, 404, "queue-unknown"),
    ({"queue": "cards", "number": "010-1234-5678", "source": "fax"}, 400, "source-invalid"),
    ({"queue": "cards", "number": "010-1234-5678", "window": {"start": "x", "end": "y"}}, 400, "window-invalid"),
    ({"queue": "cards", "number": "010-1234-5678", "context": {"a": {"nested": 1}}}, 400, "context-invalid"),
    ([1, 2], 400, "body-invalid"),
])
def test_bad_requests_refused_with_clear_errors(web, body, status, code):
    client, token, store = web
    answer = _post(client, token, body)
    assert answer.status_code == status and answer.json["error"] == code and answer.json["message"]
    assert store.in_states() == []


def test_a_flood_is_refused(web):
    client, token, store = web
    codes = [_post(client, token, {"queue": "cards", "number": f"010-1234-56{i:02d}"}).status_code
             for i in range(8)]
    assert codes[:5] == [201] * 5 and codes[5:] == [429] * 3
    flood = _post(client, token, {"queue": "cards", "number": "010-1234-5699"})
    assert flood.json["error"] == "rate-limited"
    assert len(store.in_states()) == 5

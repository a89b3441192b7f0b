"""Callbacks page: list with filters and attempts, cancel (only a pending callback: one that
serve has claimed is refused), roles, CSRF, audit."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db import session as dbs
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import AttemptOutcome, CallbackSource, CallbackState
from callpilot.infra.db.models import Queue
from callpilot.infra.db.web_users import AuditEntry

NOW = datetime.now(timezone.utc)


@pytest.fixture
def store(app, db_file):
    with app.app_context():
        session = db.get()
        for name in ("billing", "cards"):           # merge: other modules' fixtures may have them
            session.merge(Queue(name=name, title=name))
        session.commit()
    engine = dbs.make_engine(db_file)
    yield CallbackStore(dbs.make_sessionmaker(engine), instance="serve-test")
    engine.dispose()


def _new(store, number, queue="billing", created=NOW, **extra):
    new = NewCallback(number=number, queue=queue, entered_at=created - timedelta(minutes=4),
                      source=CallbackSource.IVR, expires_at=created + timedelta(hours=4), **extra)
    return store.create(new, created)[0]


@pytest.fixture
def callbacks(store):
    """pending in billing (asked today), dialling in cards (claimed by serve, one earlier
    attempt with no answer), pending in cards asked three days ago."""
    pending = _new(store, "+821011110000", name="Kim", reason="card blocked",
                   context={"reference": "TX-88121"})
    dialling = _new(store, "+821022220000", queue="cards")
    first = store.claim(dialling.id, "1001", NOW)
    store.finish_attempt(first.attempt_id, AttemptOutcome.NO_ANSWER, NOW, next_state=CallbackState.PENDING)
    store.claim(dialling.id, "1002", NOW)
    old = _new(store, "+821033330000", queue="cards", created=NOW - timedelta(days=3))
    return {"pending": pending.id, "dialling": dialling.id, "old": old.id}


def _rows(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-callback="')[1:]]


def test_list_filters_and_attempts(client, auth, callbacks):
    auth.login("super")
    html = client.get("/callbacks/").get_data(as_text=True)
    assert set(_rows(html)) == set(callbacks.values())
    assert "card blocked" in html and "reference: TX-88121" in html
    assert "agent 1001: no_answer" in html and "agent 1002: in progress" in html
    assert _rows(client.get("/callbacks/?queue=cards").get_data(as_text=True)) == [callbacks["dialling"], callbacks["old"]]
    assert _rows(client.get("/callbacks/?state=dialling").get_data(as_text=True)) == [callbacks["dialling"]]
    today = NOW.astimezone().date().isoformat()     # the callbacks' day (NOW: set at import)
    assert set(_rows(client.get(f"/callbacks/?day={today}&queue=cards").get_data(as_text=True))) == {callbacks["dialling"]}
    assert client.get("/callbacks/?state=nonsense").status_code == 400
    assert client.get("/callbacks/?day=yesterday").status_code == 400


def test_cancel_pending_is_audited(app, store, auth, callbacks):
    auth.login("super")
    response = auth.post(f"/callbacks/{callbacks['pending']}/cancel", {"queue": "billing"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/callbacks/?queue=billing")
    row = store.get(callbacks["pending"])
    assert row.state == "cancelled" and row.open_key is None and "super" in row.detail
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "callback")).one()
    assert (entry.actor, entry.action, entry.entity_id) == ("super", "cancel", callbacks["pending"])
    assert entry.before["state"] == "pending" and entry.after["state"] == "cancelled"
    assert entry.before["number"] == "+821011110000"
    # the number may ask again: the cancelled one no longer holds its open slot
    assert _new(store, "+821011110000").id != callbacks["pending"]


def test_a_callback_being_dialled_is_not_cancelled(app, store, client, auth, callbacks):
    auth.login()
    response = auth.post(f"/callbacks/{callbacks['dialling']}/cancel", follow_redirects=True)
    assert b"is being dialled right now: it cannot be cancelled" in response.data
    row = store.get(callbacks["dialling"])
    assert row.state == "dialling" and row.dialling_number == "+821022220000"
    with app.app_context():
        assert db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "callback")).all() == []


def test_serve_claims_between_page_and_cancel(store, client, auth, callbacks):
    """The page showed it pending; serve claimed it before the click: the claim wins."""
    auth.login()
    html = client.get("/callbacks/").get_data(as_text=True)
    assert f'/callbacks/{callbacks["pending"]}/cancel' in html
    claim = store.claim(callbacks["pending"], "1001", NOW)
    assert claim is not None
    response = auth.post(f"/callbacks/{callbacks['pending']}/cancel", follow_redirects=True)
    assert b"being dialled right now" in response.data
    assert store.get(callbacks["pending"]).state == "dialling"
    store.finish_attempt(claim.attempt_id, AttemptOutcome.ANSWERED, NOW, next_state=CallbackState.DONE)
    response = auth.post(f"/callbacks/{callbacks['pending']}/cancel", follow_redirects=True)
    assert b"is already done: nothing to cancel" in response.data


def test_cancel_without_csrf_token_is_rejected(store, client, auth, callbacks):
    auth.login()
    assert client.post(f"/callbacks/{callbacks['pending']}/cancel").status_code == 400
    assert store.get(callbacks["pending"]).state == "pending"


def test_agents_neither_see_nor_cancel(store, client, auth, callbacks):
    auth.login("agent")
    assert client.get("/callbacks/").status_code == 403
    assert auth.post(f"/callbacks/{callbacks['pending']}/cancel").status_code == 403
    assert store.get(callbacks["pending"]).state == "pending"


def test_unknown_callback(client, auth, callbacks):
    auth.login()
    assert auth.post("/callbacks/nope/cancel").status_code == 404


def test_cancels_racing_serves_claims_never_both_win(store, client, auth):
    """serve (a thread claiming, as its dispatcher does) and a supervisor cancelling the same 20
    callbacks at the same time: each one is either claimed or cancelled, never both."""
    import threading
    ids = [_new(store, f"+8210555{n:05d}").id for n in range(20)]
    auth.login("super")
    token_page = client.get("/callbacks/").get_data(as_text=True)
    assert all(f"/callbacks/{cid}/cancel" in token_page for cid in ids)
    claimed: dict[str, bool] = {}
    start = threading.Barrier(2)

    def serve():
        start.wait()
        for cid in reversed(ids):
            claimed[cid] = store.claim(cid, "1001", NOW) is not None

    thread = threading.Thread(target=serve)
    thread.start()
    start.wait()
    refused = {cid: b"being dialled right now" in auth.post(f"/callbacks/{cid}/cancel", follow_redirects=True).data
               for cid in ids}
    thread.join()
    states = {cid: store.get(cid).state for cid in ids}
    for cid in ids:
        assert claimed[cid] == (states[cid] == "dialling") == refused[cid], (cid, claimed[cid], states[cid])
        assert states[cid] in ("dialling", "cancelled")

"""Campaign pages: contacts upload with a report per row, start/pause, results; audited."""
from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db import session as dbs
from callpilot.infra.db.web_users import AuditEntry
from outbound.store import CampaignStore

CSV = ("phone,name\n"
       "+821012345678,Kim\n"
       "not a number,Nobody\n"
       "+821098765432,\n"
       "+821012345678,Kim again\n")


@pytest.fixture(autouse=True)
def campaign(app, db_file):
    engine = dbs.make_engine(db_file)
    CampaignStore(dbs.make_sessionmaker(engine)).create("orders", "Hello {name}, your order is ready.",
                                                        datetime.now(timezone.utc), purpose="order status")
    engine.dispose()


def _upload(auth, text=CSV):
    return auth.post("/campaigns/orders/contacts", {"file": (io.BytesIO(text.encode()), "contacts.csv"),
                                                    "region": "KR"}, content_type="multipart/form-data")


def test_list_and_results_page(client, auth):
    auth.login("super")
    assert b'href="/campaigns/orders"' in client.get("/campaigns/").data
    html = client.get("/campaigns/orders").get_data(as_text=True)
    assert 'id="campaign-state">draft<' in html and "No contacts yet" in html
    assert client.get("/campaigns/nope").status_code == 404


def test_upload_reports_every_rejected_row(app, client, auth):
    auth.login()
    html = _upload(auth).get_data(as_text=True)
    assert "1 imported, 3 rejected." in html
    assert "bad number" in html and "missing variable name" in html and "duplicate number" in html
    assert "+821012345678" in client.get("/campaigns/orders").get_data(as_text=True)
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "campaign")).one()
    assert entry.after == {"imported": 1, "rejected": 3} and entry.detail == "contacts.csv"


def test_start_pause_and_refused_moves(app, client, auth):
    auth.login()
    _upload(auth)
    response = auth.post("/campaigns/orders/state", {"action": "start"}, follow_redirects=True)
    assert b"Campaign orders is running." in response.data
    response = auth.post("/campaigns/orders/state", {"action": "pause"}, follow_redirects=True)
    assert b"Campaign orders is paused." in response.data
    auth.post("/campaigns/orders/state", {"action": "finish"})
    response = auth.post("/campaigns/orders/state", {"action": "start"}, follow_redirects=True)
    assert b"cannot go from done to running" in response.data
    with app.app_context():
        moves = [(e.action, e.before["state"], e.after["state"]) for e in db.get().scalars(
            select(AuditEntry).where(AuditEntry.entity == "campaign", AuditEntry.action != "import_contacts")
            .order_by(AuditEntry.id))]
    assert moves == [("start", "draft", "running"), ("pause", "running", "paused"), ("finish", "paused", "done")]


def test_agents_have_no_campaign_pages(client, auth):
    auth.login("agent")
    assert client.get("/campaigns/").status_code == 403
    assert auth.post("/campaigns/orders/state", {"action": "start"}).status_code == 403

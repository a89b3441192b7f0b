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


NEW = {"name": "fraud", "purpose": "fraud alert", "mode": "notification", "language": "en",
       "template": "Hello {name}, was the payment of {amount} at {shop} yours?", "sample": "amount=120 dollars\nname=Kim",
       "caller_id": "8005550100", "callback_number": "8005550199", "queue": "general",
       "window_start": "09:00", "window_end": "20:00", "excluded": "2026-12-25", "calendar": "",
       "max_attempts": "4", "max_concurrent": "8", "ring_seconds": "30", "amd": "y",
       "voicemail": "Hello {name}, please call us back.", "say": "yes=confirm",
       "abandon_cap": "2.5", "max_dial_level": "1",
       "key_confirm": "1", "key_agent": "0", "key_repeat": "", "key_opt_out": "9",
       "retry_no_answer": "1200", "retry_busy": "300", "retry_failed": "", "retry_unknown": "1800"}


@pytest.fixture
def general_queue(app):
    from callpilot.infra.db.models import Queue
    with app.app_context():
        db.get().merge(Queue(name="general", title="general"))
        db.get().commit()


def _created(db_file, name="fraud"):
    engine = dbs.make_engine(db_file)
    try:
        return CampaignStore(dbs.make_sessionmaker(engine)).get(name)
    finally:
        engine.dispose()


def test_new_campaign_form_shows_outbounds_defaults(client, auth, general_queue):
    auth.login("super")
    assert b'href="/campaigns/new"' in client.get("/campaigns/").data
    html = client.get("/campaigns/new").get_data(as_text=True)
    assert 'name="key_opt_out" type="text" value="9"' in html and 'name="retry_no_answer" type="text" value="3600"' in html


def test_preview_renders_the_message_and_lists_the_variables(app, db_file, auth, general_queue):
    auth.login("super")
    html = auth.post("/campaigns/new", {**NEW, "action": "preview"}).get_data(as_text=True)
    assert "Hello Kim, was the payment of 120 dollars at &lt;shop&gt; yours? Press 1 to confirm. " \
           "Press 0 to talk to an agent. Press 9 to stop these calls." in html
    assert 'id="preview-variables">amount, shop<' in html
    with pytest.raises(ValueError):
        _created(db_file)                                   # a preview creates nothing


def test_create_campaign_is_checked_stored_and_audited(app, db_file, client, auth, general_queue):
    auth.login("super")
    response = auth.post("/campaigns/new", {**NEW, "action": "create"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/campaigns/fraud")
    c = _created(db_file)
    assert (c.state, c.purpose, c.mode, c.window_start, c.window_end, c.excluded_dates) == (
        "draft", "fraud alert", "notification", "09:00", "20:00", ["2026-12-25"])
    assert (c.max_attempts, c.max_concurrent, c.ring_seconds, c.amd, c.abandon_cap_percent) == (4, 8, 30, True, 2.5)
    assert c.replies == {"1": "confirm", "0": "agent", "9": "opt_out", "yes": "confirm"}
    assert c.retry_delays == {"no_answer": 1200, "busy": 300, "failed": 1800, "unknown": 1800}
    assert c.voicemail_template == "Hello {name}, please call us back." and c.agent_queue == "general"
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "campaign",
                                                          AuditEntry.action == "create")).one()
    assert (entry.actor, entry.entity_id, entry.before) == ("super", "fraud", None)
    assert entry.after["template"] == NEW["template"] and entry.after["state"] == "draft"
    again = auth.post("/campaigns/new", {**NEW, "action": "create"})
    assert again.status_code == 400 and b"campaign &#39;fraud&#39; exists" in again.data


@pytest.mark.parametrize("change, message", [
    ({"template": "Hello {name"}, "expected &#39;}&#39;"),
    ({"template": "Order {order.id}"}, "variables are names"),
    ({"window_start": "21:00", "window_end": "08:00"}, "21:00 must be before 08:00"),
    ({"window_end": "25:00"}, "calling window"),
    ({"max_attempts": "0"}, "max attempts must be within 1..20"),
    ({"max_concurrent": "many"}, "max concurrent: &#39;many&#39; is not a number"),
    ({"key_opt_out": ""}, "an opt-out key is required"),
    ({"key_agent": "1"}, "1 is given to both confirm and agent"),
    ({"key_repeat": "x"}, "not a phone key"),
    ({"say": "yes=maybe"}, "reply &#39;maybe&#39; is not one of"),
    ({"retry_busy": "0"}, "retry seconds must be within 1"),
    ({"name": "no spaces"}, "a campaign name is 1-64 letters"),
])
def test_invalid_campaigns_are_refused_with_outbounds_message(db_file, auth, general_queue, change, message):
    auth.login()
    response = auth.post("/campaigns/new", {**NEW, **change, "action": "create"})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    with pytest.raises(ValueError):
        _created(db_file, NEW.get("name") if "name" not in change else change["name"])


def test_the_cli_applies_the_same_checks(tmp_path, capsys):
    from callpilot.app import campaigns_cli
    from callpilot.app.cli import build_parser
    from callpilot.infra.config import Config
    args = build_parser().parse_args(["campaigns", "create", "bad", "--template", "Hi {name}",
                                      "--window", "21:00-08:00"])
    assert campaigns_cli.run(Config(state_dir=tmp_path), args) == 1
    assert "calling window: 21:00 must be before 08:00" in capsys.readouterr().err


def test_campaign_creation_needs_csrf_and_a_role(db_file, client, auth, general_queue):
    auth.login()
    assert client.post("/campaigns/new", data={**NEW, "action": "create"}).status_code == 400
    auth.logout()
    auth.login("agent")
    assert client.get("/campaigns/new").status_code == 403
    assert auth.post("/campaigns/new", {**NEW, "action": "create"}).status_code == 403
    with pytest.raises(ValueError):
        _created(db_file)

"""Queues page: edit service level, announcements, overflow and routing steps; roles; audit."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from admin_web import db
from callpilot.infra.db.models import Queue
from callpilot.infra.db.web_users import AuditEntry

FORM = {"title": "Billing", "skill": "", "sl_target_seconds": "15", "sl_target_percent": "90",
        "max_wait_seconds": "120", "overflow_queue": "general", "join_empty": "y",
        "announce_frequency": "20", "periodic_announce": "Thanks for waiting.", "steps": "",
        "calendar": "", "closed_queue": "", "closed_message": "", "survey_flow": ""}


@pytest.fixture(autouse=True)
def queues(app):
    with app.app_context():
        session = db.get()
        session.add_all([Queue(name="billing", title="billing"), Queue(name="general", title="general")])
        session.commit()


def _queue(app, name="billing") -> Queue:
    with app.app_context():
        return db.get().get(Queue, name)


def test_list_and_edit_page(client, auth):
    auth.login("super")
    assert b'href="/queues/billing"' in client.get("/queues/").data
    html = client.get("/queues/billing").get_data(as_text=True)
    for name in ("sl_target_seconds", "sl_target_percent", "max_wait_seconds", "overflow_queue",
                 "announce_frequency", "announce_position", "periodic_announce", "steps"):
        assert f'name="{name}"' in html


def test_supervisor_saves_settings_and_it_is_audited(app, client, auth):
    auth.login("super")
    response = auth.post("/queues/billing", FORM)
    assert response.status_code == 302
    queue = _queue(app)
    assert (queue.sl_target_seconds, queue.sl_target_percent, queue.max_wait_seconds) == (15, 90, 120)
    assert queue.overflow_queue == "general" and queue.announce_position is False
    assert queue.periodic_announce == "Thanks for waiting." and queue.steps is None
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "queue")).one()
    assert (entry.actor, entry.action, entry.entity_id) == ("super", "update", "billing")
    assert entry.before["sl_target_seconds"] == 20 and entry.after["sl_target_seconds"] == 15


def test_routing_steps_are_checked_by_the_acd(app, auth):
    auth.login()
    bad = auth.post("/queues/billing", {**FORM, "steps": '[{"conditions": [], "expiry": -1}]'})
    assert bad.status_code == 400 and b"expiry" in bad.data
    assert _queue(app).steps is None
    steps = [{"conditions": [{"kind": "skill_at_least", "skill": "billing", "level": 3}], "expiry": 20},
             {"conditions": [], "expiry": None}]
    assert auth.post("/queues/billing", {**FORM, "steps": json.dumps(steps)}).status_code == 302
    assert _queue(app).steps == steps


def test_out_of_range_values_are_refused(app, auth):
    auth.login()
    response = auth.post("/queues/billing", {**FORM, "sl_target_percent": "150"})
    assert response.status_code == 400
    assert _queue(app).sl_target_percent == 80


def test_agent_role_cannot_see_or_change_queues(client, auth):
    auth.login("agent")
    assert client.get("/queues/").status_code == 403
    assert auth.post("/queues/billing", FORM).status_code == 403


def test_save_without_csrf_token_is_rejected(app, client, auth):
    auth.login()
    assert client.post("/queues/billing", data=FORM).status_code == 400
    assert _queue(app).sl_target_seconds == 20


def test_create_queue(app, auth):
    auth.login()
    auth.post("/queues/new", {"name": "vip"})
    assert _queue(app, "vip").title == "vip"


def test_opening_hours_closed_route_and_survey(app, client, auth):
    from datetime import date, datetime, timezone
    from callpilot.infra.db.calendars import CalendarDay, CalendarHours, CalendarRow
    with app.app_context():
        session = db.get()
        session.add(CalendarRow(name="kr", timezone="Asia/Seoul", updated_at=datetime.now(timezone.utc)))
        session.flush()
        session.add(CalendarHours(calendar="kr", weekday=0, opens="09:00", closes="18:00"))
        session.add(CalendarDay(calendar="kr", day=date(2099, 1, 1), name="New year"))
        session.commit()
    auth.login()
    form = {**FORM, "calendar": "kr", "closed_queue": "general", "closed_message": "We are closed.",
            "survey_flow": "main"}
    assert auth.post("/queues/billing", form).status_code == 302
    queue = _queue(app)
    assert (queue.calendar, queue.closed_queue, queue.closed_message, queue.survey_flow) == (
        "kr", "general", "We are closed.", "main")
    assert auth.post("/queues/billing", {**form, "calendar": "nope"}).status_code == 400
    html = client.get("/calendars/").get_data(as_text=True)
    assert "Mon 09:00-18:00" in html and "2099-01-01 (New year)" in html and "billing" in html


def test_saving_tells_serve_to_reload(app, auth, services):
    told = []
    services.notify_serve = lambda what: told.append(what) or True
    auth.login()
    response = auth.post("/queues/billing", FORM, follow_redirects=True)
    assert b"serve uses it now" in response.data and told == ["queues"]
    services.notify_serve = lambda what: False
    response = auth.post("/queues/billing", FORM, follow_redirects=True)
    assert b"serve is not running" in response.data


CALLBACK = {"callback_offer_after": "45", "callback_offer_key": "7", "callback_customer_first": "yes"}


def test_callback_offer_settings_saved_audited_and_reloaded(app, client, auth, services):
    told = []
    services.notify_serve = lambda what: told.append(what) or True
    auth.login("super")
    html = client.get("/queues/billing").get_data(as_text=True)
    assert "(configuration: 5)" in html and "the configuration&#39;s 120 s" in html
    assert auth.post("/queues/billing", {**FORM, **CALLBACK}).status_code == 302
    queue = _queue(app)
    assert (queue.callback_offer_after, queue.callback_offer_key, queue.callback_customer_first) == (45, "7", True)
    assert told == ["queues"]
    with app.app_context():
        entry = db.get().scalars(select(AuditEntry).where(AuditEntry.entity == "queue")).one()
    assert entry.before["callback_offer_key"] is None and entry.after["callback_offer_key"] == "7"
    assert entry.after["callback_offer_after"] == 45 and entry.after["callback_customer_first"] is True
    html = client.get("/queues/billing").get_data(as_text=True)
    assert '<option selected value="7">' in html and '<option selected value="yes">' in html
    # a save without the callback fields keeps them; empty fields give them back to the configuration
    auth.post("/queues/billing", FORM)
    assert _queue(app).callback_offer_key == "7"
    auth.post("/queues/billing", {**FORM, "callback_offer_after": "", "callback_offer_key": "",
                                  "callback_customer_first": ""})
    queue = _queue(app)
    assert (queue.callback_offer_after, queue.callback_offer_key, queue.callback_customer_first) == (None, None, None)


@pytest.mark.parametrize("field, value", [("callback_offer_after", "-1"), ("callback_offer_after", "soon"),
                                          ("callback_offer_key", "x"), ("callback_offer_key", "55"),
                                          ("callback_customer_first", "maybe")])
def test_callback_offer_settings_are_validated(app, auth, field, value):
    auth.login()
    assert auth.post("/queues/billing", {**FORM, **CALLBACK, field: value}).status_code == 400
    assert _queue(app).callback_offer_key is None


def test_serve_reads_the_queues_callback_settings(app):
    """What the web saved is what acd's queue loading hands to the offer rules."""
    from acd.callback_offer import OfferRules
    from acd.roster_store import load_queues
    with app.app_context():
        session = db.get()
        queue = session.get(Queue, "billing")
        queue.callback_offer_after, queue.callback_offer_key, queue.callback_customer_first = 0, "#", False
        session.commit()
        book = load_queues(db.sessions())
    rules = OfferRules(book, offer_after_seconds=120, offer_key_default="5")
    assert (rules.offer_after("billing"), rules.offer_key("billing"), rules.offer_after("general")) == (0.0, "#", 120.0)
    assert book.get("billing").callback_customer_first is False

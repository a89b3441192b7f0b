"""Screen pop context: as the agent's phone rings for a callback (asked in the IVR, or 'call
me' from the web), or for a campaign contact who asked for an agent, the agent page shows
why, when it was asked, the requested window, the original queue entry, the campaign and the
contact's reply, besides the caller's profile."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from admin_web import db, pop_context
from callpilot.infra.db import session as dbs
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import AttemptOutcome, CallbackSource, CallbackState
from callpilot.infra.db.models import CallRecord, Customer
from outbound.store import CampaignStore

NOW = datetime.now(timezone.utc)
PHONE = "01012345678"


@pytest.fixture
def store(app, db_file):
    engine = dbs.make_engine(db_file)
    yield CallbackStore(dbs.make_sessionmaker(engine), instance="serve-test")
    engine.dispose()


def _asked_in_the_ivr(app):
    with app.app_context():
        session = db.get()
        session.add(Customer(phone=PHONE, name="Kim Minsu", birth_year=NOW.year - 40, segment="vip", language="ko"))
        session.add(CallRecord(id="call-9", caller_id=PHONE, did="800", flow="main", state="ended", queue="cards",
                               started_at=NOW - timedelta(minutes=9), enqueued_at=NOW - timedelta(minutes=8),
                               menu_path=["main_menu=2"], outcome="callback",
                               journey={"inputs": [{"node": "main_menu", "kind": "speech", "value": "lost card"}]}))
        session.commit()


def _pop(app, services, extension="1001"):
    with app.app_context():
        return pop_context.with_context(db.sessions(), extension, None, services.age_band)


def test_an_ivr_callback_pops_its_reason_entry_time_and_the_callers_profile(app, services, store):
    _asked_in_the_ivr(app)
    callback, _ = store.create(NewCallback(number="+821012345678", queue="cards", entered_at=NOW - timedelta(minutes=8),
                                           source=CallbackSource.IVR, expires_at=NOW + timedelta(hours=4),
                                           name="Kim Minsu", reason="lost card", call_id="call-9"), NOW)
    assert _pop(app, services) is None                               # pending: nobody's phone rings
    first = store.claim(callback.id, "1002", NOW)
    store.finish_attempt(first.attempt_id, AttemptOutcome.NO_ANSWER, NOW, next_state=CallbackState.PENDING)
    store.claim(callback.id, "1001", NOW)
    pop = _pop(app, services)
    assert (pop["kind"], pop["state"], pop["queue"], pop["caller_id"]) == ("callback", "ringing", "cards", "+821012345678")
    assert pop["customer"] == {"name": "Kim Minsu", "age_band": "35-44", "segment": "vip", "language": "ko"}
    assert pop["ivr_path"] == ["main_menu=2"] and pop["said"][0]["value"] == "lost card"
    context = pop["context"]
    local = (NOW - timedelta(minutes=8)).astimezone().strftime("%Y-%m-%d %H:%M")
    assert (context["kind"], context["source"], context["reason"]) == ("callback", "ivr", "lost card")
    assert context["in_line_since"] == local and context["window"] is None
    assert (context["attempt"], context["tried_before"]) == (2, True)
    assert _pop(app, services, "1002") is None                       # the earlier attempt is over


def test_a_web_call_me_pops_its_window_and_reference(app, services, store):
    start = NOW + timedelta(minutes=30)
    callback, _ = store.create(NewCallback(number="+821099998888", queue="cards", entered_at=start,
                                           source=CallbackSource.WEB, expires_at=NOW + timedelta(hours=4),
                                           name="Lee", reason="card declined abroad",
                                           context={"reference": "TX-88121", "page": "/cards/declined"},
                                           not_before=start, window_end=start + timedelta(hours=1)), NOW)
    claim = store.claim(callback.id, "1001", NOW)
    pop = _pop(app, services)
    assert pop["customer"] == {"name": "Lee"}                         # no profile: the name given
    context = pop["context"]
    assert context["source"] == "web" and context["details"] == {"reference": "TX-88121", "page": "/cards/declined"}
    fmt = "%Y-%m-%d %H:%M"
    assert context["window"] == f"{start.astimezone().strftime(fmt)} – {(start + timedelta(hours=1)).astimezone().strftime(fmt)}"
    store.customer_dialled(claim.attempt_id, NOW)
    assert _pop(app, services)["state"] == "connected"


def test_a_campaign_transfer_pops_the_campaign_and_the_reply(app, db_file, services):
    engine = dbs.make_engine(db_file)
    CampaignStore(dbs.make_sessionmaker(engine)).create("fraud", "Was {amount} at {shop} yours?", NOW,
                                                        purpose="fraud alert")
    engine.dispose()
    outbound = {"campaign": "fraud", "contact_id": 3, "attempt": 7, "name": "Park", "reply": "2",
                "variables": {"amount": "120 dollars", "shop": "Acme"}}
    with app.app_context():
        session = db.get()
        session.add(CallRecord(id="cp-out-7", caller_id="+821055556666", did="outbound", flow="", state="ringing",
                               queue="general", agent="1001", started_at=NOW, enqueued_at=NOW,
                               journey={"outbound": outbound}))
        session.commit()
        from admin_web import live
        pop = pop_context.with_context(db.sessions(), "1001", live.screen_pop(db.get(), "1001", services.age_band),
                                       services.age_band)
    assert pop["context"] == {"kind": "campaign", "campaign": "fraud", "purpose": "fraud alert",
                              "reply": "2 (agent)", "contact": "Park",
                              "details": {"amount": "120 dollars", "shop": "Acme"}}
    assert "outbound" not in pop and "since" not in pop


def test_a_live_call_wins_over_an_attempt_left_open_by_a_crash(app, services, store):
    callback, _ = store.create(NewCallback(number="+821011112222", queue="cards", entered_at=NOW - timedelta(hours=1),
                                           source=CallbackSource.IVR, expires_at=NOW + timedelta(hours=4)),
                               NOW - timedelta(hours=1))
    store.claim(callback.id, "1001", NOW - timedelta(hours=1))            # serve died: no outcome
    with app.app_context():
        session = db.get()
        session.add(CallRecord(id="call-2", caller_id=PHONE, did="800", flow="main", state="ringing", queue="cards",
                               agent="1001", started_at=NOW, enqueued_at=NOW))
        session.commit()
        from admin_web import live
        pop = pop_context.with_context(db.sessions(), "1001", live.screen_pop(db.get(), "1001", services.age_band),
                                       services.age_band)
    assert pop["call_id"] == "call-2" and "context" not in pop


def test_the_agent_stream_carries_the_callback_context(app, client, auth, services, store):
    services.live_status = lambda: {"agents": {"1001": {"state": "ringing"}}}
    callback, _ = store.create(NewCallback(number="+821033334444", queue="cards", entered_at=NOW,
                                           source=CallbackSource.APP, expires_at=NOW + timedelta(hours=4),
                                           reason="loan question"), NOW)
    store.claim(callback.id, "1001", NOW)
    auth.login("agent")
    response = client.get("/agent/stream", buffered=False)
    first = next(response.response)
    response.close()
    view = json.loads((first.decode() if isinstance(first, bytes) else first)[6:])
    assert view["call"]["kind"] == "callback" and view["call"]["context"]["reason"] == "loan question"

"""Campaign store on both backends: claims exactly once (two processes racing), DNC at dial
time, calling window in the contact's zone, retries, unknown-after-crash."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from sqlalchemy import func, select

from callpilot.infra.db.campaigns import GLOBAL_DNC, CampaignAttempt, CampaignContact
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from outbound.contacts_csv import import_contacts
from outbound.model import CampaignState, ContactOutcome, ContactStatus
from outbound.store import CampaignStore

# 15:00 UTC = 10:00 in New York, 07:00 in Los Angeles (outside 08:00-21:00)
NOON = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
TEMPLATE = "Hello {name}, your order {order_id} ships today."


def make_store(url: str, node: str = "test") -> CampaignStore:
    engine = make_engine(url)
    create_schema(engine)
    return CampaignStore(make_sessionmaker(engine), node=node)


def seed(store: CampaignStore, rows: list[tuple[str, str]], name: str = "c1", **settings) -> None:
    store.create(name, TEMPLATE, NOON - timedelta(hours=1), **settings)
    text = "phone,name,timezone,order_id\n" + "".join(f"{p},N,{tz},A{i}\n" for i, (p, tz) in enumerate(rows))
    with store.sessions().get_bind().begin() as conn:
        report = import_contacts(conn, name, StringIO(text), NOON - timedelta(hours=1))
    assert report.errors == []
    store.set_state(name, CampaignState.RUNNING)


def numbers(n: int, start: int = 2125550100) -> list[str]:
    return [f"+1{start + i}" for i in range(n)]


def test_claims_each_due_contact_once_and_respects_the_limit(db_url):
    store = make_store(db_url)
    seed(store, [(p, "America/New_York") for p in numbers(5)])
    campaign = store.get("c1")
    first = store.claim_due(campaign, NOON, limit=3)
    second = store.claim_due(campaign, NOON, limit=10)
    assert len(first) == 3 and len(second) == 2
    assert len({c.contact_id for c in first + second}) == 5
    assert store.claim_due(campaign, NOON, limit=10) == []
    assert {c.channel_id for c in first} == {f"cp-out-{c.attempt_id}" for c in first}
    assert store.in_flight(campaign.id) == 5


def _race(url: str, node: str, queue) -> None:
    store = CampaignStore(make_sessionmaker(make_engine(url)), node=node)
    campaign = store.get("race")
    got = []
    while True:
        batch = store.claim_due(campaign, NOON, limit=7)
        if not batch:
            break
        got += [c.contact_id for c in batch]
    queue.put(got)


def test_two_processes_racing_never_claim_the_same_contact(db_url):
    store = make_store(db_url)
    seed(store, [(p, "America/New_York") for p in numbers(120)], name="race")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(db_url, f"node{i}", queue)) for i in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = results[0] + results[1]
    assert len(claimed) == 120 and len(set(claimed)) == 120, (len(claimed), len(set(claimed)))
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CampaignAttempt)) == 120


def test_a_node_resyncs_only_the_attempts_it_claimed(db_url):
    """Two nodes on one database: each looks in its own Asterisk for its attempts in flight
    (under its name, or the "serve" every node had before an upgrade), never the other's."""
    east = make_store(db_url, node="east")
    seed(east, [(p, "America/New_York") for p in numbers(3)])
    west = CampaignStore(east.sessions, node="west")
    legacy = CampaignStore(east.sessions, node="serve")
    upgraded = CampaignStore(east.sessions, node="east", earlier_names=("serve",))
    campaign = east.get("c1")
    [mine], [theirs], [before] = (store.claim_due(campaign, NOON, limit=1) for store in (east, west, legacy))
    assert {a.id for a in upgraded.open_attempts()} == {mine.attempt_id, before.attempt_id}
    assert {a.id for a in west.open_attempts()} == {theirs.attempt_id}


def test_contact_outside_its_local_window_waits_until_it_opens(db_url):
    store = make_store(db_url)
    seed(store, [("+12125550100", "America/New_York"), ("+13105550100", "America/Los_Angeles")])
    campaign = store.get("c1")
    claims = store.claim_due(campaign, NOON, limit=10)
    assert [c.phone for c in claims] == ["+12125550100"]
    with store.sessions() as s:
        la = s.scalar(select(CampaignContact).where(CampaignContact.phone == "+13105550100"))
    assert la.next_attempt_at == datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)  # 08:00 LA
    assert store.claim_due(campaign, NOON + timedelta(minutes=59), limit=10) == []
    later = store.claim_due(campaign, NOON + timedelta(hours=1), limit=10)
    assert [c.phone for c in later] == ["+13105550100"]


def test_excluded_date_moves_the_contact_to_the_next_day(db_url):
    store = make_store(db_url)
    seed(store, [("+12125550100", "America/New_York")], excluded_dates=["2026-12-02"])
    assert store.claim_due(store.get("c1"), NOON, limit=10) == []
    with store.sessions() as s:
        row = s.scalar(select(CampaignContact))
    assert row.next_attempt_at == datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)  # 08:00 NY


def test_dnc_is_honoured_at_dial_time_global_and_per_campaign(db_url):
    store = make_store(db_url)
    seed(store, [(p, "America/New_York") for p in numbers(3)])
    a, b, c = numbers(3)
    store.add_dnc(a, GLOBAL_DNC, "test", NOON)
    store.add_dnc(b, "c1", "test", NOON)
    store.add_dnc(c, "other", "test", NOON)
    claims = store.claim_due(store.get("c1"), NOON, limit=10)
    assert [x.phone for x in claims] == [c]
    with store.sessions() as s:
        outcomes = dict(s.execute(select(CampaignContact.phone, CampaignContact.outcome)).all())
    assert outcomes[a] == outcomes[b] == ContactOutcome.DNC.value


def test_no_answer_is_retried_after_its_delay_then_given_up(db_url):
    store = make_store(db_url)
    seed(store, [("+12125550100", "America/New_York")], max_attempts=2,
         retry_delays={"no_answer": 600})
    campaign = store.get("c1")
    (first,) = store.claim_due(campaign, NOON, limit=1)
    store.finish(first.attempt_id, ContactOutcome.NO_ANSWER, NOON)
    assert store.claim_due(campaign, NOON + timedelta(seconds=599), limit=1) == []
    (second,) = store.claim_due(campaign, NOON + timedelta(seconds=600), limit=1)
    assert second.number == 2
    store.finish(second.attempt_id, ContactOutcome.NO_ANSWER, NOON + timedelta(seconds=630))
    assert store.claim_due(campaign, NOON + timedelta(days=2), limit=1) == []
    with store.sessions() as s:
        row = s.scalar(select(CampaignContact))
    assert (row.status, row.outcome, row.attempts) == (ContactStatus.DONE.value, "no_answer", 2)


def test_first_result_of_an_attempt_wins(db_url):
    store = make_store(db_url)
    seed(store, [("+12125550100", "America/New_York")])
    (claim,) = store.claim_due(store.get("c1"), NOON, limit=1)
    store.finish(claim.attempt_id, ContactOutcome.CONFIRMED, NOON, reply="1")
    store.finish(claim.attempt_id, ContactOutcome.UNKNOWN, NOON)
    assert store.attempt(claim.attempt_id).outcome == "confirmed"


def test_state_transitions_are_checked(db_url):
    store = make_store(db_url)
    seed(store, [])
    store.set_state("c1", CampaignState.PAUSED)
    store.set_state("c1", CampaignState.RUNNING)
    with pytest.raises(ValueError):
        store.set_state("c1", CampaignState.DRAFT)


def test_one_number_in_two_campaigns_is_never_rung_twice_at_once(db_url):
    store = make_store(db_url)
    seed(store, [("+12125550100", "America/New_York")], name="a")
    seed(store, [("+12125550100", "America/New_York")], name="b")
    (first,) = store.claim_due(store.get("a"), NOON, limit=5)
    assert store.claim_due(store.get("b"), NOON, limit=5) == []
    store.finish(first.attempt_id, ContactOutcome.CONFIRMED, NOON)
    (second,) = store.claim_due(store.get("b"), NOON, limit=5)
    assert second.campaign == "b"


def test_closed_days_of_the_campaigns_calendar_are_excluded(db_url):
    from callpilot.infra.db.calendars import CalendarDay, CalendarRow
    store = make_store(db_url)
    with store.sessions.begin() as s:
        s.add(CalendarRow(name="us-holidays", timezone="America/New_York", updated_at=NOON))
        s.flush()
        s.add(CalendarDay(calendar="us-holidays", day=NOON.date(), name="a holiday"))
    seed(store, [("+12125550100", "America/New_York")], calendar="us-holidays")
    assert store.claim_due(store.get("c1"), NOON, limit=10) == []
    assert [c.phone for c in store.claim_due(store.get("c1"), NOON + timedelta(days=1), limit=10)] \
        == ["+12125550100"]

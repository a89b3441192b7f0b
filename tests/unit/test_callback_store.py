"""Durable callbacks on SQLite and PostgreSQL: de-duplication, claims (also between two
processes on one database), the number guard, finishing once, closing, expiry, merging."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest

from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import (
    AttemptOutcome,
    CallbackSource,
    CallbackState,
    attempt_of_channel,
)
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def new(number="+441632960001", queue="cards", entered=T0, **kw) -> NewCallback:
    return NewCallback(number=number, queue=queue, entered_at=entered, source=CallbackSource.IVR,
                       expires_at=entered + timedelta(hours=4),
                       ticket={"priority": 0, "skills": {"cards": 2}, "attributes": {"age_band": "35-44"},
                               "steps": []}, **kw)


@pytest.fixture
def store(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    yield CallbackStore(make_sessionmaker(engine), instance="test")
    engine.dispose()


def test_create_keeps_ticket_and_original_entry(store):
    callback, created = store.create(new(reason="card blocked", context={"page": "/cards"}), T0 + timedelta(minutes=3))
    assert created
    again = store.get(callback.id)
    assert again.entered_at == T0 and again.state == "pending"
    assert again.ticket["skills"] == {"cards": 2} and again.ticket["attributes"]["age_band"] == "35-44"
    assert again.reason == "card blocked" and again.context == {"page": "/cards"}


def test_one_open_callback_per_number_and_queue(store):
    first, _ = store.create(new(), T0)
    second, created = store.create(new(entered=T0 + timedelta(minutes=5)), T0 + timedelta(minutes=5))
    assert not created and second.id == first.id and second.entered_at == T0
    other_queue, created = store.create(new(queue="loans"), T0)
    assert created and other_queue.id != first.id
    assert len(store.in_states([CallbackState.PENDING])) == 2
    store.close(first.id, CallbackState.CANCELLED, T0, "test")
    third, created = store.create(new(), T0 + timedelta(minutes=9))
    assert created and third.id != first.id          # closed ones do not block a new one


def test_claim_once_then_finish_once(store):
    callback, _ = store.create(new(), T0)
    claim = store.claim(callback.id, "1001", T0)
    assert claim is not None and claim.callback.state == "dialling"
    assert attempt_of_channel(claim.customer_channel) == (claim.attempt_id, "customer")
    assert attempt_of_channel(claim.agent_channel) == (claim.attempt_id, "agent")
    assert store.claim(callback.id, "1002", T0) is None
    retry_at = T0 + timedelta(minutes=5)
    assert store.finish_attempt(claim.attempt_id, AttemptOutcome.NO_ANSWER, T0,
                                next_state=CallbackState.PENDING, not_before=retry_at)
    assert not store.finish_attempt(claim.attempt_id, AttemptOutcome.ANSWERED, T0,
                                    next_state=CallbackState.DONE)
    row = store.get(callback.id)
    assert row.state == "pending" and row.attempts == 1 and row.not_before == retry_at
    assert row.dialling_number is None
    [attempt] = store.attempts(callback.id)
    assert attempt.outcome == "no_answer" and attempt.channel_id == claim.customer_channel


def test_agent_no_answer_is_not_a_customer_attempt(store):
    callback, _ = store.create(new(), T0)
    claim = store.claim(callback.id, "1001", T0)
    store.finish_attempt(claim.attempt_id, AttemptOutcome.AGENT_NO_ANSWER, T0, next_state=CallbackState.PENDING)
    assert store.get(callback.id).attempts == 0
    claim = store.claim(callback.id, "1002", T0)
    store.finish_attempt(claim.attempt_id, AttemptOutcome.ANSWERED, T0, next_state=CallbackState.DONE)
    row = store.get(callback.id)
    assert row.state == "done" and row.attempts == 1 and row.open_key is None and row.closed_at == T0


def test_never_two_calls_to_one_number(store):
    a, _ = store.create(new(queue="cards"), T0)
    b, _ = store.create(new(queue="loans"), T0)      # same number, other queue: allowed open
    claim = store.claim(a.id, "1001", T0)
    assert claim is not None
    assert store.claim(b.id, "1002", T0) is None      # the number is being dialled
    assert store.get(b.id).state == "pending"
    store.finish_attempt(claim.attempt_id, AttemptOutcome.BUSY, T0, next_state=CallbackState.PENDING)
    assert store.claim(b.id, "1002", T0) is not None


def test_close_expire_merge(store):
    a, _ = store.create(new(number="+441632960001"), T0)
    b, _ = store.create(new(number="+441632960002", entered=T0 + timedelta(hours=1)), T0)
    c, _ = store.create(new(number="+441632960003"), T0)
    assert store.expire_due(T0 + timedelta(hours=4, seconds=1)) == [a.id, c.id]
    assert store.get(a.id).state == "expired"
    assert store.claim(a.id, "1001", T0) is None
    merged = store.merge_into_call("cards", "+441632960002", "call-77", T0)
    assert merged.id == b.id and merged.entered_at == T0 + timedelta(hours=1)
    assert store.get(b.id).state == "merged"
    assert store.merge_into_call("cards", "+441632960002", "call-78", T0) is None
    assert not store.close(b.id, CallbackState.CANCELLED, T0)       # already closed


def test_unfinished_attempts_are_found_after_a_crash(store):
    callback, _ = store.create(new(), T0)
    claim = store.claim(callback.id, "1001", T0)
    [attempt] = store.unfinished_attempts()
    assert attempt.id == claim.attempt_id and attempt.callback_id == callback.id


def test_a_node_settles_only_its_own_unfinished_attempts(store):
    """Two nodes on one database: after a crash each looks in its own Asterisk for the
    attempts it claimed (under its name, or the name it had before an upgrade), never for the
    other's, which may be ringing right now."""
    east = CallbackStore(store.sessions, "east", earlier_names=("serve-5060",))
    west = CallbackStore(store.sessions, "west")
    legacy = CallbackStore(store.sessions, "serve-5060")
    mine, _ = store.create(new(number="+441632960001"), T0)
    theirs, _ = store.create(new(number="+441632960002"), T0)
    before, _ = store.create(new(number="+441632960003"), T0)
    assert east.claim(mine.id, "1001", T0) and west.claim(theirs.id, "1002", T0)
    assert legacy.claim(before.id, "1003", T0)
    assert {a.callback_id for a in east.unfinished_attempts(mine_only=True)} == {mine.id, before.id}
    assert {a.callback_id for a in west.unfinished_attempts(mine_only=True)} == {theirs.id}
    assert len(east.unfinished_attempts()) == 3


def _claimer(url: str, ids: list[str], agent: str, out) -> None:
    engine = make_engine(url)
    store = CallbackStore(make_sessionmaker(engine), instance=agent)
    won = [cid for cid in ids if store.claim(cid, agent, T0) is not None]
    engine.dispose()
    out.put((agent, won))


def test_two_processes_never_claim_the_same_callback(store, db_url):
    ids = [store.create(new(number=f"+4416329600{i:02d}"), T0)[0].id for i in range(30)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_url, ids if n % 2 else ids[::-1], f"node{n}", out))
             for n in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    won = [cid for _, ids_won in results for cid in ids_won]
    assert sorted(won) == sorted(ids)                 # every one claimed, none twice
    assert all(len(store.attempts(cid)) == 1 for cid in ids)


def test_postgres_skips_a_row_another_transaction_is_claiming(pg_url):
    engine = make_engine(pg_url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    store = CallbackStore(sessions, instance="b")
    callback, _ = store.create(new(), T0)
    holder = sessions()
    holder.begin()
    first = CallbackStore(sessions, instance="a")._claim(holder, callback.id, "1001", T0)
    assert first is not None                          # claimed, not yet committed
    assert store.claim(callback.id, "1002", T0) is None   # skipped at once, not blocked
    holder.commit()
    holder.close()
    assert [a.agent for a in store.attempts(callback.id)] == ["1001"]
    engine.dispose()

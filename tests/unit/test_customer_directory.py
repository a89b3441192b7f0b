"""The one customer directory on both backends: every stored spelling of a caller ID is
found, the exact one first; unknown numbers are cached as unknown; a database failure is a
LookupFailed (the IVR's ServiceError), never a silent 'unknown'.  Plus: the routing ticket and
IVR place columns of call records round-trip on both backends."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from callpilot.infra.db.call_vocabulary import CallOutcome, CallState, IvrPlace, RoutingTicket
from callpilot.infra.db.customers import CustomerDirectory, CustomerProfile, LookupFailed
from callpilot.infra.db.models import Customer
from callpilot.infra.db.records import CallRecordStore
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    with make_sessionmaker(engine).begin() as s:
        s.add(Customer(phone="+82101234", name="Kim", birth_year=1980, language="ko"))
        s.add(Customer(phone="5550100", name="Ada"))
        s.add(Customer(phone="+5550100", name="Ada (plus)"))
    yield engine
    engine.dispose()


def test_every_spelling_finds_the_customer_and_the_exact_one_wins(engine):
    directory = CustomerDirectory(engine)
    assert directory.lookup("82 10-1234") == CustomerProfile("+82101234", "Kim", 1980, "standard", "ko")
    assert directory.lookup("+5550100").name == "Ada (plus)"
    assert directory.lookup("5550100").name == "Ada"
    assert directory.lookup("999") is None and directory.lookup("") is None


def test_a_database_failure_is_not_an_unknown_caller(engine):
    directory = CustomerDirectory(engine)

    def broken(*_a, **_k):
        raise OperationalError("SELECT", {}, Exception("db down"))
    dialect = engine.dialect
    directory.engine = type("E", (), {"connect": broken, "raw_connection": broken, "dialect": dialect})()
    with pytest.raises(LookupFailed):
        directory.lookup("5550100")
    assert directory.lookup_or_none("5550100") is None


def test_a_driver_error_is_a_lookup_failure_too(engine):
    """The select runs on a driver connection: the driver's own errors count as well."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customers RENAME TO customers_gone")
    try:
        with pytest.raises(LookupFailed):
            CustomerDirectory(engine).lookup("5550100")
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE customers_gone RENAME TO customers")


def test_ticket_and_place_round_trip_through_a_record(engine):
    store = CallRecordStore(make_sessionmaker(engine))
    ticket = RoutingTicket("billing", 5, {"billing": 4}, [{"conditions": [], "expiry": 5}], {"vip": True})
    place = IvrPlace("main", 2, "main_menu", ["greeting", "main_menu"],
                     [{"node": "main_menu", "kind": "dtmf", "value": "9"}], {"language": "en"})
    store.open("c1", caller_id="1", state=CallState.IVR)
    store.update("c1", state=CallState.QUEUED, ticket=ticket.to_json(), ivr_place=place.to_json())
    record = store.get("c1")
    assert record.state == CallState.QUEUED and [r.id for r in store.open_calls()] == ["c1"]
    assert RoutingTicket.from_json(record.ticket) == ticket
    assert IvrPlace.from_json(record.ivr_place) == place
    store.update("c1", state=CallState.ENDED, outcome=CallOutcome.SYSTEM, hangup_cause=16)
    assert (store.get("c1").outcome, store.get("c1").hangup_cause) == ("system", 16)
    assert store.open_calls() == []


def _counting(directory: CustomerDirectory) -> list[list[str]]:
    """The selects the directory runs, by their keys."""
    selects: list[list[str]] = []
    real = directory._select

    def select(keys):
        selects.append(keys)
        return real(keys)
    directory._select = select
    return selects


def test_a_prefetched_caller_is_answered_from_the_cache_with_the_same_profile(engine):
    """The queue entry after a prefetch (D36) reads no database and gets what a lookup of
    its own would have: a known caller's profile, an unknown caller's None."""
    directory = CustomerDirectory(engine)
    selects = _counting(directory)
    directory.prefetch("82 10-1234")
    directory.prefetch("4101")
    assert len(selects) == 2
    assert directory.lookup_or_none("82 10-1234") == CustomerDirectory(engine).lookup("82 10-1234")
    assert directory.lookup_or_none("4101") is None
    assert len(selects) == 2


def test_a_failed_prefetch_caches_nothing_and_logs_no_number(engine, caplog):
    directory = CustomerDirectory(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customers RENAME TO customers_gone")
    try:
        directory.prefetch("5550100")          # no exception: the call's lookup tries again
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE customers_gone RENAME TO customers")
    assert "prefetch failed" in caplog.text and "5550100" not in caplog.text
    assert directory.lookup_or_none("5550100").name == "Ada"


def test_prefetches_beyond_the_budget_of_a_second_are_left_to_the_calls(engine):
    directory = CustomerDirectory(engine, prefetch_per_second=3)
    selects = _counting(directory)
    for n in range(10):
        directory.prefetch(f"41{n:02d}")
    assert 1 <= len(selects) <= 6      # 3 per second (the loop may straddle a second's edge)
    assert directory.lookup_or_none("4109") is None


def test_a_broken_held_connection_is_replaced_within_the_same_lookup(engine):
    """The loop's own connection (D36) stands in for the pool's pre-ping: one that died
    under it (a PostgreSQL restart) costs no lookup, the next one answers on a fresh one."""
    directory = CustomerDirectory(engine)
    assert directory.lookup("999") is None
    _thread, dead = directory._held
    dead.close()
    assert directory.lookup("5550100").name == "Ada"
    assert directory._held[1] is not dead
    directory.close()
    assert directory.lookup("+5550100").name == "Ada (plus)"
    directory.close()


def test_the_held_connection_sees_a_customer_added_after_it_was_opened(engine):
    """No transaction is left open on it: each lookup reads what is committed now."""
    directory = CustomerDirectory(engine, ttl=0)
    assert directory.lookup("7770001") is None
    with make_sessionmaker(engine).begin() as s:
        s.add(Customer(phone="7770001", name="Lee"))
    assert directory.lookup("7770001").name == "Lee"
    directory.close()

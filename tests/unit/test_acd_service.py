"""The ACD's entries take the routing ticket from where it survived: the record (FastAGI
handoff, re-adoption), else a plain ticket for the queue the dialplan named."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from acd.model import DEFAULT_AGE_BANDS
from acd.readoption import Readoption
from acd.service import AcdService
from callpilot.infra.db.call_vocabulary import RoutingTicket
from callpilot.infra.db.customers import CustomerProfile
from callpilot.infra.messages import SpokenMessages, builtin_messages

VIP = RoutingTicket("billing", priority=5, skills={"billing": 4},
                    steps=[{"conditions": [], "expiry": 5}], attributes={"segment": "vip"})


@dataclass
class Record:
    id: str = "c1"
    caller_id: str = "5551234"
    did: str = "801"
    state: str = "queued"
    queue: str | None = "billing"
    ticket: dict | None = None
    agent: str | None = None
    enqueued_at: datetime | None = None


class Records:
    def __init__(self, record=None):
        self.record = record
        self.opened: list = []

    def post_open(self, call_id, **fields):
        self.opened.append(call_id)

    async def get(self, call_id):
        return self.record


class Dispatcher:
    action_deadline = 1.0

    def __init__(self):
        self.adopted = []
        self.calls = {}

    async def adopt(self, entry):
        self.adopted.append(entry)


class Control:
    async def answer(self, channel_id):
        return True


class Customers:
    def lookup_or_none(self, phone):
        return CustomerProfile(phone, birth_year=1990, language="en") if phone == "5551234" else None


class Clock:
    def utcnow(self):
        return datetime(2026, 12, 1, tzinfo=timezone.utc)

    def monotonic(self):
        return 0.0


def spoken() -> SpokenMessages:
    async def render(text, language):
        return f"sound:{language}:{text}"
    return SpokenMessages(builtin_messages(), render)


def service(record=None) -> AcdService:
    return AcdService(Dispatcher(), Control(), Records(record), customers=Customers(),
                      bands=DEFAULT_AGE_BANDS, messages=spoken(), fallback_queue="general", clock=Clock())


CHANNEL = {"id": "c1", "state": "Up", "caller": {"number": "5551234"}, "dialplan": {"exten": "801"}}


async def test_the_dialplan_enqueue_takes_the_ticket_the_agi_flow_stored():
    acd = service(Record(ticket=VIP.to_json()))
    await acd.enqueue_from_dialplan(CHANNEL, "billing", stored=True)
    entry = acd.dispatcher.adopted[0]
    assert entry.ticket == VIP
    assert entry.attributes == {"language": "en", "vip": False, "age_band": "35-44"}


async def test_a_stored_ticket_for_another_queue_is_not_used():
    acd = service(Record(ticket=VIP.to_json()))
    await acd.enqueue_from_dialplan(CHANNEL, "cards", stored=True)
    assert acd.dispatcher.adopted[0].ticket == RoutingTicket("cards")


async def test_a_straight_to_queue_call_never_reads_the_record():
    acd = service(Record(ticket=VIP.to_json()))

    async def no_reads(call_id):
        raise AssertionError("the call path read the database")
    acd.records.get = no_reads
    await acd.enqueue_from_dialplan(CHANNEL, "billing")
    assert acd.dispatcher.adopted[0].ticket == RoutingTicket("billing")


def test_readoption_restores_the_stored_ticket_and_follows_the_record_queue():
    readopt = Readoption(service())
    assert readopt.ticket_of(Record(ticket=VIP.to_json())) == VIP
    overflowed = readopt.ticket_of(Record(queue="general", ticket=VIP.to_json()))
    assert (overflowed.queue, overflowed.priority, overflowed.steps) == ("general", 5, None)
    assert readopt.ticket_of(Record(queue=None, ticket=None)) == RoutingTicket("general")
    # opened, not yet queued (write-behind): the queue its Stasis() line names
    assert readopt.ticket_of(Record(queue=None, ticket=None), "billing") == RoutingTicket("billing")


async def test_a_failed_handoff_ends_in_an_apology_recorded_as_system():
    acd = service()
    said, ended = [], []

    async def broken(entry):
        raise RuntimeError("boom")

    async def say(channel_id, text, seconds):
        said.append(text)

    async def end(call_id, outcome, why):
        ended.append((call_id, outcome, why))
        return True
    acd.dispatcher.adopt, acd._say, acd.dispatcher.end = broken, say, end
    await acd.handoff("c1", "5551234", "800", RoutingTicket("billing"))
    assert said and "sorry" in said[0].text.lower()
    assert ended == [("c1", "system", "handoff to billing failed")]

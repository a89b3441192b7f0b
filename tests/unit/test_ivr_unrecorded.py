"""After a (re)connect, a caller in ``Stasis(<app>,inbound,<flow>)`` whose serve died before
its record's open (or before its first place) starts its flow again; channels of other roles
and callers already in a flow are left alone (the decisions only: InboundIvr with fakes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callpilot.infra.asterisk.ari_helpers import stasis_args
from callpilot.infra.db.call_vocabulary import CallState
from ivr.stasis import InboundIvr


def channel(cid: str, app_data: str, app_name: str = "Stasis") -> dict[str, Any]:
    return {"id": cid, "state": "Up", "caller": {"number": "5551234"},
            "dialplan": {"context": "from-trunk", "exten": "800", "priority": 2,
                         "app_name": app_name, "app_data": app_data}}


@dataclass
class Record:
    id: str
    state: str = CallState.IVR.value
    ivr_place: dict | None = None
    caller_id: str = "5551234"
    did: str = "800"
    outcome: str | None = None


class FakeAri:
    app = "callpilot"

    def __init__(self, channels: list[dict]):
        self.channels = channels
        self.hung_up: list[str] = []

    async def get(self, path: str) -> list[dict]:
        assert path == "/channels"
        return self.channels


class FakeRecords:
    def __init__(self, records: list[Record]):
        self.records = {r.id: r for r in records}

    async def open_calls(self) -> list[Record]:
        return [r for r in self.records.values() if r.state != CallState.ENDED.value]

    async def get(self, call_id: str) -> Record | None:
        return self.records.get(call_id)


def inbound_ivr(channels: list[dict], records: list[Record]) -> tuple[InboundIvr, list[tuple[str, str]]]:
    ivr = InboundIvr(FakeAri(channels), inboxes=None, records=FakeRecords(records), runner=None,
                     flows=None, handoff=None, fallback_queue="general")
    started: list[tuple[str, str]] = []
    ivr.start = lambda ch, flow: started.append((ch["id"], flow))
    return ivr, started


def test_stasis_args_reads_only_our_application():
    assert stasis_args(channel("a", "callpilot,enqueue,billing"), "callpilot") == ["enqueue", "billing"]
    assert stasis_args(channel("a", "callpilot-media"), "callpilot") is None
    assert stasis_args(channel("a", "agi://127.0.0.1/ivr/main", "AGI"), "callpilot") is None
    assert stasis_args({"id": "a", "dialplan": {"app_name": "Stasis"}}, "callpilot") is None


async def test_an_inbound_caller_with_no_record_starts_its_flow():
    ivr, started = inbound_ivr([channel("c1", "callpilot,inbound,main_ko")], [])
    await ivr.resume_open_calls()
    assert started == [("c1", "main_ko")]


async def test_an_inbound_caller_opened_but_without_a_place_starts_its_flow():
    ivr, started = inbound_ivr([channel("c1", "callpilot,inbound,main")], [Record("c1")])
    await ivr.resume_open_calls()
    assert started == [("c1", "main")]


async def test_other_roles_and_known_callers_are_left_alone():
    channels = [channel("q1", "callpilot,enqueue,billing"),          # the ACD's
                channel("t1", "callpilot,transfer,c9"),              # a transfer leg
                channel("m1", "callpilot-media,tap"),                # another application
                channel("busy", "callpilot,inbound,main"),           # already in its flow
                channel("q2", "callpilot,inbound,main")]             # queued: the ACD's
    records = [Record("q1"), Record("q2", state=CallState.QUEUED.value)]
    ivr, started = inbound_ivr(channels, records)
    ivr.active["busy"] = None
    await ivr.resume_open_calls()
    assert started == []

"""The dialler and campaign calls against a fake ARI (real SQLite store): the calling window
with an injected clock, the concurrency cap, what an originate asks Asterisk for, recovery of
open attempts after a crash (adopt ringing, close the rest as unknown), routes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from sqlalchemy import select

from callpilot.infra.asterisk.ari import AriError
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.db.campaigns import CampaignAttempt, CampaignContact
from outbound.calls import OutboundCalls, outcome_of_cause
from outbound.contacts_csv import import_contacts
from outbound.dialer import Dialer
from outbound.model import CampaignState, ContactOutcome
from outbound.routes import dial_endpoint
from outbound.store import CampaignStore

# 14:00 UTC = 06:00 in Los Angeles (window closed); 16:00 UTC = 08:00 (open)
EARLY = datetime(2026, 12, 2, 14, 0, tzinfo=timezone.utc)


class FakeAri:
    def __init__(self, fail: bool = False):
        self.posts: list[tuple[str, dict]] = []
        self.deletes: list[str] = []
        self.channels: list[dict] = []
        self.fail = fail

    async def post(self, path: str, body=None, **params):
        if self.fail:
            raise AriError(500, "POST", path, "boom")
        self.posts.append((path, params))
        return {"id": path.rsplit("/", 1)[-1]}

    async def delete(self, path: str, **params):
        self.deletes.append(path)

    async def get(self, path: str, **params):
        return self.channels


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make(sessions, phones: list[str], zone: str = "America/Los_Angeles", ari=None, **settings):
    store = CampaignStore(sessions)
    store.create("c", "Hi {name}", EARLY - timedelta(hours=1), caller_id="8005550199", **settings)
    text = "phone,name,timezone\n" + "".join(f"{p},N,{zone}\n" for p in phones)
    with sessions().get_bind().begin() as conn:
        import_contacts(conn, "c", StringIO(text), EARLY - timedelta(hours=1))
    store.set_state("c", CampaignState.RUNNING)
    clock = Clock(EARLY)
    ari = ari or FakeAri()

    async def speak(text: str, language: str) -> str:
        return f"sound:/tts/{abs(hash(text))}"
    calls = OutboundCalls(ari, store, ChannelInboxes(), app="callpilot", speak=speak,
                          to_agent=None, free_agents=lambda q: 0,
                          dial_endpoint=lambda n: dial_endpoint(n, {}, "127.0.0.9:5060"), clock=clock)
    dialer = Dialer(store, calls, free_agents=lambda q: 0, clock=clock)
    return store, calls, dialer, clock, ari


def originated(ari: FakeAri) -> list[str]:
    return [path for path, params in ari.posts if params.get("appArgs") == "outbound"]


async def test_nobody_is_dialled_before_the_window_opens_in_their_zone(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+13105550100"])
    await dialer.tick()
    assert originated(ari) == []
    clock.now = EARLY + timedelta(hours=1, minutes=59)      # 07:59 in Los Angeles
    await dialer.tick()
    assert originated(ari) == []
    clock.now = EARLY + timedelta(hours=2)                  # 08:00
    await dialer.tick()
    assert originated(ari) == ["/channels/cp-out-1"]
    (path, params) = ari.posts[0]
    assert params["endpoint"] == "PJSIP/outbound/sip:+13105550100@127.0.0.9:5060"
    assert params["app"] == "callpilot" and params["timeout"] >= 15     # TSR: ring >= 15 s
    assert params["callerId"] == "8005550199"


async def test_concurrency_cap_holds_until_a_call_ends(sessions):
    store, calls, dialer, clock, ari = make(sessions, [f"+1212555{100 + i:04d}" for i in range(6)],
                                            zone="America/New_York", max_concurrent=3)
    await dialer.tick()
    await dialer.tick()
    assert len(originated(ari)) == 3
    await calls.on_event({"type": "ChannelDestroyed", "cause": 17, "channel": {"id": "cp-out-1"}})
    for task in list(calls._tasks):
        await task
    await dialer.tick()
    assert len(originated(ari)) == 4
    assert store.attempt(1).outcome == ContactOutcome.BUSY.value


async def test_a_failed_originate_is_recorded_not_left_open(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+12125550100"], zone="America/New_York",
                                            ari=FakeAri(fail=True))
    await dialer.tick()
    attempt = store.attempt(1)
    assert attempt.outcome == ContactOutcome.FAILED.value and "not dialled" in attempt.detail
    assert store.in_flight(store.get("c").id) == 0


async def test_recover_after_a_crash_adopts_ringing_and_records_the_rest_as_unknown(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+12125550100", "+12125550101", "+12125550102"],
                                            zone="America/New_York")
    claims = store.claim_due(store.get("c"), EARLY, limit=3)       # claimed by the dead serve
    ari.channels = [{"id": "cp-out-2", "state": "Up"}, {"id": "cp-out-3", "state": "Ringing"}]
    await calls.resync()
    assert [c.attempt_id for c in claims] == [1, 2, 3]
    assert store.attempt(1).outcome == "unknown" and "gone" in store.attempt(1).detail
    assert store.attempt(2).outcome == "unknown" and ari.deletes == ["/channels/cp-out-2"]
    assert store.attempt(3).outcome is None and "cp-out-3" in calls.live
    with sessions() as s:
        first = s.scalar(select(CampaignContact).where(CampaignContact.phone == "+12125550100"))
        assert first.status == "pending" and first.attempts == 1        # tried again later,
        assert first.next_attempt_at == EARLY + timedelta(seconds=1800)  # as a NEW attempt
        assert s.query(CampaignAttempt).count() == 3


@pytest.mark.parametrize("cause, outcome", [(17, "busy"), (19, "no_answer"), (16, "no_answer"),
                                            (21, "failed"), (34, "failed")])
def test_outcome_of_an_unanswered_call(cause, outcome):
    assert outcome_of_cause(cause).value == outcome


def test_longest_prefix_route_wins():
    routes = {"+1": "a:5060", "+1212": "b:5060"}
    assert dial_endpoint("+12125550100", routes, "") == "PJSIP/outbound/sip:+12125550100@b:5060"
    assert dial_endpoint("+13105550100", routes, "") == "PJSIP/outbound/sip:+13105550100@a:5060"
    assert dial_endpoint("+442079460958", routes, "") is None
    assert dial_endpoint("+442079460958", routes, "c:5060").endswith("@c:5060")


async def test_status_snapshot_counts_live_calls_by_phase(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+12125550100", "+12125550101"],
                                            zone="America/New_York")
    await dialer.tick()
    assert calls.snapshot() == {"c": {"ringing": 2}}


async def test_recover_leaves_other_nodes_attempts_alone(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+12125550100"], zone="America/New_York")
    other = CampaignStore(sessions, node="node-b")
    (claim,) = other.claim_due(store.get("c"), EARLY, limit=1)
    await calls.resync()                     # this node's Asterisk has no such channel
    assert store.attempt(claim.attempt_id).outcome is None


async def test_an_attempt_of_a_node_that_never_came_back_is_closed_after_an_hour(sessions):
    store, calls, dialer, clock, ari = make(sessions, ["+12125550100"], zone="America/New_York")
    other = CampaignStore(sessions, node="node-b")
    (claim,) = other.claim_due(store.get("c"), EARLY, limit=1)
    clock.now = EARLY + timedelta(minutes=59)
    await dialer.tick()
    assert store.attempt(claim.attempt_id).outcome is None and originated(ari) == []
    clock.now = EARLY + timedelta(minutes=61)
    await dialer.tick()
    assert store.attempt(claim.attempt_id).outcome == "unknown"

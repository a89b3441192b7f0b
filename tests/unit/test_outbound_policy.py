"""Pure outbound policies: calling window (contact's zone, DST, excluded dates), retries,
pacing (concurrency cap, progressive, abandon-rate-aware dial level), with hypothesis."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from outbound.model import CallingWindow, CampaignMode, ContactOutcome, FINAL_OUTCOMES
from outbound.policy.pacing import (RECOMPUTE_SECONDS, SAFE_HARBOR_SECONDS, Level, abandon_rate,
                                    dial_budget, next_level)
from outbound.policy.retry import next_attempt_at
from outbound.policy.window import is_open, next_open

ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Seoul",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu"]
TSR = CallingWindow()
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(timezone.utc))


@given(now=instants, zone=st.sampled_from(ZONES))
def test_next_open_is_inside_the_window_in_the_contacts_local_time(now, zone):
    tz = ZoneInfo(zone)
    opens = next_open(now, tz, TSR)
    assert opens >= now
    local = opens.astimezone(tz)
    assert time(8, 0) <= local.timetz().replace(tzinfo=None) < time(21, 0)
    assert is_open(opens, tz, TSR)


@given(now=instants, zone=st.sampled_from(ZONES))
def test_nothing_earlier_is_open(now, zone):
    """No instant between now and next_open is callable (checked every 10 minutes)."""
    tz = ZoneInfo(zone)
    opens = next_open(now, tz, TSR)
    probe = now
    while probe < opens:
        local = probe.astimezone(tz).time()
        assert not (time(8, 0) <= local < time(21, 0))
        probe += timedelta(minutes=10)


@given(now=instants, zone=st.sampled_from(ZONES),
       excluded=st.sets(st.dates(min_value=date(2024, 12, 30), max_value=date(2029, 1, 5)), max_size=20))
def test_excluded_dates_are_never_callable(now, zone, excluded):
    window = CallingWindow(excluded=frozenset(excluded))
    opens = next_open(now, ZoneInfo(zone), window)
    assert opens.astimezone(ZoneInfo(zone)).date() not in excluded


def test_the_server_clock_does_not_matter_only_the_contacts():
    now = datetime(2026, 7, 1, 12, 30, tzinfo=timezone.utc)        # 08:30 NY, 05:30 LA
    assert is_open(now, ZoneInfo("America/New_York"), TSR)
    assert not is_open(now, ZoneInfo("America/Los_Angeles"), TSR)
    assert next_open(now, ZoneInfo("America/Los_Angeles"), TSR) == \
        datetime(2026, 7, 1, 15, 0, tzinfo=timezone.utc)


def test_window_across_a_dst_change():
    # 2026-03-08: New York springs forward; 08:00 EDT = 12:00 UTC (the day before 13:00 UTC)
    before = datetime(2026, 3, 8, 5, 0, tzinfo=timezone.utc)
    assert next_open(before, ZoneInfo("America/New_York"), TSR) == \
        datetime(2026, 3, 8, 12, 0, tzinfo=timezone.utc)


@given(outcome=st.sampled_from(list(ContactOutcome)), made=st.integers(0, 10),
       maximum=st.integers(1, 10), delay=st.integers(0, 86400), now=instants)
def test_retry_never_after_a_final_outcome_or_the_last_attempt(outcome, made, maximum, delay, now):
    when = next_attempt_at(outcome, made, maximum, {o.value: delay for o in ContactOutcome}, now)
    if outcome in FINAL_OUTCOMES or made >= maximum:
        assert when is None
    else:
        assert when == now + timedelta(seconds=delay)


def test_retry_needs_a_delay_for_its_outcome():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert next_attempt_at(ContactOutcome.BUSY, 1, 3, {"no_answer": 60}, now) is None


@given(mode=st.sampled_from(list(CampaignMode)), cap=st.integers(0, 50), flight=st.integers(0, 60),
       ringing=st.integers(0, 20), free=st.integers(0, 30), level=st.floats(0, 5))
def test_budget_never_breaks_the_concurrency_cap_nor_dials_without_agents(mode, cap, flight, ringing,
                                                                       free, level):
    budget = dial_budget(mode, max_concurrent=cap, in_flight=flight, ringing=ringing,
                         free_agents=free, level=level)
    assert 0 <= budget <= max(0, cap - flight)
    if mode is CampaignMode.PROGRESSIVE:
        assert budget <= max(0, int(free * level + 1e-9) - ringing)
        if free == 0:
            assert budget == 0


@given(level=st.floats(1, 3), rate=st.floats(0, 0.2), cap=st.floats(0.005, 0.1))
def test_level_stays_in_bounds_and_never_rises_near_the_cap(level, rate, cap):
    bounds = Level(minimum=1.0, maximum=3.0, step=0.25)
    new = next_level(level, rate, cap, bounds)
    assert bounds.minimum <= new <= bounds.maximum
    if rate > cap / 2:
        assert new <= level
    if rate >= cap:
        assert new == bounds.minimum


def simulate(agents: int, handle_s: float, answer_p: float, hours: float, cap: float,
             adaptive: bool, seed: int = 7) -> dict:
    """One-second ticks of a progressive campaign with overdial (level up to 3 lines per free
    agent).  A call rings 5-25 s; answered by a person with ``answer_p``; a live answer takes
    a free agent, or, with none free within the 2 s safe harbor, is abandoned."""
    rng = random.Random(seed)
    bounds = Level(minimum=1.0, maximum=3.0, step=0.25)
    level, busy_until, ringing = 3.0, [0.0] * agents, []
    live = dropped = dialled = 0
    levels = []
    for t in range(int(hours * 3600)):
        if adaptive and t % RECOMPUTE_SECONDS == 0:
            level = next_level(level, abandon_rate(live, dropped), cap, bounds)
            levels.append(level)
        for end in [r for r in ringing if r[0] <= t]:
            ringing.remove(end)
            if not end[1]:
                continue
            live += 1
            free = [i for i, b in enumerate(busy_until) if b <= t + SAFE_HARBOR_SECONDS]
            if free:
                busy_until[free[0]] = max(t, busy_until[free[0]]) + rng.expovariate(1 / handle_s)
            else:
                dropped += 1
        free_now = sum(1 for b in busy_until if b <= t)
        budget = dial_budget(CampaignMode.PROGRESSIVE, max_concurrent=100, in_flight=len(ringing),
                             ringing=len(ringing), free_agents=free_now, level=level)
        for _ in range(budget):
            ringing.append((t + rng.uniform(5, 25), rng.random() < answer_p))
            dialled += 1
    return {"rate": abandon_rate(live, dropped), "dialled": dialled, "levels": levels,
            "live": live}


def test_agents_slower_than_answers_drop_the_dial_rate_and_keep_abandons_under_the_cap():
    fixed = simulate(agents=5, handle_s=180, answer_p=0.6, hours=8, cap=0.03, adaptive=False)
    paced = simulate(agents=5, handle_s=180, answer_p=0.6, hours=8, cap=0.03, adaptive=True)
    assert fixed["rate"] > 0.03                      # overdialling at level 3 breaks the cap
    assert paced["rate"] < 0.03, paced["rate"]
    assert paced["dialled"] < fixed["dialled"]       # the dial rate dropped
    assert min(paced["levels"]) < max(paced["levels"][:2])
    assert paced["live"] > 0

"""Branch conditions: checking and evaluation are pure."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.conditions import Facts, check, evaluate, in_time_window

MONDAY_10 = datetime(2026, 11, 23, 10, 0)   # a Monday
SUNDAY_23 = datetime(2026, 11, 29, 23, 30)


def facts(now=MONDAY_10, holidays=(), **variables) -> Facts:
    return Facts(variables, now, frozenset(holidays))


@pytest.mark.parametrize("cond, expected", [
    ({"var": "segment", "eq": "gold"}, True),
    ({"var": "segment", "ne": "gold"}, False),
    ({"var": "segment", "in": ["gold", "vip"]}, True),
    ({"var": "segment", "not_in": ["gold"]}, False),
    ({"var": "age", "ge": 65}, False),
    ({"var": "age", "lt": 65}, True),
    ({"var": "age", "gt": "x"}, False),                 # type mismatch is false, not a crash
    ({"var": "missing", "eq": 1}, False),
    ({"var": "missing", "ne": 1}, True),
    ({"var": "missing", "exists": False}, True),
    ({"var": "segment", "exists": True}, True),
    ({"var": "account", "matches": r"\d{4}"}, True),
    ({"var": "customer.tier", "eq": 2}, True),          # dotted names
    ({"time": {"from": "09:00", "to": "18:00"}}, True),
    ({"time": {"from": "18:00", "to": "09:00"}}, False),
    ({"weekday": ["mon", "tue"]}, True),
    ({"weekday": ["sat", "sun"]}, False),
    ({"date": {"from": "2026-11-23", "to": "2026-11-23"}}, True),
    ({"holiday": True}, False),
    ({"holiday": False}, True),
    ({"all": [{"weekday": ["mon"]}, {"var": "segment", "eq": "gold"}]}, True),
    ({"any": [{"weekday": ["sun"]}, {"var": "segment", "eq": "basic"}]}, False),
    ({"not": {"weekday": ["sun"]}}, True),
])
def test_evaluate(cond, expected) -> None:
    assert check(cond) == []
    assert evaluate(cond, facts(segment="gold", age=40, account="1234",
                                customer={"tier": 2})) is expected


def test_holiday_calendar() -> None:
    assert evaluate({"holiday": True}, facts(holidays=[date(2026, 11, 23)]))


def test_overnight_window() -> None:
    cond = {"time": {"from": "22:00", "to": "06:00"}}
    assert evaluate(cond, facts(now=SUNDAY_23))
    assert not evaluate(cond, facts(now=MONDAY_10))


@pytest.mark.parametrize("cond, problem", [
    ({}, "condition must be a non-empty object"),
    ({"var": "x"}, "condition needs exactly one operator"),
    ({"var": "x", "eq": 1, "ne": 2}, "condition needs exactly one operator"),
    ({"var": "x", "in": "abc"}, "condition.in needs a list"),
    ({"var": "x", "matches": "("}, "condition.matches is not a regular expression"),
    ({"var": "x", "exists": "yes"}, "condition.exists needs true or false"),
    ({"time": {"from": "9:00", "to": "18:00"}}, "condition.time.from is not HH:MM"),
    ({"time": {"from": "09:00", "to": "24:00"}}, "condition.time.to is not HH:MM"),
    ({"weekday": ["monday"]}, "condition.weekday must be a list of"),
    ({"date": {"from": "2026-02-30", "to": "2026-03-01"}}, "condition.date.from is not YYYY-MM-DD"),
    ({"holiday": "no such/name"}, "condition.holiday must be true, false or a calendar name"),
    ({"open": True}, "condition.open must be a calendar name"),
    ({"all": []}, "condition.all must be a non-empty list"),
    ({"any": [{"weekday": ["xx"]}]}, "condition.any[0].weekday must be a list of"),
    ({"weather": "sunny"}, "condition: unknown condition 'weather'"),
    ({"time": {"from": "09:00", "to": "10:00"}, "weekday": ["mon"]}, "condition must have exactly one"),
])
def test_check_names_the_problem(cond, problem) -> None:
    problems = check(cond)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


times = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@given(times, times, times)
def test_window_and_its_complement_partition_the_day(now: time, start: time, end: time) -> None:
    if start == end:
        assert in_time_window(now, start, end)
    else:
        assert in_time_window(now, start, end) != in_time_window(now, end, start)

"""Conditions of ``branch`` nodes: pure checking and evaluation (no clock, no I/O).

A condition is a JSON object of exactly one form:

* ``{"all": [c, ...]}``, ``{"any": [c, ...]}``, ``{"not": c}``
* ``{"var": "segment", "<op>": value}`` with op one of ``eq ne in not_in gt ge lt le
  exists matches`` (``exists`` takes true/false; ``matches`` a regular expression)
* ``{"time": {"from": "09:00", "to": "18:00"}}`` local time in [from, to); to <= from wraps
  past midnight
* ``{"weekday": ["mon", "tue", ...]}``
* ``{"date": {"from": "2026-12-24", "to": "2026-12-26"}}`` inclusive
* ``{"holiday": true}`` today is in the node's holiday calendar (false: it is not)
* ``{"holiday": "bank"}`` today is a closed day of the stored calendar ``bank``
* ``{"open": "bank"}`` now is within the opening hours of calendar ``bank`` (and not a closed
  day); calendars are named data (``callpilot calendars import``), looked at in their own zone
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Callable, Iterator, Mapping
from zoneinfo import ZoneInfo

from callpilot.infra.calendar import Calendar
from ivr import template

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
    "in": lambda a, b: a in b, "not_in": lambda a, b: a not in b,
}
VAR_OPS = frozenset(_COMPARE) | {"exists", "matches"}


@dataclass(frozen=True)
class Facts:
    """What a condition may look at."""

    variables: Mapping[str, Any]
    now: datetime                      # local time of the flow's time zone
    holidays: frozenset[date] = frozenset()
    calendars: Mapping[str, Calendar] = field(default_factory=dict)   # by name, for holiday/open


# --------------------------------------------------------------------------- checking

def check(cond: Any, where: str = "condition") -> list[str]:
    """Problems of a condition document (empty: valid)."""
    if not isinstance(cond, dict) or len(cond) == 0:
        return [f"{where} must be a non-empty object"]
    if "var" in cond:
        return _check_var(cond, where)
    if len(cond) != 1:
        return [f"{where} must have exactly one of all, any, not, var, time, weekday, date, holiday, open"]
    (kind, arg), = cond.items()
    checker = _CHECKERS.get(kind)
    if checker is None:
        return [f"{where}: unknown condition {kind!r}"]
    return checker(arg, f"{where}.{kind}")


def _check_group(arg: Any, where: str) -> list[str]:
    if not isinstance(arg, list) or not arg:
        return [f"{where} must be a non-empty list"]
    return [e for i, c in enumerate(arg) for e in check(c, f"{where}[{i}]")]


def _check_var(cond: dict[str, Any], where: str) -> list[str]:
    ops = set(cond) - {"var"}
    if not isinstance(cond["var"], str) or not cond["var"]:
        return [f"{where}.var must be a variable name"]
    if len(ops) != 1 or not ops <= VAR_OPS:
        return [f"{where} needs exactly one operator of {sorted(VAR_OPS)}, got {sorted(ops)}"]
    op = ops.pop()
    value = cond[op]
    if op in ("in", "not_in") and not isinstance(value, list):
        return [f"{where}.{op} needs a list"]
    if op == "exists" and not isinstance(value, bool):
        return [f"{where}.exists needs true or false"]
    if op == "matches":
        try:
            re.compile(value)
        except (re.error, TypeError):
            return [f"{where}.matches is not a regular expression: {value!r}"]
    return []


def _check_time(arg: Any, where: str) -> list[str]:
    if not isinstance(arg, dict) or set(arg) != {"from", "to"}:
        return [f"{where} needs from and to (HH:MM)"]
    return [f"{where}.{k} is not HH:MM: {arg[k]!r}" for k in ("from", "to")
            if parse_hhmm(arg[k]) is None]


def _check_weekday(arg: Any, where: str) -> list[str]:
    if not isinstance(arg, list) or not arg or not set(arg) <= set(WEEKDAYS):
        return [f"{where} must be a list of {', '.join(WEEKDAYS)}"]
    return []


def _check_date(arg: Any, where: str) -> list[str]:
    if not isinstance(arg, dict) or set(arg) != {"from", "to"}:
        return [f"{where} needs from and to (YYYY-MM-DD)"]
    return [f"{where}.{k} is not YYYY-MM-DD: {arg[k]!r}" for k in ("from", "to")
            if parse_date(arg[k]) is None]


def _check_holiday(arg: Any, where: str) -> list[str]:
    if isinstance(arg, bool) or _calendar_name(arg):
        return []
    return [f"{where} must be true, false or a calendar name"]


def _check_open(arg: Any, where: str) -> list[str]:
    return [] if _calendar_name(arg) else [f"{where} must be a calendar name"]


def _calendar_name(arg: Any) -> bool:
    return isinstance(arg, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", arg) is not None


def calendar_names(cond: Any) -> Iterator[str]:
    """Names of the stored calendars a (valid) condition looks at."""
    if not isinstance(cond, dict) or "var" in cond:
        return
    for kind, arg in cond.items():
        if kind in ("all", "any"):
            for c in arg:
                yield from calendar_names(c)
        elif kind == "not":
            yield from calendar_names(arg)
        elif kind in ("holiday", "open") and isinstance(arg, str):
            yield arg


_CHECKERS: dict[str, Callable[[Any, str], list[str]]] = {
    "all": _check_group, "any": _check_group, "not": lambda a, w: check(a, w),
    "time": _check_time, "weekday": _check_weekday, "date": _check_date,
    "holiday": _check_holiday, "open": _check_open,
}


def parse_hhmm(value: Any) -> time | None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        return None
    hour, minute = int(value[:2]), int(value[3:])
    return time(hour, minute) if hour < 24 and minute < 60 else None


def parse_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- evaluation

def evaluate(cond: dict[str, Any], facts: Facts) -> bool:
    """Evaluate a condition that :func:`check` accepted."""
    if "var" in cond:
        return _eval_var(cond, facts)
    (kind, arg), = cond.items()
    return _EVALUATORS[kind](arg, facts)


def _eval_var(cond: dict[str, Any], facts: Facts) -> bool:
    op = next(k for k in cond if k != "var")
    value = template.lookup(facts.variables, cond["var"])
    if op == "exists":
        return (value is not None) == cond[op]
    if value is None:
        return op in ("ne", "not_in")
    if op == "matches":
        return re.fullmatch(cond[op], str(value)) is not None
    try:
        return _COMPARE[op](value, cond[op])
    except TypeError:   # e.g. "abc" > 3: a mismatch, not a crash
        return False


def in_time_window(now: time, start: time, end: time) -> bool:
    if start < end:
        return start <= now < end
    return now >= start or now < end    # wraps midnight (start == end: all day)


def _eval_time(arg: dict[str, str], facts: Facts) -> bool:
    start, end = parse_hhmm(arg["from"]), parse_hhmm(arg["to"])
    return in_time_window(facts.now.time().replace(second=0, microsecond=0), start, end)


def _eval_date(arg: dict[str, str], facts: Facts) -> bool:
    return parse_date(arg["from"]) <= facts.now.date() <= parse_date(arg["to"])


_EVALUATORS: dict[str, Callable[[Any, Facts], bool]] = {
    "all": lambda a, f: all(evaluate(c, f) for c in a),
    "any": lambda a, f: any(evaluate(c, f) for c in a),
    "not": lambda a, f: not evaluate(a, f),
    "time": _eval_time,
    "weekday": lambda a, f: WEEKDAYS[f.now.weekday()] in a,
    "date": _eval_date,
    "holiday": lambda a, f: _eval_holiday(a, f),
    "open": lambda a, f: _eval_open(a, f),
}


def _calendar_time(name: str, facts: Facts) -> tuple[Calendar | None, datetime]:
    calendar = facts.calendars.get(name)
    if calendar is None:
        return None, facts.now
    return calendar, facts.now.astimezone(ZoneInfo(calendar.timezone))


def _eval_holiday(arg: bool | str, facts: Facts) -> bool:
    if isinstance(arg, bool):
        return (facts.now.date() in facts.holidays) == arg
    calendar, local = _calendar_time(arg, facts)
    return calendar is not None and calendar.is_holiday(local.date())


def _eval_open(arg: str, facts: Facts) -> bool:
    calendar, local = _calendar_time(arg, facts)
    return calendar is None or calendar.is_open(local)     # unknown calendar: no hours known

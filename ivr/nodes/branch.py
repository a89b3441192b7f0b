"""``branch``: go to the first rule whose condition holds (variables, time, weekday, holidays).

``{"type": "branch", "rules": [{"when": <condition>, "target": id}, ...], "else": id,
"timezone": "Asia/Seoul", "holidays": ["2026-12-25"], "calendar": "kr"}`` — see
:mod:`ivr.conditions` for conditions.  Time zone: the node's, else the flow's, else UTC.
``calendar`` names a stored calendar whose closed days count as ``{"holiday": true}``;
``{"holiday": "name"}`` / ``{"open": "name"}`` rules look at other stored calendars.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callpilot.infra.calendar import Calendar
from ivr import conditions
from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    when: dict[str, Any]
    target: str


@dataclass
class BranchNode(Node):
    type = "branch"
    id: str
    rules: list[Rule]
    otherwise: str
    timezone: str | None = None
    holidays: frozenset[date] = field(default_factory=frozenset)
    calendar: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> BranchNode:
        return cls(f.node_id, _rules(f), f.target("else") or "", _timezone(f),
                   _holidays(f), f.text("calendar"))

    def targets(self) -> list[str]:
        return [r.target for r in self.rules] + [self.otherwise]

    def calendar_names(self) -> set[str]:
        names = {n for r in self.rules for n in conditions.calendar_names(r.when)}
        return names | ({self.calendar} if self.calendar else set())

    def facts(self, ctx: CallContext) -> conditions.Facts:
        zone = ZoneInfo(self.timezone or ctx.timezone)
        calendars = _calendars(ctx, self.calendar_names())
        holidays = self.holidays
        if self.calendar in calendars:
            holidays = holidays | calendars[self.calendar].holidays()
        return conditions.Facts(ctx.variables, ctx.now().astimezone(zone), holidays, calendars)

    def decide(self, facts: conditions.Facts) -> str:
        return next((r.target for r in self.rules if conditions.evaluate(r.when, facts)),
                    self.otherwise)

    async def run(self, ctx: CallContext) -> Step:
        target = self.decide(self.facts(ctx))
        logger.debug("call %s branch %s -> %s", ctx.driver.call_id, self.id, target)
        return target


def _calendars(ctx: CallContext, names: set[str]) -> dict[str, Calendar]:
    lookup = getattr(ctx.services, "calendar", None)
    if not names or not callable(lookup):
        return {}
    found = {name: lookup(name) for name in names}
    for name in sorted(n for n, c in found.items() if c is None):
        logger.warning("call %s: calendar %r is not stored", ctx.driver.call_id, name)
    return {name: c for name, c in found.items() if c is not None}


def _rules(f: Fields) -> list[Rule]:
    rules = []
    for i, raw in enumerate(f.listing("rules")):
        if not isinstance(raw, dict) or set(raw) != {"when", "target"}:
            f.error(f"rule {i} must be {{when, target}}")
            continue
        for problem in conditions.check(raw["when"], f"rule {i} when"):
            f.error(problem)    # the rule is kept for the graph checks; the flow cannot run
        if not isinstance(raw["target"], str) or not raw["target"]:
            f.error(f"rule {i} target must be a node id")
        else:
            rules.append(Rule(raw["when"], raw["target"]))
    return rules


def _timezone(f: Fields) -> str | None:
    name = f.text("timezone")
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        f.error(f"unknown time zone {name!r}")
        return None
    return name


def _holidays(f: Fields) -> frozenset[date]:
    days = set()
    for value in f.listing("holidays"):
        day = conditions.parse_date(value)
        if day is None:
            f.error(f"holiday {value!r} is not YYYY-MM-DD")
        else:
            days.add(day)
    return frozenset(days)

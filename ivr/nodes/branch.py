"""``branch``: go to the first rule whose condition holds (variables, time, weekday, holidays).

``{"type": "branch", "rules": [{"when": <condition>, "target": id}, ...], "else": id,
"timezone": "Asia/Seoul", "holidays": ["2026-12-25"], "calendar": "kr"}`` — see
:mod:`ivr.conditions` for conditions.  Time zone: the node's, else the flow's, else UTC.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

    def facts(self, ctx: CallContext) -> conditions.Facts:
        zone = ZoneInfo(self.timezone or ctx.timezone)
        holidays = self.holidays
        if self.calendar and ctx.services is not None:
            holidays = holidays | ctx.services.holidays(self.calendar)
        return conditions.Facts(ctx.variables, ctx.now().astimezone(zone), holidays)

    def decide(self, facts: conditions.Facts) -> str:
        return next((r.target for r in self.rules if conditions.evaluate(r.when, facts)),
                    self.otherwise)

    async def run(self, ctx: CallContext) -> Step:
        target = self.decide(self.facts(ctx))
        logger.debug("call %s branch %s -> %s", ctx.driver.call_id, self.id, target)
        return target


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

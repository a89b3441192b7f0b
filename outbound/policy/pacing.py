"""How many calls to start now.

* Concurrency: never more than ``max_concurrent`` calls of a campaign in flight.
* Progressive mode dials only for free agents: ``floor(free_agents * level)`` lines, minus
  the calls already ringing.  ``level`` 1.0 is strictly progressive; above 1.0 overdials.
* Abandon-rate-aware level, VICIdial style (its "adaptive" dial method recomputes the dial
  level every 15 s against a drop-rate target; "tapered" lowers the level as the rate nears
  the target, "hard limit" drops to the floor once it is reached).  The rate is measured per
  campaign over 30 days (TSR 16 CFR 310.4(b)(4)(i): at most 3 % of live-answered calls
  abandoned per campaign per 30-day period).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from outbound.model import CampaignMode

RECOMPUTE_SECONDS = 15          # VICIdial's adaptive interval
ABANDON_PERIOD_DAYS = 30        # TSR measuring period
SAFE_HARBOR_SECONDS = 2.0       # live answer -> agent connected within 2 s, else abandoned
MIN_RING_SECONDS = 15           # TSR: ring at least 15 s (or four rings)
TAPER_FROM = 0.5                # start lowering the level at half the cap


@dataclass(frozen=True)
class Level:
    """Dial level bounds; ``level`` is lines per free agent in progressive mode."""
    minimum: float = 1.0
    maximum: float = 1.0
    step: float = 0.25


def abandon_rate(live_answers: int, abandoned: int) -> float:
    """Abandoned share of live-answered calls (0.0 with no live answer yet)."""
    return abandoned / live_answers if live_answers > 0 else 0.0


def next_level(level: float, rate: float, cap: float, bounds: Level) -> float:
    """The level for the next interval: at or over the cap -> the floor (hard limit); in the
    taper zone (over half the cap) -> down one step scaled by how close the rate is; below it
    -> up one step.  Always within ``bounds``."""
    if rate >= cap:
        new = bounds.minimum
    elif rate > cap * TAPER_FROM:
        closeness = (rate - cap * TAPER_FROM) / (cap * (1 - TAPER_FROM))
        new = level - bounds.step * (1 + 3 * closeness)
    else:
        new = level + bounds.step
    return min(bounds.maximum, max(bounds.minimum, new))


def dial_budget(mode: CampaignMode, *, max_concurrent: int, in_flight: int, ringing: int = 0,
                free_agents: int = 0, level: float = 1.0) -> int:
    """Calls to start now (never negative, never past the concurrency cap)."""
    room = max(0, max_concurrent - in_flight)
    if mode is CampaignMode.NOTIFICATION:
        return room
    lines = math.floor(max(0, free_agents) * max(level, 0.0) + 1e-9) - max(0, ringing)
    return max(0, min(room, lines))

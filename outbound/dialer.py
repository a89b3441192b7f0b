"""The campaign scheduler: every ``poll`` seconds, for each running campaign, how many calls
to start (pacing policy), claim that many due contacts, dial them.

The dial level of each campaign is recomputed every 15 s (VICIdial's adaptive interval)
from its abandon rate over 30 days, and only rises while the rate is under half the cap.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from callpilot.infra.db.campaigns import Campaign
from callpilot.infra.periodic import Periodic
from outbound.calls import OutboundCalls
from outbound.model import CampaignMode
from outbound.policy.pacing import RECOMPUTE_SECONDS, Level, abandon_rate, dial_budget, next_level
from outbound.store import CampaignStore

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=1)     # no campaign call lasts this long without a result
REAP_EVERY = timedelta(minutes=1)


@dataclass
class Pace:
    level: float
    computed_at: datetime | None = None


class Dialer:
    def __init__(self, store: CampaignStore, calls: OutboundCalls, *,
                 free_agents: Callable[[str], int], clock: Callable[[], datetime], poll: float = 1.0):
        self.store, self.calls, self.free_agents = store, calls, free_agents
        self.clock = clock
        self.paces: dict[str, Pace] = {}
        self._reaped_at: datetime | None = None
        # a bad campaign or a database hiccup fails one tick, never the dialling
        self._periodic = Periodic("outbound-dialer", self.tick, poll)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def tick(self) -> None:
        now = self.clock()
        if self._reaped_at is None or now - self._reaped_at >= REAP_EVERY:
            self._reaped_at = now
            await asyncio.to_thread(self.store.close_stale, now, STALE_AFTER)
        for campaign in await asyncio.to_thread(self.store.running):
            await self._dial(campaign, now)

    async def _dial(self, campaign: Campaign, now: datetime) -> None:
        mode = CampaignMode(campaign.mode)
        level = await self._level(campaign, now) if mode is CampaignMode.PROGRESSIVE else 1.0
        in_flight = await asyncio.to_thread(self.store.in_flight, campaign.id)
        budget = dial_budget(mode, max_concurrent=campaign.max_concurrent, in_flight=in_flight,
                             ringing=self.calls.ringing(campaign.name),
                             free_agents=self.free_agents(campaign.agent_queue), level=level)
        if budget <= 0:
            return
        claims = await asyncio.to_thread(self.store.claim_due, campaign, now, budget)
        for claim in claims:
            await self.calls.originate(claim, campaign)

    async def _level(self, campaign: Campaign, now: datetime) -> float:
        pace = self.paces.setdefault(campaign.name, Pace(level=campaign.max_dial_level))
        due = pace.computed_at is None or (now - pace.computed_at).total_seconds() >= RECOMPUTE_SECONDS
        if due:
            live, dropped = await asyncio.to_thread(self.store.abandon_counts, campaign.id, now)
            bounds = Level(minimum=1.0, maximum=max(1.0, campaign.max_dial_level))
            old, pace.level = pace.level, next_level(pace.level, abandon_rate(live, dropped),
                                                     campaign.abandon_cap_percent / 100, bounds)
            pace.computed_at = now
            if pace.level != old:
                logger.info("campaign %s: dial level %.2f -> %.2f (abandoned %d of %d live answers)",
                            campaign.name, old, pace.level, dropped, live)
        return pace.level

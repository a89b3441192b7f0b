"""Callback legs' Stasis roles and events, and the offer key of waiting callers.

Roles (``args[0]`` of StasisStart): ``callback-agent,<attempt>`` the agent leg answered;
``callback-customer,<attempt>`` the customer leg answered (sent on to answering-machine
detection); ``callback-amd,<AMDSTATUS>,<AMDCAUSE>`` the customer leg back from detection
(its attempt is in its channel id).  ChannelDestroyed of a ``callback-<attempt>-*`` leg ends
or settles its attempt; its StasisEnd is ignored (the customer leg leaves Stasis for the
detection and comes back).  A key pressed by a caller waiting in line may start the offer.

Every handler has a logged catch-all: a failed attempt's legs are hung up and the attempt is
settled by ChannelDestroyed; a failed offer leaves the caller waiting in line.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from acd.callback_offer import CallbackOffers
from acd.callbacks import CallbackService
from acd.dispatcher import Dispatcher
from callpilot.infra.asterisk.channel_events import StasisRouter
from callpilot.infra.db.callbacks import attempt_of_channel

logger = logging.getLogger(__name__)


class CallbackStasis:
    def __init__(self, service: CallbackService, offers: CallbackOffers, dispatcher: Dispatcher):
        self.service = service
        self.offers = offers
        self.dispatcher = dispatcher
        self._tasks: set[asyncio.Task] = set()

    def subscribe(self, router: StasisRouter) -> None:
        router.role("callback-agent", self.on_agent)
        router.role("callback-customer", self.on_customer)
        router.role("callback-amd", self.on_screened)
        router.listen(self.on_event)

    async def on_agent(self, channel: dict[str, Any], args: list[str]) -> None:
        attempt = self._attempt(channel)
        if attempt is not None:      # the whisper waits for its playback: a task of its own
            self._spawn(self._guard(self.service.agent_answered(attempt), channel), f"{channel['id']}-whisper")

    async def on_customer(self, channel: dict[str, Any], args: list[str]) -> None:
        attempt = self._attempt(channel)
        if attempt is not None:
            await self._guard(self.service.customer_answered(attempt), channel)

    async def on_screened(self, channel: dict[str, Any], args: list[str]) -> None:
        attempt = self._attempt(channel)
        if attempt is not None:
            verdict = (args[1:] + ["", ""])[:2]
            await self._guard(self.service.screened(attempt, verdict[0], verdict[1]), channel)

    def _attempt(self, channel: dict[str, Any]) -> int | None:
        parsed = attempt_of_channel(channel["id"])
        if parsed is None:
            logger.error("channel %s took a callback role but is no callback leg", channel["id"])
        return parsed[0] if parsed else None

    async def _guard(self, work, channel: dict[str, Any]) -> None:
        try:
            await work
        except Exception:
            logger.exception("callback leg %s: handling failed; hung up", channel["id"])
            await self.service.control.hangup(channel["id"])

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in ("ChannelDestroyed", "ChannelDtmfReceived"):
            return
        channel_id = event["channel"]["id"]
        try:
            if attempt_of_channel(channel_id) is None:
                self._caller_key(channel_id, event)
            elif kind == "ChannelDestroyed":
                await self.service.leg_gone(channel_id, int(event.get("cause", 0)))
            else:
                await self.service.dtmf(channel_id, event["digit"])
        except Exception:
            logger.exception("channel %s: %s handling failed", channel_id, kind)

    def _caller_key(self, channel_id: str, event: dict[str, Any]) -> None:
        call = self.dispatcher.calls.get(channel_id)
        if event.get("type") == "ChannelDtmfReceived" and call is not None:
            self._spawn(self.offers.key(call, event["digit"]), f"offer-{channel_id}")

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

"""The ACD's Stasis roles: ARI events in, calls to ``acd.service`` and the dispatcher.

Roles (``args[0]`` of StasisStart, see ``callpilot.infra.asterisk.channel_events``):
``enqueue,<queue>[,stored]`` a call the dialplan hands to a queue; ``agent,<call id>`` an agent leg we
originated has answered; ``feature,<action>`` an agent's feature code.  A StasisStart with a
role nobody owns is sent to the general queue.  StasisEnd / ChannelDestroyed end calls.

Every handler has a logged catch-all that puts the caller somewhere safe: back in line if the
dispatcher holds it, else an apology and a hang-up recorded as ``system``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from acd.dispatcher import Dispatcher
from acd.service import AcdService
from callpilot.infra.asterisk.ari_helpers import call_id_of_agent_channel
from callpilot.infra.asterisk.channel_events import StasisRouter

logger = logging.getLogger(__name__)


class AcdStasis:
    def __init__(self, service: AcdService):
        self.service = service
        self.dispatcher: Dispatcher = service.dispatcher
        self._tasks: set[asyncio.Task] = set()
        self._entering: set[str] = set()     # calls between their enqueue and the dispatcher
        self.router: StasisRouter | None = None

    def subscribe(self, router: StasisRouter) -> None:
        self.router = router
        router.role("enqueue", self.on_enqueue)
        router.role("agent", self.on_agent)
        router.role("feature", self.on_feature)
        router.fallback(self.on_unknown)
        router.listen(self.on_event)

    # -- StasisStart roles ----------------------------------------------------------------
    async def on_enqueue(self, channel: dict[str, Any], args: list[str]) -> None:
        """``enqueue,<queue>[,stored]``: ``stored`` when a FastAGI flow stored the call's
        routing ticket with its record (only then is the record read: D7)."""
        queue = args[1] if len(args) > 1 and args[1] else self.service.fallback_queue
        await self._enqueue(channel, queue, stored=len(args) > 2 and args[2] == "stored")

    async def on_unknown(self, channel: dict[str, Any], args: list[str]) -> None:
        logger.error("channel %s: unknown Stasis args %s: sent to %s", channel["id"], args,
                     self.service.fallback_queue)
        await self._enqueue(channel, self.service.fallback_queue)

    async def _enqueue(self, channel: dict[str, Any], queue: str, stored: bool = False) -> None:
        """Once per call: a resync taking an unrecorded caller (``Readoption``) and the
        caller's own StasisStart may both arrive just after a connect."""
        call_id = channel["id"]
        if call_id in self._entering or call_id in self.dispatcher.calls:
            logger.info("call %s: already entering the ACD", call_id)
            return
        self._entering.add(call_id)
        try:
            await self.service.enqueue_from_dialplan(channel, queue, stored=stored)
        except Exception:
            logger.exception("call %s: enqueue to %s failed", call_id, queue)
            await self._make_safe(call_id, f"enqueue to {queue} failed")
        finally:
            self._entering.discard(call_id)

    async def on_agent(self, channel: dict[str, Any], args: list[str]) -> None:
        call_id = args[1] if len(args) > 1 else ""
        try:
            await self.dispatcher.agent_answered(channel["id"], call_id)
        except Exception:
            logger.exception("agent leg %s for call %s: answer handling failed", channel["id"], call_id)
            await self.service.control.hangup(channel["id"])
            await self._make_safe(call_id, "agent answer failed")

    async def on_feature(self, channel: dict[str, Any], args: list[str]) -> None:
        action = args[1] if len(args) > 1 else ""
        self._spawn(self.service.feature_code(channel, action), f"feature-{channel['id']}")

    async def _make_safe(self, call_id: str, why: str) -> None:
        """A call the dispatcher still holds stays in line; any other is apologised to."""
        if call_id in self.dispatcher.calls:
            self.dispatcher.kick()
            return
        self._spawn(self.service.apologise(call_id, why), f"apology-{call_id}")

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the end of channels ------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in ("StasisEnd", "ChannelDestroyed"):
            return
        channel_id = event["channel"]["id"]
        destroyed = kind == "ChannelDestroyed"
        cause = int(event.get("cause", 0)) if destroyed else 0
        try:
            await self._channel_gone(channel_id, cause, destroyed)
        except Exception:
            logger.exception("channel %s: %s handling failed", channel_id, kind)

    async def _channel_gone(self, channel_id: str, cause: int, destroyed: bool) -> None:
        """``hung_up``: destroyed, or out of Stasis after a hang-up request, so that nobody asks
        Asterisk to hang it up again (a 404 on every call, D39); a channel that left Stasis
        alive (no request seen) is still hung up by the call's release."""
        request = self.router.hangup_of(channel_id) if self.router else None
        hung_up = destroyed or request is not None
        if call_id_of_agent_channel(channel_id) is not None:
            await self.dispatcher.agent_leg_gone(channel_id, cause, hung_up=hung_up)
        elif channel_id in self.dispatcher.calls:
            await self.dispatcher.caller_gone(
                channel_id, by_system=request is not None and request.soft,
                cause=request.cause if request is not None else cause or None, hung_up=hung_up)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

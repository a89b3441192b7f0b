"""ACD side effects over ARI.  No policy here: the dispatcher decides, these act.

Every action tolerates the objects being gone already (a caller may hang up at any time).
"""
from __future__ import annotations

import asyncio
import enum
import logging

from callpilot.infra.asterisk.ari import AriClient, AriError, AriNotFound
from callpilot.infra.asterisk import ari_helpers as h

logger = logging.getLogger(__name__)


class Bridged(enum.Enum):
    """How an attempt to bridge a caller with its agent leg ended."""

    CONNECTED = "connected"
    CALLER_GONE = "caller gone"        # the caller hung up meanwhile
    AGENT_GONE = "agent gone"          # the agent's leg vanished between its answer and the bridge
    FAILED = "failed"                  # both are there: Asterisk failed the bridge


class CallControl:
    def __init__(self, ari: AriClient, *, app: str):
        self.ari = ari
        self.app = app
        self._holding_ready: set[str] = set()
        self._call_bridges: set[str] = set()     # mixing bridges made while the agent rang
        # False until Asterisk's bridges were read at a (re)connect: a bridge an earlier serve
        # made is then known too, and a call that never rang needs no DELETE (a 404, D39)
        self._bridges_known = False

    async def park(self, call_id: str, queue: str, moh_class: str = "default") -> bool:
        """Put the caller in the queue's holding bridge with music on hold."""
        bridge_id = h.holding_bridge_id(queue)
        for _ in range(2):  # the bridge may have been destroyed behind our back: recreate once
            if bridge_id not in self._holding_ready:
                await self._holding_bridge(bridge_id, queue, moh_class)
            try:
                await self.ari.post(f"/bridges/{bridge_id}/addChannel", channel=call_id,
                                    role="participant")
                return True
            except AriNotFound:
                self._holding_ready.discard(bridge_id)
                if not await h.channel_exists(self.ari, call_id):
                    return False
        return False

    async def _holding_bridge(self, bridge_id: str, queue: str, moh_class: str) -> None:
        await h.ensure_bridge(self.ari, bridge_id, "holding", f"queue {queue}")
        try:
            await self.ari.post(f"/bridges/{bridge_id}/moh", mohClass=moh_class)
        except AriError as exc:
            logger.warning("queue %s: music on hold not started: %s", queue, exc)
        self._holding_ready.add(bridge_id)

    async def unpark(self, call_id: str, queue: str) -> None:
        await h.safe_remove_from_bridge(self.ari, h.holding_bridge_id(queue), call_id)

    async def play(self, channel_id: str, sound_uri: str) -> None:
        """Play to one waiting caller (over the queue's music); gone callers are ignored."""
        try:
            await self.ari.post(f"/channels/{channel_id}/play", media=sound_uri)
        except AriError as exc:
            logger.debug("call %s: announcement not played: %s", channel_id, exc)

    async def ring(self, call_id: str, agent_endpoint: str, channel_id: str, *,
                   timeout: int, caller_id: str) -> bool:
        """Originate the agent leg; it enters Stasis (args agent,<call>) when answered."""
        try:
            await self.ari.post(
                f"/channels/{channel_id}", endpoint=agent_endpoint, app=self.app,
                appArgs=f"agent,{call_id}", timeout=timeout, callerId=caller_id,
                originator=call_id)
            return True
        except AriError as exc:
            logger.warning("call %s: originate to %s failed: %s", call_id, agent_endpoint, exc)
            return False

    async def cancel_ring(self, channel_id: str) -> None:
        await h.safe_hangup(self.ari, channel_id)

    async def prepare_bridge(self, call_id: str) -> None:
        """The call's mixing bridge, made while the agent's phone rings, so that the answer
        finds it ready (one ARI round trip less between the answer and the bridge)."""
        bridge_id = h.call_bridge_id(call_id)
        if bridge_id not in self._call_bridges:
            await h.ensure_bridge(self.ari, bridge_id, "mixing", f"call {call_id}")
            self._call_bridges.add(bridge_id)

    async def connect(self, call_id: str, agent_channel: str, queue: str) -> Bridged:
        """Move the caller from holding into a mixing bridge with the agent.  The bridge (if
        not made yet) and the caller's leaving the holding bridge are independent requests:
        sent together."""
        bridge_id = h.call_bridge_id(call_id)
        await asyncio.gather(self.prepare_bridge(call_id),
                             h.safe_remove_from_bridge(self.ari, h.holding_bridge_id(queue), call_id))
        try:
            await self.ari.post(f"/bridges/{bridge_id}/addChannel", channel=f"{call_id},{agent_channel}")
        except AriError as exc:
            # 400 "Channel not found" names neither leg; 404: the bridge itself went away
            if isinstance(exc, AriNotFound):
                self._call_bridges.discard(bridge_id)
            return await self._who_left(call_id, agent_channel, exc)
        return Bridged.CONNECTED

    async def _who_left(self, call_id: str, agent_channel: str, exc: AriError) -> Bridged:
        caller, agent = await asyncio.gather(h.channel_exists(self.ari, call_id),
                                             h.channel_exists(self.ari, agent_channel))
        if not caller:
            return Bridged.CALLER_GONE
        if not agent:
            return Bridged.AGENT_GONE
        logger.warning("call %s: bridge with %s failed: %s", call_id, agent_channel, exc)
        return Bridged.FAILED

    async def release(self, call_id: str, *channels: str) -> None:
        """Hang up what is left of a call and destroy its bridge: the one this serve made, or
        any, while it does not know which bridges Asterisk holds (D39's 404, mended)."""
        for channel_id in channels:
            if channel_id:
                await h.safe_hangup(self.ari, channel_id)
        bridge_id = h.call_bridge_id(call_id)
        if bridge_id in self._call_bridges or not self._bridges_known:
            self._call_bridges.discard(bridge_id)
            await h.safe_bridge_destroy(self.ari, bridge_id)

    async def learn_bridges(self) -> None:
        """At a (re)connect: the calls' mixing bridges Asterisk holds (an earlier serve's
        included).  On failure every release destroys its bridge, as before."""
        self._bridges_known = False
        try:
            bridges = await self.ari.get("/bridges")
        except Exception as exc:  # noqa: BLE001  (a resync goes on without it)
            logger.warning("bridges not read (%s): every release destroys its call's bridge", exc)
            return
        prefix = h.call_bridge_id("")
        self._call_bridges |= {b["id"] for b in bridges if str(b.get("id", "")).startswith(prefix)}
        self._bridges_known = True

    async def live_channels(self) -> dict[str, dict]:
        channels = await self.ari.get("/channels")
        return {c["id"]: c for c in channels}

    async def answer(self, channel_id: str) -> bool:
        """False when the caller already hung up."""
        return await h.safe_answer(self.ari, channel_id)

    async def hangup(self, channel_id: str) -> None:
        await h.safe_hangup(self.ari, channel_id)

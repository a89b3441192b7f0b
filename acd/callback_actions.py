"""Callback side effects over ARI.  No policy: ``acd.callbacks`` decides, these act.

Channel and bridge ids derive from the attempt id (``callpilot.infra.db.callbacks``), so a
restarted serve finds them.  Every action tolerates the object being gone (404) and runs
under the ARI client's request deadline.

The customer is dialled ONLY here, only through the dedicated callback endpoint and only to
a number that was validated to E.164 when the callback was created: no dialplan path leads
from a caller or a phone to that endpoint (toll fraud).  Answered customer legs go through
the ``[callpilot-callback]`` context for answering-machine detection (app_amd) and come back
into Stasis with its verdict.
"""
from __future__ import annotations

import logging
import re

from callpilot.infra.asterisk import ari_helpers as h
from callpilot.infra.asterisk.ari import AriClient, AriError

logger = logging.getLogger(__name__)

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
AMD_CONTEXT = "callpilot-callback"
AMD_EXTEN = "amd"


def callback_bridge_id(attempt_id: int) -> str:
    return f"cp-callback-{attempt_id}"


class CallbackControl:
    def __init__(self, ari: AriClient, *, app: str, trunk_endpoint: str, caller_id: str = ""):
        self.ari = ari
        self.app = app
        self.trunk_endpoint = trunk_endpoint
        self.caller_id = caller_id

    async def ring_agent(self, attempt_id: int, channel_id: str, endpoint: str, *, timeout: int,
                         caller_id: str) -> bool:
        """The agent leg; it enters Stasis (callback-agent,<attempt>) when answered."""
        return await self._originate(channel_id, endpoint, f"callback-agent,{attempt_id}", timeout, caller_id)

    async def ring_customer(self, attempt_id: int, channel_id: str, number: str, *, timeout: int) -> bool:
        """The customer leg, through the dedicated callback endpoint only."""
        if not E164.fullmatch(number):
            logger.error("attempt %d: %r is not E.164: not dialled", attempt_id, number)
            return False
        endpoint = f"PJSIP/{number}@{self.trunk_endpoint}"
        return await self._originate(channel_id, endpoint, f"callback-customer,{attempt_id}", timeout,
                                     self.caller_id)

    async def _originate(self, channel_id: str, endpoint: str, args: str, timeout: int, caller_id: str) -> bool:
        try:
            await self.ari.post(f"/channels/{channel_id}", endpoint=endpoint, app=self.app, appArgs=args,
                                timeout=timeout, callerId=caller_id)
            return True
        except AriError as exc:
            logger.warning("originate %s to %s failed: %s", channel_id, endpoint, exc)
            return False

    async def screen(self, channel_id: str) -> bool:
        """Send the answered customer leg through answering-machine detection; it comes back
        into Stasis as ``callback-amd,<attempt>,<AMDSTATUS>``."""
        try:
            await self.ari.post(f"/channels/{channel_id}/continue", context=AMD_CONTEXT,
                                extension=AMD_EXTEN, priority=1)
            return True
        except AriError as exc:
            logger.info("customer leg %s not screened: %s", channel_id, exc)
            return False

    async def join(self, attempt_id: int, *channels: str) -> bool:
        """Put legs into the attempt's mixing bridge (created on first use).  ``dtmf_events``
        keeps Asterisk from bridging the two RTP streams natively, where DTMF never reaches
        ARI: the customer's cancel key must."""
        bridge_id = callback_bridge_id(attempt_id)
        await h.ensure_bridge(self.ari, bridge_id, "mixing,dtmf_events", f"callback attempt {attempt_id}")
        try:
            await self.ari.post(f"/bridges/{bridge_id}/addChannel", channel=",".join(channels))
            return True
        except AriError as exc:
            logger.info("attempt %d: %s not bridged: %s", attempt_id, channels, exc)
            return False

    async def play(self, channel_id: str, sound_uri: str, playback_id: str) -> bool:
        try:
            await self.ari.post(f"/channels/{channel_id}/play/{playback_id}", media=sound_uri)
            return True
        except AriError as exc:
            logger.info("channel %s: %s not played: %s", channel_id, sound_uri, exc)
            return False

    async def hangup(self, *channel_ids: str) -> None:
        for channel_id in channel_ids:
            await h.safe_hangup(self.ari, channel_id)

    async def release(self, attempt_id: int, *channel_ids: str) -> None:
        await self.hangup(*channel_ids)
        await h.safe_bridge_destroy(self.ari, callback_bridge_id(attempt_id))

    async def live_channels(self) -> dict[str, dict]:
        return {c["id"]: c for c in await self.ari.get("/channels")}

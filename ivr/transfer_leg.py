"""Bridged transfers over ARI: ring another endpoint for a caller in the IVR, bridge them.

The flow's ``transfer`` node (agent extension or allow-listed route) asks its driver to
``connect``; this does it.  The new leg's id derives from the call id (``cp-xfer-<call>-<n>``)
and enters Stasis with args ``transfer,<call>`` when answered; its events reach us through its
own inbox.  The caller hears ringback meanwhile.  Busy, no answer (the ring ``timeout``),
a failed originate or no event before the deadline: the leg is hung up and the flow goes on
(its fallback).  Answered: caller and leg share a mixing bridge ``cp-xfer-<call>`` until one
of them hangs up; then the other is hung up and the bridge destroyed.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time

import aiohttp

from callpilot.infra.asterisk import ari_helpers as h
from callpilot.infra.asterisk.ari import AriClient, AriError
from callpilot.infra.asterisk.channel_events import ChannelInbox, ChannelInboxes
from ivr.driver import CallerHangup

logger = logging.getLogger(__name__)

STASIS_ROLE = "transfer"
ANSWER_MARGIN = 10.0          # seconds past the ring timeout before we give up on events
MAX_TALK_SECONDS = 4 * 3600   # a bridged transfer is ended after this, whatever happens
CAUSE_BUSY = 17
RINGBACK = "tone:ring"
POLL_SECONDS = 0.5
ORIGINATE_TRIES = 3
ARI_FAULTS = (AriError, aiohttp.ClientError, asyncio.TimeoutError)


class TransferResult(str, enum.Enum):
    COMPLETED = "completed"     # bridged, then one side hung up
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"           # originate refused (unknown endpoint, unreachable) or no event


def leg_id(call_id: str, attempt: int) -> str:
    return f"cp-xfer-{call_id}-{attempt}"


def bridge_id(call_id: str) -> str:
    return f"cp-xfer-{call_id}"


def call_id_of_leg(channel_id: str) -> str | None:
    """Inverse of :func:`leg_id`: 'cp-xfer-<call>-<n>' -> '<call>'."""
    if not channel_id.startswith("cp-xfer-"):
        return None
    return channel_id[len("cp-xfer-"):].rsplit("-", 1)[0]


class AriTransfer:
    def __init__(self, ari: AriClient, inboxes: ChannelInboxes, *, app: str):
        self.ari = ari
        self.inboxes = inboxes
        self.app = app
        self._attempts: dict[str, int] = {}       # call id -> transfer legs rung so far

    async def connect(self, caller: ChannelInbox, endpoint: str, *, timeout: int,
                      caller_id: str, label: str) -> TransferResult:
        call_id = caller.channel_id
        await self._ringback(call_id, ringback := f"cp-ringback-{call_id}")
        leg = await self._originate(call_id, endpoint, timeout, caller_id)
        if leg is None:
            await h.safe_stop_playback(self.ari, ringback)
            return TransferResult.FAILED
        box = self.inboxes.open(leg)      # opened before the originate: no event is missed
        try:
            answered = await self._await_answer(caller, box, timeout + ANSWER_MARGIN)
            await h.safe_stop_playback(self.ari, ringback)
            if answered is not None:
                logger.info("call %s: transfer to %s not answered: %s (cause %s)", call_id, label,
                            answered.value, box.cause)
                return answered
            logger.info("call %s: transfer to %s answered (leg %s)", call_id, label, leg)
            await self._talk(caller, box)
            return TransferResult.COMPLETED
        finally:
            await h.safe_stop_playback(self.ari, ringback)
            await h.safe_hangup(self.ari, leg)
            await h.safe_bridge_destroy(self.ari, bridge_id(call_id))
            self.inboxes.close(leg)
            self._attempts.pop(call_id, None)

    async def resume(self, caller: ChannelInbox, leg: str) -> TransferResult:
        """A restarted serve takes over a transfer that was bridged before it went away."""
        box = self.inboxes.open(leg)
        box.started = True
        try:
            await self._talk(caller, box)
            return TransferResult.COMPLETED
        finally:
            await h.safe_hangup(self.ari, leg)
            await h.safe_bridge_destroy(self.ari, bridge_id(caller.channel_id))
            self.inboxes.close(leg)

    async def _ringback(self, call_id: str, playback_id: str) -> None:
        try:
            await self.ari.post(f"/channels/{call_id}/play", media=RINGBACK, playbackId=playback_id)
        except AriError as exc:
            logger.debug("call %s: no ringback: %s", call_id, exc)

    async def _originate(self, call_id: str, endpoint: str, timeout: int,
                         caller_id: str) -> str | None:
        """The new leg's id, None if Asterisk refused.  An id still in use (409: a leg of
        this call from before a restart is being torn down) moves on to the next number.
        The leg's inbox is open before the request, so an instant busy is not missed."""
        for _ in range(ORIGINATE_TRIES):
            attempt = self._attempts[call_id] = self._attempts.get(call_id, 0) + 1
            leg = leg_id(call_id, attempt)
            self.inboxes.open(leg)
            try:
                await self.ari.post(f"/channels/{leg}", endpoint=endpoint, app=self.app,
                                    appArgs=f"{STASIS_ROLE},{call_id}", timeout=timeout,
                                    callerId=caller_id, originator=call_id)
                return leg
            except ARI_FAULTS as exc:
                self.inboxes.close(leg)
                logger.warning("call %s: originate %s to %s failed: %r", call_id, leg, endpoint, exc)
                if isinstance(exc, AriError) and exc.status == 409:
                    continue
                if not isinstance(exc, AriError):     # timed out: it may ring all the same
                    with contextlib.suppress(*ARI_FAULTS):
                        await h.safe_hangup(self.ari, leg)
                return None
        return None

    async def _await_answer(self, caller: ChannelInbox, box: ChannelInbox,
                            deadline_s: float) -> TransferResult | None:
        """None once the leg answered; else why not.  CallerHangup if the caller left."""
        deadline = time.monotonic() + deadline_s
        while not box.started:
            if caller.gone:
                raise CallerHangup(caller.channel_id)
            if box.gone:
                return TransferResult.BUSY if box.cause == CAUSE_BUSY else TransferResult.NO_ANSWER
            left = deadline - time.monotonic()
            if left <= 0:
                return TransferResult.FAILED
            await _wait_either(caller, box, left)
        return None

    async def _talk(self, caller: ChannelInbox, box: ChannelInbox) -> None:
        call_id = caller.channel_id
        bridge = await h.ensure_bridge(self.ari, bridge_id(call_id), "mixing", f"transfer {call_id}")
        missing = [c for c in (call_id, box.channel_id) if c not in bridge.get("channels", ())]
        if missing:      # both, unless a restarted serve finds them bridged already
            await self.ari.post(f"/bridges/{bridge_id(call_id)}/addChannel", channel=",".join(missing))
        deadline = time.monotonic() + MAX_TALK_SECONDS
        while not caller.gone and not box.gone and time.monotonic() < deadline:
            await _wait_either(caller, box, min(5.0, deadline - time.monotonic()))


async def _wait_either(a: ChannelInbox, b: ChannelInbox, timeout: float) -> None:
    """Until either inbox changes (or ``timeout``).  Short waits: a change that lands between
    the caller's check and ``wait_change`` is seen on the next round."""
    timeout = min(timeout, POLL_SECONDS)
    waits = [asyncio.ensure_future(a.wait_change(timeout)), asyncio.ensure_future(b.wait_change(timeout))]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()

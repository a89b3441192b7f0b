"""Where an ARI event goes: its lane, its Stasis role, its channel's inbox.

* :func:`lane_of` names the call an event belongs to (agent legs carry their call's id, see
  ``ari_helpers.agent_channel_id``), so the ARI client handles one call's events in order and
  different calls side by side.
* :class:`StasisRouter` dispatches StasisStart on ``args[0]`` (the role the dialplan or an
  originate gave: ``inbound``, ``enqueue``, ``agent``, ``feature``) to the domain that owns
  the role, and hands every event to the listeners (the ACD's hang-up handling).
* Events for one channel (DTMF, playback finished, Stasis end) are routed by ``ChannelInboxes``
  into that channel's inbox; drivers await them.  Digits pressed while nothing is listening
  are buffered (type-ahead), so a caller who answers before the prompt ends is not lost.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from callpilot.infra.asterisk.ari_helpers import call_id_of_agent_channel

logger = logging.getLogger(__name__)

Event = dict[str, Any]

# Every ARI event type the call-handling application reads (router, inboxes, the ACD's and
# outbound's listeners).  Asterisk sends only these (``AriClient(events=...)``): a handler
# that needs another type must add it here, or it never arrives.
HANDLED_EVENTS = frozenset({"StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest",
                            "ChannelDtmfReceived", "PlaybackFinished"})
RoleHandler = Callable[[dict[str, Any], list[str]], Awaitable[None]]   # (channel, args)
Listener = Callable[[Event], Awaitable[None]]


def channel_of(event: Event) -> str:
    """The channel an event concerns ('' for none): its channel, or a playback's target."""
    channel = event.get("channel")
    if isinstance(channel, dict) and channel.get("id"):
        return channel["id"]
    target = (event.get("playback") or {}).get("target_uri", "")
    return target[len("channel:"):] if target.startswith("channel:") else ""


def lane_of(event: Event) -> str:
    """The call an event belongs to: an agent leg's events share its caller's lane."""
    channel = channel_of(event)
    return call_id_of_agent_channel(channel) or channel


@dataclass(frozen=True)
class HangupRequest:
    """A ChannelHangupRequest: ``soft`` when Asterisk itself (shutdown, an ARI/AMI/CLI
    request) asked the channel to hang up, not when the far end sent BYE/CANCEL."""

    cause: int
    soft: bool


class StasisRouter:
    def __init__(self, inboxes: ChannelInboxes):
        self.inboxes = inboxes
        self._hangups: dict[str, HangupRequest] = {}
        self._roles: dict[str, RoleHandler] = {}
        self._fallback: RoleHandler | None = None
        self._listeners: list[Listener] = []

    def role(self, name: str, handler: RoleHandler) -> None:
        self._roles[name] = handler

    def fallback(self, handler: RoleHandler) -> None:
        """For a StasisStart whose role nobody owns (a dialplan mistake)."""
        self._fallback = handler

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def hangup_of(self, channel_id: str) -> HangupRequest | None:
        """How the channel was asked to hang up, if it was (kept until it is destroyed)."""
        return self._hangups.get(channel_id)

    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "ChannelHangupRequest":
            self._note_hangup(event)
        self.inboxes.route(event)
        if kind == "StasisStart":
            await self._start(event)
        for listener in self._listeners:
            await listener(event)
        if kind == "ChannelDestroyed":
            logger.info("channel %s destroyed: cause %s %s", channel_of(event), event.get("cause"),
                        event.get("cause_txt", ""))
            self._hangups.pop(channel_of(event), None)

    def _note_hangup(self, event: Event) -> None:
        request = HangupRequest(int(event.get("cause") or 0), bool(event.get("soft")))
        logger.info("channel %s: hang-up requested, cause %d%s", channel_of(event), request.cause,
                    " (soft: Asterisk's own)" if request.soft else "")
        self._hangups.setdefault(channel_of(event), request)   # the first request tells who

    async def _start(self, event: Event) -> None:
        channel, args = event["channel"], list(event.get("args") or [])
        handler = self._roles.get(args[0]) if args else None
        if handler is None:
            logger.error("channel %s entered Stasis with unknown args %s", channel["id"], args)
            handler = self._fallback
        if handler is not None:
            await handler(channel, args)


@dataclass
class ChannelInbox:
    channel_id: str
    digits: list[str] = field(default_factory=list)
    finished_playbacks: set[str] = field(default_factory=set)
    gone: bool = False
    hangup_soft: bool = False          # Asterisk itself asked for the hang-up (shutdown, ...)
    started: bool = False              # StasisStart seen (an originated leg has answered)
    cause: int | None = None           # hangup cause from ChannelDestroyed
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        self.changed.set()

    async def wait_change(self, timeout: float) -> None:
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass


class ChannelInboxes:
    """Routes per-channel ARI events to the inbox of the channel they concern."""

    def __init__(self) -> None:
        self._inboxes: dict[str, ChannelInbox] = {}

    def open(self, channel_id: str) -> ChannelInbox:
        return self._inboxes.setdefault(channel_id, ChannelInbox(channel_id))

    def close(self, channel_id: str) -> None:
        self._inboxes.pop(channel_id, None)

    def route(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "ChannelDtmfReceived":
            self._with(event["channel"]["id"], lambda box: box.digits.append(event["digit"]))
        elif kind == "PlaybackFinished":
            playback = event["playback"]
            target = playback.get("target_uri", "")
            if target.startswith("channel:"):
                self._with(target[len("channel:"):], lambda box: box.finished_playbacks.add(playback["id"]))
        elif kind == "ChannelHangupRequest" and event.get("soft"):
            self._with(event["channel"]["id"], lambda box: setattr(box, "hangup_soft", True))
        elif kind in ("StasisEnd", "ChannelDestroyed"):
            self._with(event["channel"]["id"], lambda box: _gone(box, event.get("cause")))
        elif kind == "StasisStart":
            self._with(event["channel"]["id"], lambda box: setattr(box, "started", True))

    def _with(self, channel_id: str, change) -> None:
        box = self._inboxes.get(channel_id)
        if box is not None:
            change(box)
            box.poke()


def _gone(box: ChannelInbox, cause: Any) -> None:
    box.gone = True
    if cause is not None:
        box.cause = int(cause)


async def wait_playback(inboxes: ChannelInboxes, channel_id: str, playback_id: str, timeout: float) -> bool:
    """Until ``playback_id`` on ``channel_id`` has finished (True), the channel is gone or
    ``timeout`` passed (False).  Opens the channel's inbox if needed and closes it after."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    box = inboxes.open(channel_id)
    try:
        while playback_id not in box.finished_playbacks and not box.gone and loop.time() < deadline:
            await box.wait_change(deadline - loop.time())
        return playback_id in box.finished_playbacks
    finally:
        inboxes.close(channel_id)

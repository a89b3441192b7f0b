"""Per-channel inboxes for ARI events.

Events for one channel (DTMF, playback finished, Stasis end) are routed by ``ChannelInboxes``
into that channel's inbox; drivers await them.  Digits pressed while nothing is listening
are buffered (type-ahead), so a caller who answers before the prompt ends is not lost.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any


logger = logging.getLogger(__name__)


@dataclass
class ChannelInbox:
    channel_id: str
    digits: list[str] = field(default_factory=list)
    finished_playbacks: set[str] = field(default_factory=set)
    gone: bool = False
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
        elif kind in ("StasisEnd", "ChannelDestroyed"):
            self._with(event["channel"]["id"], lambda box: setattr(box, "gone", True))

    def _with(self, channel_id: str, change) -> None:
        box = self._inboxes.get(channel_id)
        if box is not None:
            change(box)
            box.poke()




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

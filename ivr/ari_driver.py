"""The IVR's CallDriver over ARI: playback with DTMF barge-in, digit collection, hangup."""
from __future__ import annotations

import itertools
import logging
import time

from callpilot.asterisk.ari import AriClient, AriNotFound
from callpilot.asterisk.ari_helpers import safe_hangup, safe_stop_playback
from callpilot.asterisk.channel_events import ChannelInbox
from ivr.driver import CallerHangup

logger = logging.getLogger(__name__)


class AriCallDriver:
    """Implements ivr's CallDriver protocol for one channel in Stasis."""

    _ids = itertools.count(1)

    def __init__(self, ari: AriClient, inbox: ChannelInbox, *, caller_id: str, did: str):
        self.ari = ari
        self.inbox = inbox
        self.call_id = inbox.channel_id
        self.caller_id = caller_id
        self.did = did

    def _check(self) -> None:
        if self.inbox.gone:
            raise CallerHangup(self.call_id)

    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        self._check()
        if barge_in and self.inbox.digits:
            return self.inbox.digits.pop(0)
        playback_id = f"cp-pb-{self.call_id}-{next(self._ids)}"
        try:
            await self.ari.post(f"/channels/{self.call_id}/play", media=",".join(sounds),
                                playbackId=playback_id)
        except AriNotFound as exc:
            raise CallerHangup(self.call_id) from exc
        return await self._await_playback(playback_id, barge_in)

    async def _await_playback(self, playback_id: str, barge_in: bool) -> str | None:
        while True:
            self._check()
            if barge_in and self.inbox.digits:
                await safe_stop_playback(self.ari, playback_id)
                return self.inbox.digits.pop(0)
            if playback_id in self.inbox.finished_playbacks:
                self.inbox.finished_playbacks.discard(playback_id)
                return None
            await self.inbox.wait_change(5.0)

    async def read_digits(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                          first: str | None = None, inter_digit_timeout: float = 3.0) -> str:
        collected = first or ""
        deadline = time.monotonic() + (inter_digit_timeout if collected else timeout)
        while len(collected) < max_digits:
            self._check()
            if self.inbox.digits:
                digit = self.inbox.digits.pop(0)
                if terminator and digit == terminator:
                    break
                collected += digit
                deadline = time.monotonic() + inter_digit_timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self.inbox.wait_change(left)
        return collected

    async def hangup(self) -> None:
        await safe_hangup(self.ari, self.call_id)

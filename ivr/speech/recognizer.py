"""Grammar-constrained recognition of one answer.

Always recognise with a grammar in menus: decoding with the phrases of the question costs a
real-time factor of ~0.02 against ~0.5 without (FACTS.md).  The Korean model has no
``[unk]`` word, so any sound maps to some grammar phrase: the word confidence is the guard.
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from ivr.driver import Recognition
from ivr.speech.engine import complete_phrase
from ivr.speech.model import SpeechModel
from ivr.tts import read_wav, resample

logger = logging.getLogger(__name__)

SAMPLE_WIDTH = 2            # 16-bit signed linear, mono
SUPPORTED_RATES = (8000, 16000)

# Optional "garbage" words added to a grammar (``fillers=True``): noise and off-grammar speech
# land on them instead of on an answer, and count as "heard, no match".  Measured on
# espeak-ng Korean: white noise with a 네/아니요 grammar fell on a filler 12/12 times instead
# of giving 6/12 false answers, and 네/아니요 stayed 6/6 — but two-syllable words dropped
# from 8/12 to 2/12 (16 kHz) because the fillers absorb their syllables.  Off by default.
FILLERS: dict[str, tuple[str, ...]] = {"ko": ("음", "어", "아", "그", "저", "뭐", "으")}


def to_recognition(result: dict[str, Any], grammar: list[str],
                   fillers: tuple[str, ...] = ()) -> Recognition | None:
    """Vosk result JSON -> Recognition, None if nothing was heard.

    Filler words are dropped first; the text is '' (heard, no match) unless what remains is
    exactly one grammar entry.  Confidence: mean word confidence of what remains.
    """
    words = [w for w in (result.get("result") or []) if w.get("word") not in fillers]
    text = " ".join(w for w in str(result.get("text", "")).split() if w not in fillers)
    if not str(result.get("text", "")).strip():
        return None
    if not text:
        return Recognition("", 0.0)
    confidence = sum(w.get("conf", 0.0) for w in words) / len(words) if words else 0.0
    return Recognition(text if text in grammar else "", round(float(confidence), 3))


class GrammarRecognizer:
    """One utterance against ``grammar``; feed 16-bit mono PCM at ``sample_rate``."""

    def __init__(self, model: SpeechModel, grammar: list[str], sample_rate: int,
                 *, fillers: bool = False) -> None:
        import vosk

        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"sample rate {sample_rate} not in {SUPPORTED_RATES}")
        self.grammar = model.known_phrases([" ".join(p.split()) for p in grammar])
        dropped = set(grammar) - set(self.grammar)
        if dropped:
            logger.warning("speech model does not know %s; not listening for them", sorted(dropped))
        if not self.grammar:
            raise ValueError("no phrase of the grammar is in the speech model's vocabulary")
        self.sample_rate = sample_rate
        extra = [w for w in FILLERS.get(model.language, ()) if w not in self.grammar] if fillers else []
        self.fillers = tuple(model.known_phrases(extra))
        self._rec = vosk.KaldiRecognizer(model.vosk_model, sample_rate,
                                         json.dumps(self.grammar + list(self.fillers),
                                                    ensure_ascii=False))
        self._rec.SetWords(True)
        self.audio_seconds = 0.0
        self.speech_started = False
        self._final: dict[str, Any] | None = None

    def accept(self, pcm: bytes) -> bool:
        """Feed audio; True once the utterance is complete (speech followed by silence)."""
        if self._final is not None:
            return True
        self.audio_seconds += len(pcm) / (SAMPLE_WIDTH * self.sample_rate)
        if self._rec.AcceptWaveform(pcm):
            result = json.loads(self._rec.Result())
            if result.get("text"):
                self._final = result
                return True
            return False        # an endpoint on silence: keep listening
        if not self.speech_started and json.loads(self._rec.PartialResult()).get("partial"):
            self.speech_started = True
        return False

    def partial(self) -> str:
        """The complete grammar phrase decoded so far, or '' (early endpointing)."""
        if self._final is not None:
            return complete_phrase(str(self._final.get("text", "")), self.grammar)
        text = json.loads(self._rec.PartialResult()).get("partial", "")
        return complete_phrase(" ".join(w for w in text.split() if w not in self.fillers),
                               self.grammar)

    def result(self) -> Recognition | None:
        """The answer so far (call after the end of input, or after :meth:`accept` said True)."""
        final = self._final if self._final is not None else json.loads(self._rec.FinalResult())
        return to_recognition(final, self.grammar, self.fillers)


def recognize(model: SpeechModel, pcm: bytes, sample_rate: int, grammar: list[str],
              frame_ms: int = 20, *, fillers: bool = False) -> Recognition | None:
    """Recognise a whole recording, fed in RTP-sized frames (blocking)."""
    recognizer = GrammarRecognizer(model, grammar, sample_rate, fillers=fillers)
    step = sample_rate * frame_ms // 1000 * SAMPLE_WIDTH
    for start in range(0, len(pcm), step):
        if recognizer.accept(pcm[start:start + step]):
            break
    return recognizer.result()


def recognize_wav(model: SpeechModel, path: str | Path, grammar: list[str], *,
                  fillers: bool = False) -> Recognition | None:
    """Recognise a recorded WAV (e.g. AGI ``RECORD FILE ... wav``); 8 or 16 kHz mono 16-bit."""
    audio = read_wav(Path(path))
    if audio.rate not in SUPPORTED_RATES:
        audio = resample(audio, 16000)
    return recognize(model, audio.samples.astype("<i2").tobytes(), audio.rate, grammar,
                     fillers=fillers)


async def recognize_async(model: SpeechModel, pcm: bytes, sample_rate: int,
                          grammar: list[str], *, fillers: bool = False) -> Recognition | None:
    return await asyncio.to_thread(lambda: recognize(model, pcm, sample_rate, grammar,
                                                     fillers=fillers))

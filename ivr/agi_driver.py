"""The IVR's CallDriver over FastAGI (panoramisk): same flows for sites that keep control
in the dialplan.  DTMF + prompts; speech through ``RECORD FILE`` + Vosk on the recording.

Speech over AGI has no barge-in by voice (AGI cannot stream audio to us while a prompt
plays; keys still interrupt) and Asterisk's silence detector works in whole seconds: each
``RECORD FILE`` stops after ``silence_seconds`` of silence, so an answer ends ~1 s after the
caller stops, and recordings without speech are repeated until the node's ``timeout``.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ivr.driver import DTMF, CallerHangup, Recognition
from ivr.speech.engines import SpeechEngines
from ivr.speech.loading import LOAD_WAIT_SECONDS, CallWait, SpeechLoading
from ivr.speech.utterance import DECODER, ListenSettings, recognize_pcm
from ivr.speech.vad import EnergyVad, VadSettings
from ivr.tts import read_wav, resample

logger = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"


@dataclass
class AgiSpeech:
    """Speech over AGI: the shared model and a directory Asterisk writes recordings into
    (same absolute path for Asterisk and serve, like the prompts).  The engines may still be
    loading: a call waits ``load_wait`` seconds for them at most (D40)."""

    engines: SpeechEngines | SpeechLoading
    directory: Path
    silence_seconds: int = 1
    max_speech: float = 8.0
    vad: VadSettings = VadSettings()
    load_wait: float = LOAD_WAIT_SECONDS


def sound_path(uri: str) -> str:
    """'sound:/abs/x' -> '/abs/x' (AGI STREAM FILE takes a path without extension)."""
    return uri.split(":", 1)[1] if uri.startswith("sound:") else uri


class AgiCallDriver:
    _ids = itertools.count(1)

    def __init__(self, request, *, speech: AgiSpeech | None = None):
        self.request = request
        headers = request.headers
        self.call_id = headers.get("agi_uniqueid", "")
        self.caller_id = headers.get("agi_callerid", "")
        self.did = headers.get("agi_extension", "")
        self.speech = speech
        if speech is None:
            self.listen = None    # type: ignore[assignment]  # no speech capability
        else:
            self._engines = CallWait(speech.engines, speech.load_wait, self.call_id)

    async def _command(self, command: str) -> dict:
        result = await self.request.send_command(command)
        if result.get("error") in ("AGIResultHangup", "AGIAppError") or result.get("status_code") == 511:
            raise CallerHangup(self.call_id)
        if "error" in result:
            logger.warning("call %s: AGI %r -> %s", self.call_id, command, result)
        return result

    async def answer(self) -> None:
        await self._command("ANSWER")

    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        keys = ALL_KEYS if barge_in else '""'
        for uri in sounds:
            result = await self._command(f'STREAM FILE {sound_path(uri)} {keys}')
            digit = _digit(result)
            if digit:
                return digit
        return None

    async def read_digits(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                          first: str | None = None, inter_digit_timeout: float = 3.0) -> str:
        collected = first or ""
        wait = inter_digit_timeout if collected else timeout
        while len(collected) < max_digits:
            started = time.monotonic()
            digit = _digit(await self._command(f"WAIT FOR DIGIT {int(wait * 1000)}"))
            if not digit:
                break
            if terminator and digit == terminator:
                break
            collected += digit
            wait = inter_digit_timeout
            logger.debug("call %s: digit %s after %.1fs", self.call_id, digit, time.monotonic() - started)
        return collected

    async def listen(self, grammar: list[str], *, timeout: float, barge_in_sounds: list[str],
                     language: str | None = None) -> Recognition | DTMF | None:
        digit = await self.play(barge_in_sounds, barge_in=True) if barge_in_sounds else None
        if digit:
            return DTMF(digit)
        engine = await self._engines.engine(language)
        if engine is None:
            digits = await self.read_digits(max_digits=1, timeout=timeout, terminator=None)
            return DTMF(digits) if digits else None
        deadline = time.monotonic() + timeout
        while True:
            heard = await self._record_answer(engine, grammar)
            if heard is not None or time.monotonic() >= deadline:
                return heard

    async def _record_answer(self, engine, grammar: list[str]) -> Recognition | DTMF | None:
        """One RECORD FILE (ends on silence or a key); None if it holds no speech."""
        speech = self.speech
        speech.directory.mkdir(parents=True, exist_ok=True)
        base = speech.directory / f"agi-{self.call_id}-{next(self._ids)}"   # call ids hold dots
        recording = base.parent / f"{base.name}.wav"
        max_ms = int((speech.max_speech + speech.silence_seconds + 1) * 1000)
        try:
            result = await self._command(f"RECORD FILE {base} wav {ALL_KEYS} {max_ms} "
                                         f"s={speech.silence_seconds}")
            if _status(result) == "dtmf":       # "(timeout)" carries ms left, not a key
                return DTMF(_digit(result))
            return await asyncio.get_running_loop().run_in_executor(
                DECODER, _recognize_recording, speech, engine, recording, grammar)
        finally:
            recording.unlink(missing_ok=True)

    async def set_variable(self, name: str, value: str) -> None:
        await self._command(f'SET VARIABLE {name} "{value}"')

    async def hangup(self) -> None:
        try:
            await self._command("HANGUP")
        except CallerHangup:
            pass


def _status(result: dict) -> str:
    """The word in parentheses after result= ("dtmf", "timeout", "hangup"...), or ''."""
    value = result.get("result") or ("", "")
    return value[1] if isinstance(value, tuple) and len(value) > 1 else ""


def _digit(result: dict) -> str:
    """AGI returns the key's ASCII code in result=; 0 means none."""
    try:
        code = int(result.get("result", ("0",))[0])
    except (TypeError, ValueError):
        return ""
    return chr(code) if code > 0 else ""


def _recognize_recording(speech: AgiSpeech, engine, path: Path,
                         grammar: list[str]) -> Recognition | None:
    """Blocking: None when the recording holds no speech (VAD), else what the engine heard."""
    if not path.exists():
        return None
    audio = read_wav(path)
    if audio.rate not in (8000, 16000):
        audio = resample(audio, 16000)
    pcm = audio.samples.astype("<i2").tobytes()
    vad = EnergyVad(audio.rate, speech.vad)
    vad.feed(pcm)
    if not vad.started:
        return None
    settings = ListenSettings(vad=speech.vad, max_speech=speech.max_speech)
    return recognize_pcm(engine, pcm, audio.rate, grammar, settings) or Recognition("", 0.0)

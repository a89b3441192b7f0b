"""Text-to-speech prompt cache: pyttsx3 (espeak-ng) -> 8 kHz (and 16 kHz) WAV files.

Asterisk plays ``sound:/abs/path/name`` and picks the best file among ``name.wav`` (8 kHz
signed linear) and ``name.wav16`` (16 kHz).  Files are named by a hash of what was said, in
which voice and at which rate, so a prompt is synthesised once per install and every later
call only checks that the file exists.

espeak-ng (through pyttsx3's binding) is one process-wide instance with global state and a
global callback: it is not thread-safe and cannot be initialised twice.
:class:`EspeakSynthesizer` initialises it once, in synchronous mode, and serialises every
synthesis behind one lock.  A sentence takes a few milliseconds, so the lock costs nothing
measurable; callers on the event loop go through :meth:`PromptCache.render_async`
(``asyncio.to_thread``).
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import os
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np
import soxr

logger = logging.getLogger(__name__)

NARROWBAND_RATE = 8000
WIDEBAND_RATE = 16000
WIDEBAND_SUFFIX = ".wav16"
# Unused prompts younger than this stay (dynamic prompts, calls still in an old version).
GRACE_SECONDS = 3600.0
MAX_REMEMBERED_PATHS = 10_000      # prompt -> file name, kept in memory


class TtsError(RuntimeError):
    """Synthesis failed or the requested voice does not exist."""


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit PCM samples at ``rate`` Hz."""

    samples: np.ndarray  # int16, one dimension
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


class Synthesizer(Protocol):
    def synthesize(self, text: str, voice: str, rate: int) -> Audio: ...


# --------------------------------------------------------------------------- voices

@dataclass(frozen=True)
class VoiceInfo:
    id: str                 # espeak-ng identifier, e.g. "gmw/en-us"
    languages: tuple[str, ...]


def normalise_language(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def resolve_voice(language: str, voices: Iterable[VoiceInfo]) -> str:
    """Map a language id ("en-US", "ko", "en") or a voice id to an espeak-ng voice id.

    Order: exact language, exact voice id or its last path part, then the primary subtag
    ("ko-kr" -> "ko").  Raises :class:`TtsError` when nothing fits.
    """
    wanted = normalise_language(language)
    voices = list(voices)
    for match in (_by_language, _by_id):
        found = match(wanted, voices)
        if found:
            return found
    primary = wanted.split("-")[0]
    if primary != wanted:
        return resolve_voice(primary, voices)
    raise TtsError(f"no espeak-ng voice for language {language!r}")


def _by_language(wanted: str, voices: list[VoiceInfo]) -> str | None:
    return next((v.id for v in voices if wanted in v.languages), None)


def _by_id(wanted: str, voices: list[VoiceInfo]) -> str | None:
    return next((v.id for v in voices if wanted in (v.id, v.id.rsplit("/", 1)[-1])), None)


# --------------------------------------------------------------------------- espeak

class EspeakSynthesizer:
    """The process's one espeak-ng instance, driven through pyttsx3's espeak-ng binding.

    pyttsx3's ``Engine.save_to_file`` loop is not used: its ``stop()`` calls
    ``espeak_Cancel`` while espeak's asynchronous queue still holds the next voice/rate
    change, so renders with changing voice or rate came out at the wrong speed (measured:
    49 of 68 wrong).  Here espeak-ng runs in synchronous mode (the callback fires inside
    ``espeak_Synth`` on the calling thread) and every synthesis holds one lock.
    """

    _instance: EspeakSynthesizer | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        import pyttsx3.drivers.espeak as espeak_driver
        from pyttsx3.drivers import _espeak

        self._espeak = _espeak
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._finished = threading.Event()
        self.sample_rate, self._synchronous = self._initialise(espeak_driver.EspeakDriver)
        self._voices = self._list_voices()
        self._resolved: dict[str, str] = {}

    def _initialise(self, driver_class: type) -> tuple[int, bool]:
        """Initialise espeak-ng once per process; tell pyttsx3 it is done."""
        if getattr(driver_class, "_moduleInitialized", False):
            logger.warning("espeak-ng was initialised by a pyttsx3 engine: asynchronous mode")
            return 22050, False
        rate = self._espeak.Initialize(self._espeak.AUDIO_OUTPUT_SYNCHRONOUS, 500)
        if rate <= 0:
            raise TtsError("could not initialise espeak-ng")
        driver_class._moduleInitialized = True   # a later pyttsx3.init() must not re-initialise
        return rate, True

    def _list_voices(self) -> list[VoiceInfo]:
        voices = []
        for v in self._espeak.ListVoices(None):
            language = v.languages[1:].decode("utf-8", errors="ignore") if v.languages else ""
            voices.append(VoiceInfo(v.identifier.decode("utf-8").lower(),
                                    (normalise_language(language),)))
        return voices

    @classmethod
    def shared(cls) -> EspeakSynthesizer:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def voices(self) -> list[VoiceInfo]:
        return list(self._voices)

    def voice_id(self, language: str) -> str:
        if language not in self._resolved:
            self._resolved[language] = resolve_voice(language, self._voices)
        return self._resolved[language]

    def synthesize(self, text: str, voice: str, rate: int) -> Audio:
        voice_id = self.voice_id(voice)
        es = self._espeak
        with self._lock:
            self._chunks, self._finished = [], threading.Event()
            es.SetSynthCallback(self._on_synth)   # re-installed: a pyttsx3 engine may have taken it
            if es.SetVoiceByName(voice_id.encode("utf-8")) != 0:
                raise TtsError(f"espeak-ng refused voice {voice_id!r}")
            es.SetParameter(es.RATE, int(rate), 0)
            status = es.Synth(text.encode("utf-8"), flags=es.ENDPAUSE | es.CHARS_UTF8)
            if status != 0:
                raise TtsError(f"espeak-ng synthesis failed ({status}) for {text!r}")
            if not self._synchronous and not self._finished.wait(30):
                raise TtsError(f"espeak-ng did not finish {text!r}")
            data = b"".join(self._chunks)
        if not data:
            raise TtsError(f"espeak-ng produced no audio for {text!r}")
        return Audio(np.frombuffer(data, dtype=np.int16).copy(), self.sample_rate)

    def _on_synth(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        i = 0
        while events[i].type != self._espeak.EVENT_LIST_TERMINATED:
            if events[i].type == self._espeak.EVENT_MSG_TERMINATED:
                self._finished.set()
            i += 1
        return 0


# --------------------------------------------------------------------------- wav helpers

def read_wav(path: Path) -> Audio:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise TtsError(f"{path}: expected 16-bit samples, got {8 * wav.getsampwidth()}-bit")
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        if wav.getnchannels() > 1:
            data = data.reshape(-1, wav.getnchannels())[:, 0]
        return Audio(data.astype(np.int16), wav.getframerate())


def resample(audio: Audio, rate: int) -> Audio:
    if audio.rate == rate:
        return audio
    out = soxr.resample(audio.samples, audio.rate, rate, quality="HQ")
    return Audio(np.asarray(out, dtype=np.int16), rate)


def write_wav_atomic(path: Path, audio: Audio) -> None:
    """Write mono 16-bit WAV next to ``path`` then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".wav", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(audio.rate)
            wav.writeframes(audio.samples.astype("<i2").tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- cache

class PromptCache:
    """Rendered prompts under ``directory``, keyed by sha256(text|voice|rate)."""

    def __init__(self, directory: Path, default_voice: str = "en-us", default_rate: int = 160,
                 synthesizer: Synthesizer | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.default_voice = default_voice
        self.default_rate = default_rate
        self._synthesizer = synthesizer
        self._pending: dict[Path, asyncio.Future] = {}
        self._paths: dict[tuple[str, str, int], Path] = {}    # every play asks: no sha256 each time
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def synthesizer(self) -> Synthesizer:
        if self._synthesizer is None:
            self._synthesizer = EspeakSynthesizer.shared()
        return self._synthesizer

    def key(self, text: str, voice: str | None = None, rate: int | None = None) -> str:
        voice, rate = self._defaults(voice, rate)
        digest = hashlib.sha256(f"{text}|{voice}|{rate}".encode("utf-8")).hexdigest()
        return digest[:24]

    def path_for(self, text: str, voice: str | None = None, rate: int | None = None) -> Path:
        """Where the 8 kHz file for this prompt lives (rendered or not)."""
        voice, rate = self._defaults(voice, rate)
        path = self._paths.get((text, voice, rate))
        if path is None:
            if len(self._paths) >= MAX_REMEMBERED_PATHS:
                self._paths.clear()
            path = self._paths[text, voice, rate] = self.directory / f"{self.key(text, voice, rate)}.wav"
        return path

    def is_cached(self, text: str, voice: str | None = None, rate: int | None = None,
                  *, wideband: bool = False) -> bool:
        path = self.path_for(text, voice, rate)
        return path.exists() and (not wideband or path.with_suffix(WIDEBAND_SUFFIX).exists())

    def render(self, text: str, voice: str | None = None, rate: int | None = None,
               *, wideband: bool = False) -> Path:
        """Return the 8 kHz mono WAV for ``text``, synthesising it only if not cached.

        ``wideband=True`` also guarantees ``<same name>.wav16`` (16 kHz) next to it.
        Blocking: from asyncio use :meth:`render_async`.
        """
        if not text or not text.strip():
            raise TtsError("cannot render an empty prompt")
        voice, rate = self._defaults(voice, rate)
        path = self.path_for(text, voice, rate)
        if self.is_cached(text, voice, rate, wideband=wideband):
            return path
        audio = self.synthesizer.synthesize(text, voice, rate)
        if wideband:
            write_wav_atomic(path.with_suffix(WIDEBAND_SUFFIX), resample(audio, WIDEBAND_RATE))
        write_wav_atomic(path, resample(audio, NARROWBAND_RATE))
        logger.debug("rendered %r (%s, %d) to %s, %.2f s", text, voice, rate, path, audio.seconds)
        return path

    async def render_async(self, text: str, voice: str | None = None, rate: int | None = None,
                           *, wideband: bool = False) -> Path:
        """:meth:`render` off the event loop; a cache hit returns without a thread hop, and
        callers asking for the same prompt at the same time share one synthesis."""
        path = self.path_for(text, voice, rate)
        if self.is_cached(text, voice, rate, wideband=wideband):
            return path
        pending = self._pending.get(path)
        if pending is not None and not wideband:
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(asyncio.to_thread(self.render, text, voice, rate,
                                                       wideband=wideband))
        self._pending[path] = task
        task.add_done_callback(lambda _t: self._pending.pop(path, None))
        return await asyncio.shield(task)

    def usage_bytes(self) -> int:
        """Bytes of rendered prompts on disk."""
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    def collect(self, keep: set[Path], grace_seconds: float = GRACE_SECONDS) -> int:
        """Delete rendered prompts (both rates) not in ``keep`` (8 kHz paths) and not
        written within ``grace_seconds``; returns how many prompts were deleted."""
        kept = {p.with_suffix("") for p in keep}
        cutoff = time.time() - grace_seconds
        deleted = 0
        for path in self.directory.iterdir():
            if path.suffix not in (".wav", WIDEBAND_SUFFIX) or path.with_suffix("") in kept:
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    deleted += path.suffix == ".wav"
        if deleted:
            logger.info("prompt cache %s: %d unused prompts deleted", self.directory, deleted)
        return deleted

    def sound_uri(self, text: str, voice: str | None = None, rate: int | None = None,
                  *, wideband: bool = False) -> str:
        return sound_uri_for(self.render(text, voice, rate, wideband=wideband))

    async def sound_uri_async(self, text: str, voice: str | None = None, rate: int | None = None,
                              *, wideband: bool = False) -> str:
        return sound_uri_for(await self.render_async(text, voice, rate, wideband=wideband))

    def _defaults(self, voice: str | None, rate: int | None) -> tuple[str, int]:
        return (voice or self.default_voice, int(rate or self.default_rate))


def sound_uri_for(path: Path) -> str:
    """``/abs/dir/name.wav`` -> ``sound:/abs/dir/name`` (Asterisk adds the extension)."""
    return "sound:" + str(path.with_suffix(""))

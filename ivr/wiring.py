"""The IVR's parts built from the configuration; called by the composition root
(``callpilot.app.server``), which passes them on to the Stasis and FastAGI entries.

* flows: :class:`~ivr.store.FlowStore` versions (built-ins seeded as version 1), served by
  :class:`~ivr.published.PublishedFlows`; publishing checks phrases against the speech
  model's vocabulary when one is configured.
* speech (``speech``: an engine per language, by default pocketsphinx for English and the
  packaged Vosk model for Korean; see :mod:`ivr.speech.engines`): engines loaded once per
  process, ARI listening through :class:`~ivr.ari_media.AriMedia` (its own ``<app>-media``
  Stasis application), AGI listening through recordings in ``<state_dir>/speech``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.config import Config
from ivr import schema
from ivr.agi_driver import AgiSpeech
from ivr.ari_driver import AriSpeech
from ivr.ari_media import AriMedia
from ivr.errors import FlowError
from ivr.published import PublishedFlows
from ivr.runner import FlowRunner
from ivr.services import DefaultServices, age_band_of
from ivr.speech import engines as speech_engines
from ivr.speech.engines import SpeechEngines
from ivr.store import FlowStore
from ivr.tts import PromptCache

logger = logging.getLogger(__name__)

MEDIA_APP_SUFFIX = "-media"


@dataclass
class IvrParts:
    runner: FlowRunner
    flows: PublishedFlows
    store: FlowStore
    engines: SpeechEngines
    ari_speech: AriSpeech | None
    agi_speech: AgiSpeech | None


def validator(engines: SpeechEngines | None) -> Callable[[dict], list[FlowError]]:
    """Flow validation for publishing: phrases must be in their language's engine vocabulary."""
    if not engines:
        return schema.check
    known = {language: engine.knows for language, engine in engines.by_language.items()}
    return lambda doc: schema.check(doc, vocabularies=known)


def load_engines(config: Config) -> SpeechEngines:
    return speech_engines.load(config.speech, config.speech_model)


def build(config: Config, sessions: Any, prompts: PromptCache, *,
          age_band: Callable[[int, int], str] = age_band_of) -> IvrParts:
    engines = load_engines(config)
    store = FlowStore(sessions, validate=validator(engines))
    runner = FlowRunner(prompts, fallback_queue=config.acd.general_queue,
                        services=DefaultServices(sessions, age_band=age_band),
                        speech_languages=engines.languages)
    flows = PublishedFlows(store, runner.prerender)
    ari_speech = agi_speech = None
    if engines:
        s, a = config.secrets, config.asterisk
        media_ari = AriClient(config.ari_url, s.ari_user, s.ari_password,
                              f"{a.app_name}{MEDIA_APP_SUFFIX}")
        ari_speech = AriSpeech(engines, AriMedia(media_ari))
        agi_speech = AgiSpeech(engines, config.state_dir.resolve() / "speech")
        for language, engine in sorted(engines.by_language.items()):
            logger.info("speech: %s by %s (%s)", language, engine.name, engine.path)
    return IvrParts(runner, flows, store, engines, ari_speech, agi_speech)

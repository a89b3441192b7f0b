"""The IVR's parts built from the configuration; called by the composition root
(``callpilot.app.server``), which passes them on to the Stasis and FastAGI entries.

* flows: :class:`~ivr.store.FlowStore` versions (built-ins seeded as version 1), served by
  :class:`~ivr.published.PublishedFlows`; publishing checks phrases against the speech
  model's vocabulary when one is configured.
* speech (``speech_model`` set): one Vosk model for the process, ARI listening through
  :class:`~ivr.ari_media.AriMedia` (its own ``<app>-media`` Stasis application), AGI
  listening through recordings in ``<state_dir>/speech``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Collection

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.calendar import Calendar
from callpilot.infra.config import Config, route_dial_strings
from callpilot.infra.db.customers import CustomerDirectory
from callpilot.infra.messages import MessageCatalogue, builtin_messages
from ivr import schema
from ivr.agi_driver import AgiSpeech
from ivr.ari_driver import AriSpeech
from ivr.ari_media import MEDIA_EVENTS, AriMedia
from ivr.errors import FlowError
from ivr.nodes.transfer import TransferNode
from ivr.published import PublishedFlows
from ivr.runner import FlowRunner
from ivr.services import DefaultServices
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


def validator(engines: SpeechEngines | None, routes: Collection[str] | None = None,
              messages: MessageCatalogue | None = None) -> Callable[[dict], list[FlowError]]:
    """Flow validation for publishing: phrases must be in their language's engine vocabulary;
    with ``routes`` (the configured outbound route names), transfer nodes may name only those;
    ``{"message": key}`` prompts must name a message of the catalogue (the built-in one when
    not given)."""
    known = {lang: engine.knows for lang, engine in engines.by_language.items()} if engines else {}
    keys = (messages or builtin_messages()).keys

    def check(doc: dict) -> list[FlowError]:
        errors = schema.check(doc, vocabularies=known) if known else schema.check(doc)
        return errors or _unknown_routes(doc, routes) + _unknown_messages(doc, keys)
    return check


def load_engines(config: Config) -> SpeechEngines:
    return speech_engines.load(config.speech, config.speech_model)


def _unknown_routes(doc: dict, routes: Collection[str] | None) -> list[FlowError]:
    if routes is None:
        return []
    return [FlowError(node.id, f"route {node.name!r} is not configured (config [routes]: "
                               f"{', '.join(sorted(routes)) or 'none'})")
            for node in schema.parse(doc).nodes.values()
            if isinstance(node, TransferNode) and node.kind == "route" and node.name not in routes]


def _unknown_messages(doc: dict, keys: Collection[str]) -> list[FlowError]:
    return [FlowError(node.id, f"message {prompt.message!r} is not in the message catalogue")
            for node in schema.parse(doc).nodes.values() for prompt in node.prompts()
            if prompt.message and prompt.message not in keys]


def build(config: Config, sessions: Any, prompts: PromptCache, *,
          customers: CustomerDirectory | None, age_band: Callable[[int, int], str],
          calendars: Callable[[str], Calendar | None] | None = None,
          messages: MessageCatalogue | None = None) -> IvrParts:
    """``calendars``: name -> stored calendar (branch conditions); outbound routes for
    transfer nodes come from ``config.routes`` (fixed numbers only); ``messages``: the
    system's catalogue (``{"message": key}`` prompts, e.g. the built-in survey's)."""
    engines = load_engines(config)
    store = FlowStore(sessions, validate=validator(engines, set(config.routes), messages))
    services = DefaultServices(customers, age_band=age_band, calendars=calendars,
                               routes=route_dial_strings(config))
    runner = FlowRunner(prompts, fallback_queue=config.acd.general_queue, services=services,
                        speech_languages=engines.languages, messages=messages)
    flows = PublishedFlows(store, runner.prerender, collect=runner.collect)
    ari_speech = agi_speech = None
    if engines:
        s, a = config.secrets, config.asterisk
        media_ari = AriClient(config.ari_client_url, s.ari_user, s.ari_password,
                              f"{a.app_name}{MEDIA_APP_SUFFIX}", events=MEDIA_EVENTS,
                              rest_transport=a.ari_rest_transport)
        ari_speech = AriSpeech(engines, AriMedia(media_ari))
        agi_speech = AgiSpeech(engines, config.state_dir.resolve() / "speech")
        for language, engine in sorted(engines.by_language.items()):
            logger.info("speech: %s by %s (%s)", language, engine.name, engine.path)
    return IvrParts(runner, flows, store, engines, ari_speech, agi_speech)

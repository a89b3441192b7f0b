"""The IVR's parts built from the configuration; called by the composition root
(``callpilot.app.server``), which passes them on to the Stasis and FastAGI entries.

* flows: :class:`~ivr.store.FlowStore` versions (built-ins seeded as version 1, trusted:
  their phrases are checked against the packaged engines by the test suite, so seeding never
  waits for a model, D40), served by :class:`~ivr.published.PublishedFlows`; publishing (web,
  CLI) checks phrases against the speech engines' vocabularies.
* speech (an engine per language, ``speech`` / ``speech_model``): planned here, loaded in
  the background once serve runs (:class:`~ivr.speech.loading.SpeechLoading`, D40); ARI
  listening through :class:`~ivr.ari_media.AriMedia` (its own ``<app>-media`` Stasis
  application), AGI listening through recordings in ``<state_dir>/speech``.
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
from ivr.speech.loading import VALIDATE_WAIT_SECONDS, SpeechLoading, SpeechState, gate_from_env
from ivr.speech.vocabulary import LocalVocabulary, VocabularyAnswer, VocabularySource
from ivr.store import FlowStore
from ivr.tts import PromptCache

logger = logging.getLogger(__name__)

MEDIA_APP_SUFFIX = "-media"


@dataclass
class IvrParts:
    runner: FlowRunner
    flows: PublishedFlows
    store: FlowStore
    speech: SpeechLoading
    ari_speech: AriSpeech | None
    agi_speech: AgiSpeech | None


def validator(engines: SpeechEngines | SpeechLoading | VocabularySource | None,
              routes: Collection[str] | None = None,
              messages: MessageCatalogue | None = None, *,
              wait: float = VALIDATE_WAIT_SECONDS) -> Callable[[dict], list[FlowError]]:
    """Flow validation for publishing: phrases must be in their language's engine vocabulary;
    with ``routes`` (the configured outbound route names), transfer nodes may name only those;
    ``{"message": key}`` prompts must name a message of the catalogue (the built-in one when
    not given).  ``engines``: loaded engines (the CLI), engines loading in this process (a
    :class:`SpeechLoading`, started at the first check with phrases) or another
    :class:`~ivr.speech.vocabulary.VocabularySource` (the web asks serve, D42).  Engines still
    loading are waited for (``wait`` seconds at most, only for the languages the flow has
    phrases in); a flow with phrases in a language whose model is still loading, or failed to
    load, is refused with that reason: its phrases are never published unchecked."""
    keys = (messages or builtin_messages()).keys
    source = LocalVocabulary(engines) if isinstance(engines, SpeechLoading) else engines

    def check(doc: dict) -> list[FlowError]:
        known, unchecked = _vocabularies(source, doc, wait)
        errors = schema.check(doc, vocabularies=known) if known else schema.check(doc)
        errors += [FlowError(None, vocabulary.reason) for vocabulary in unchecked if vocabulary.asked]
        return errors or _unknown_routes(doc, routes) + _unknown_messages(doc, keys)
    return check


class _Unchecked:
    """The vocabulary of a language whose model is not loaded: notes that a phrase needed it."""

    def __init__(self, reason: str) -> None:
        self.reason, self.asked = reason, False

    def __call__(self, _word: str) -> bool:
        self.asked = True
        return True


class _Asked:
    """Collects the words a flow's phrases use in one language (the first pass)."""

    def __init__(self) -> None:
        self.words: set[str] = set()

    def __call__(self, word: str) -> bool:
        self.words.add(word)
        return True


def _vocabularies(source: SpeechEngines | VocabularySource | None, doc: dict,
                  wait: float) -> tuple[dict[str, Callable[[str], bool]], list[_Unchecked]]:
    if source is None or isinstance(source, SpeechEngines):
        return ({lang: e.knows for lang, e in source.by_language.items()} if source else {}), []
    asked = {language: _Asked() for language in source.languages}
    schema.check(doc, vocabularies=asked)
    words = {language: vocabulary.words for language, vocabulary in asked.items() if vocabulary.words}
    if not words:
        return {}, []                                  # no phrase: no model to wait for
    known: dict[str, Callable[[str], bool]] = {}
    unchecked = []
    for language, answer in source.unknown(words, wait).items():
        if answer.state is SpeechState.READY:
            known[language] = answer.knows
            continue
        known[language] = vocabulary = _Unchecked(_not_checked(language, answer))
        unchecked.append(vocabulary)
    return known, unchecked


def _not_checked(language: str, answer: VocabularyAnswer) -> str:
    if answer.state is SpeechState.LOADING:
        return (f"the speech model for {language} is still loading: its phrases cannot be "
                f"checked yet; try again in a few seconds")
    return f"the speech model for {language} failed to load ({answer.reason}): its phrases cannot be checked"


def load_engines(config: Config) -> SpeechEngines:
    return speech_engines.load(config.speech, config.speech_model)


def speech_loading(config: Config) -> SpeechLoading:
    """The configured engines, to be loaded in the background (:meth:`SpeechLoading.start`)."""
    return SpeechLoading(speech_engines.plan(config.speech, config.speech_model), gate=gate_from_env())


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
    speech = speech_loading(config)
    store = FlowStore(sessions, validate=validator(None, set(config.routes), messages))  # seeding only
    services = DefaultServices(customers, age_band=age_band, calendars=calendars,
                               routes=route_dial_strings(config))
    runner = FlowRunner(prompts, fallback_queue=config.acd.general_queue, services=services,
                        speech_languages=speech.languages, messages=messages)
    flows = PublishedFlows(store, runner.prerender, collect=runner.collect)
    ari_speech = agi_speech = None
    if speech:
        s, a = config.secrets, config.asterisk
        media_ari = AriClient(config.ari_client_url, s.ari_user, s.ari_password,
                              f"{a.app_name}{MEDIA_APP_SUFFIX}", events=MEDIA_EVENTS,
                              rest_transport=a.ari_rest_transport)
        wait = float(config.speech_load_wait)
        ari_speech = AriSpeech(speech, AriMedia(media_ari), load_wait=wait)
        agi_speech = AgiSpeech(speech, config.state_dir.resolve() / "speech", load_wait=wait)
        logger.info("speech planned (loads once serve runs): %s", sorted(speech.languages))
    return IvrParts(runner, flows, store, speech, ari_speech, agi_speech)

"""A queue's own words per language (D31): the periodic announcement and the closed message.

Each has a default text (the ``periodic_announce`` / ``closed_message`` column, said to a call
whose language has no text of its own) and translations, ``{language: text}`` by primary
subtag, in ``<field>_translations``.  The languages offered are those the system can speak:
the message catalogue's, the configured speech engines' and the default voice's (plus any a
queue already has, so a save never drops one).  The queue form and the JSON API check them
with :func:`translation_errors`; serve picks the text (``acd.queues.queue_text``).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from flask import current_app
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from callpilot.infra.messages import builtin_messages, primary
from callpilot.infra.db.models import Queue

logger = logging.getLogger(__name__)

# field -> what the form calls it
TEXT_FIELDS = {"periodic_announce": "Periodic announcement", "closed_message": "When closed, say"}
MAX_TEXT = 1000                      # characters: about a minute of speech
LANGUAGE = re.compile(r"[a-z]{2,3}")


def translations_column(field: str) -> str:
    return f"{field}_translations"


def form_field(field: str, language: str) -> str:
    """The form field of ``field``'s text in ``language`` (``closed_message_ko``)."""
    return f"{field}_{language}"


def offered_languages(queue: Queue | None = None) -> list[str]:
    """Languages a queue's texts may be given in (primary subtags, sorted)."""
    config = current_app.extensions["callpilot_config"]
    found = {*builtin_messages().languages, *(primary(lang) for lang in config.speech), primary(config.tts_voice)}
    if queue is not None:
        for field in TEXT_FIELDS:
            found.update(getattr(queue, translations_column(field)) or {})
    return sorted(lang for lang in found if LANGUAGE.fullmatch(lang))


def translation_errors(translations: object, languages: Iterable[str]) -> list[str]:
    """What is wrong with ``{language: text}`` (empty: fine): a language not offered, a
    listed language with no text, a text longer than :data:`MAX_TEXT`."""
    if not isinstance(translations, Mapping):
        return ["expected an object {language: text}"]
    allowed = set(languages)
    errors = []
    for language, text in translations.items():
        if language not in allowed:
            errors.append(f"{language!r} is not a language offered ({', '.join(sorted(allowed))})")
        elif not isinstance(text, str) or not text.strip():
            errors.append(f"{language}: empty text (leave the language out instead)")
        elif len(text) > MAX_TEXT:
            errors.append(f"{language}: {len(text)} characters, at most {MAX_TEXT}")
    return errors


def form_fields(languages: Iterable[str]) -> dict[str, TextAreaField]:
    """One text area per field and language, for a queue form class made per request."""
    return {form_field(field, lang): TextAreaField(f"{label} ({lang})", validators=[Optional(), Length(max=MAX_TEXT)])
            for field, label in TEXT_FIELDS.items() for lang in languages}


def fill_form(form, queue: Queue, languages: Iterable[str]) -> None:
    """The queue's stored translations into the form (the page as it opens)."""
    for field in TEXT_FIELDS:
        stored = getattr(queue, translations_column(field)) or {}
        for lang in languages:
            getattr(form, form_field(field, lang)).data = stored.get(lang, "")


def from_form(form, queue: Queue, languages: Iterable[str], posted: Iterable[str]) -> dict[str, dict[str, str]]:
    """Column -> translations as typed: an empty text area means no text for that language;
    a box the post did not carry (``posted``: the form's field names) keeps the stored text."""
    languages, posted = list(languages), set(posted)
    changed = {}
    for field in TEXT_FIELDS:
        texts = dict(getattr(queue, translations_column(field)) or {})
        for lang in languages:
            if form_field(field, lang) not in posted:
                continue
            text = getattr(form, form_field(field, lang)).data or ""
            if text.strip():
                texts[lang] = text
            else:
                texts.pop(lang, None)
        changed[translations_column(field)] = texts
    return changed

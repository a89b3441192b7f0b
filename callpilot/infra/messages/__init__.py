"""The system's own spoken messages, per language: one small catalogue for what the product
says by itself (queue announcements, the callback offer, read-back and whisper, agent
feature codes, the built-in survey, the apology).  Flow prompts are not here: a flow
carries its own texts.

One JSON file per language next to this module (``en.json``, ``ko.json``), key -> text with
``{name}`` placeholders.  English is the reference: every key of every language must exist
in English, with no placeholder English lacks (:meth:`MessageCatalogue.validate`, run when
serve starts).  A key missing in the caller's language falls back to English, logged once
per language and key, and is then spoken by the default (English) voice, not by a voice
that cannot read it.

ivr and acd both speak these messages but may not import each other, so the catalogue sits
here, beside the call vocabulary; the composition root builds one :class:`SpokenMessages`
(catalogue + the TTS renderer) and injects it.
"""
from __future__ import annotations

import functools
import json
import logging
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

REFERENCE = "en"
BUILTIN_DIR = Path(__file__).resolve().parent


class CatalogueError(ValueError):
    """The catalogue is unusable: a key English lacks, or a placeholder English lacks."""


@dataclass(frozen=True)
class Said:
    """A message's text and the language whose voice speaks it (None: the default voice)."""

    text: str
    language: str | None

    def then(self, other: Said) -> Said:
        """Both, one after the other; one voice only when both are of one language."""
        if not other.text:
            return self
        if not self.text:
            return other
        language = self.language if self.language == other.language else None
        return Said(f"{self.text} {other.text}", language)


def primary(language: str | None) -> str:
    """``"ko-KR"`` -> ``"ko"``; None -> the reference language."""
    return (language or REFERENCE).strip().lower().replace("_", "-").split("-")[0] or REFERENCE


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class MessageCatalogue:
    def __init__(self, texts: Mapping[str, Mapping[str, str]]):
        self.texts = {primary(lang): dict(entries) for lang, entries in texts.items()}
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def builtin(cls, directory: Path = BUILTIN_DIR) -> MessageCatalogue:
        return cls({path.stem: json.loads(path.read_text(encoding="utf-8"))
                    for path in sorted(directory.glob("*.json"))})

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.texts.get(REFERENCE, {}))

    @property
    def languages(self) -> list[str]:
        return sorted(self.texts)

    def missing(self, language: str) -> list[str]:
        """English keys the language has no text for (spoken in English)."""
        return sorted(self.keys - set(self.texts.get(primary(language), {})))

    def problems(self) -> list[str]:
        """What makes the catalogue unusable (empty: fine)."""
        reference = self.texts.get(REFERENCE)
        if not reference:
            return [f"no {REFERENCE!r} messages: English is the reference"]
        found = []
        for lang, entries in sorted(self.texts.items()):
            for key, text in sorted(entries.items()):
                if key not in reference:
                    found.append(f"{lang}: {key!r} is not an English message")
                elif not isinstance(text, str) or not text.strip():
                    found.append(f"{lang}: {key!r} is empty")
                elif extra := placeholders(text) - placeholders(reference[key]):
                    found.append(f"{lang}: {key!r} uses {sorted(extra)}, unknown to English")
        return found

    def validate(self) -> MessageCatalogue:
        """Raise :class:`CatalogueError` when unusable; warn about missing translations."""
        found = self.problems()
        if found:
            raise CatalogueError("message catalogue: " + "; ".join(found))
        for lang in self.languages:
            if missing := self.missing(lang):
                logger.warning("messages: %s lacks %d messages, spoken in English: %s",
                               lang, len(missing), ", ".join(missing))
        return self

    def say(self, key: str, language: str | None, **values: object) -> Said:
        """The message in ``language`` (by its primary subtag), spoken by that language's
        voice (``language`` as given: "en-us" keeps its voice, as flows do); else in English
        by the default voice, with a warning.  ``values`` fill its placeholders."""
        template = self.template(key, language)
        return Said(template.text.format(**values), template.language)

    def template(self, key: str, language: str | None) -> Said:
        """As :meth:`say`, placeholders left for the caller to fill (flows: their variables)."""
        text = self.texts.get(primary(language), {}).get(key)
        if text is not None:
            return Said(text, language)
        if key not in self.keys:
            raise KeyError(f"no message {key!r}")
        self._warn(primary(language), key)
        return Said(self.texts[REFERENCE][key], None)

    def _warn(self, lang: str, key: str) -> None:
        if (lang, key) not in self._warned:
            self._warned.add((lang, key))
            logger.warning("messages: no %s text for %r; spoken in English", lang, key)


@functools.lru_cache(maxsize=1)
def builtin_messages() -> MessageCatalogue:
    """The catalogue shipped with CallPilot, validated (loaded once per process)."""
    return MessageCatalogue.builtin().validate()


Render = Callable[[str, str | None], Awaitable[str]]   # (text, voice language) -> sound URI


class SpokenMessages:
    """The catalogue and the TTS renderer (cached, per voice) in one injectable part."""

    def __init__(self, catalogue: MessageCatalogue, render: Render):
        self.catalogue = catalogue
        self._render = render

    def say(self, key: str, language: str | None, **values: object) -> Said:
        return self.catalogue.say(key, language, **values)

    async def sound(self, said: Said) -> str:
        """The sound URI of ``said``, in its language's voice."""
        return await self._render(said.text, said.language)

    async def render(self, text: str, language: str | None) -> str:
        """Any text (not from the catalogue) in ``language``'s voice."""
        return await self._render(text, language)

    async def sound_of(self, key: str, language: str | None, **values: object) -> str:
        return await self.sound(self.say(key, language, **values))

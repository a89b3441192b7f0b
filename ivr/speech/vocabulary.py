"""Which words of a flow's phrases the speech engines do not know, per language (D42).

The flow validator (:func:`ivr.wiring.validator`) asks a *vocabulary source* once per check,
for the words the flow's phrases use in each language.  Two sources answer the same way:

* :class:`LocalVocabulary`: engines loaded in this process (:class:`SpeechLoading`), started
  at the first question that has words (the admin web when serve is not running);
* serve, over its status socket (``POST /speech/unknown``, answered by :func:`answers_json`
  on serve's own engines): the admin web asks it first, so the web checks against what serve
  loaded without loading ~500 MB of models itself (the adapter is in ``callpilot.app.web``).

Each language's answer has the state of its model: ``ready`` (with the unknown words),
``loading`` (still loading after the bounded wait) or ``failed`` (with the reason).  A
language with no engine planned has no answer: its phrases are not checked (keys only).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ivr.speech.loading import SpeechLoading, SpeechState

logger = logging.getLogger(__name__)

Words = Mapping[str, Collection[str]]          # language -> words of its phrases


@dataclass(frozen=True)
class VocabularyAnswer:
    state: SpeechState
    unknown: frozenset[str] = frozenset()     # words the engine does not know (ready only)
    reason: str = ""                           # why the load failed

    def knows(self, word: str) -> bool:
        return word not in self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "unknown": sorted(self.unknown), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VocabularyAnswer:
        """Raises ValueError / TypeError / KeyError on a malformed answer."""
        return cls(SpeechState(data["state"]), frozenset(str(w) for w in data.get("unknown", ())),
                   str(data.get("reason", "")))


class VocabularySource(Protocol):
    @property
    def languages(self) -> set[str]:
        """The languages with an engine planned (the validator collects their words)."""

    def unknown(self, words: Words, wait: float) -> dict[str, VocabularyAnswer]:
        """Per language asked that has an engine: its answer, waiting at most ``wait``
        seconds in all for models still loading."""


def unknown_words(loading: SpeechLoading, words: Words, wait: float) -> dict[str, VocabularyAnswer]:
    """The answers of ``loading``'s engines (blocks this thread: not on an event loop)."""
    answers: dict[str, VocabularyAnswer] = {}
    deadline = time.monotonic() + wait
    for language in sorted(words):
        status = loading.wait_sync(language, max(deadline - time.monotonic(), 0.0))
        if status is None:
            continue                                   # no engine: keys only, nothing to check
        if status.state is not SpeechState.READY:
            answers[language] = VocabularyAnswer(status.state, reason=status.reason)
            continue
        engine = loading.engines.by_language[language]
        answers[language] = VocabularyAnswer(SpeechState.READY,
                                             frozenset(w for w in words[language] if not engine.knows(w)))
    return answers


async def answers_json(loading: SpeechLoading, words: Words, wait: float) -> dict[str, dict[str, Any]]:
    """:func:`unknown_words` for serve's status socket, off its event loop."""
    answers = await asyncio.to_thread(unknown_words, loading, words, wait)
    return {language: answer.as_dict() for language, answer in answers.items()}


class LocalVocabulary:
    """Engines loaded in this process; the load starts at the first question with words."""

    def __init__(self, loading: SpeechLoading) -> None:
        self.loading = loading
        self._lock = threading.Lock()

    @property
    def languages(self) -> set[str]:
        return self.loading.languages

    def unknown(self, words: Words, wait: float) -> dict[str, VocabularyAnswer]:
        if any(language in self.loading.languages for language in words):
            with self._lock:                          # two publishes at once: one worker thread
                self.loading.start()
        return unknown_words(self.loading, words, wait)

"""What every speech engine offers the listening code: one protocol, two engines.

* :class:`~ivr.speech.model.SpeechModel` — Vosk, any model directory, grammar mode;
* :class:`~ivr.speech.sphinx.SphinxEngine` — pocketsphinx with the en-us model packaged in
  its wheel, a JSGF grammar generated from the question's phrases.

A recogniser hears one answer: feed 16-bit mono PCM with :meth:`Recognizer.accept`, ask
:meth:`Recognizer.partial` for the best complete phrase so far (early endpointing), and
:meth:`Recognizer.result` once at the end.  Both engines return only *complete* grammar
phrases; anything else is ``Recognition("", 0.0)`` (heard, no match).
"""
from __future__ import annotations

from typing import Protocol

from ivr.driver import Recognition


class Recognizer(Protocol):
    sample_rate: int
    grammar: list[str]

    def accept(self, pcm: bytes) -> bool:
        """Feed audio; True once the engine itself has decided the answer is complete."""

    def partial(self) -> str:
        """The complete grammar phrase the audio so far decodes to, or ''."""

    def result(self) -> Recognition | None:
        """The answer (None: nothing heard); releases the engine's resources."""


class SpeechEngine(Protocol):
    name: str
    language: str

    def knows(self, word: str) -> bool:
        """Is ``word`` in the engine's vocabulary (the flow validator's check)?"""

    def known_phrases(self, phrases: list[str]) -> list[str]:
        """The phrases whose every word the engine knows."""

    def recognizer(self, grammar: list[str], sample_rate: int) -> Recognizer:
        """A recogniser for one answer among ``grammar``'s phrases."""


def complete_phrase(text: str, grammar: list[str]) -> str:
    """``text`` if it is exactly one phrase of ``grammar`` (whitespace-normalised), else ''.

    Decoders return partial paths ("speak to an" for "speak to an agent"): never route on one.
    """
    text = " ".join(text.split())
    return text if text in grammar else ""

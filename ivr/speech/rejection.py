"""Is a decoded phrase plausible for the sound that was heard?  (Engine-independent.)

A grammar decoder maps *any* sound to its closest phrase (the Korean Vosk model gives white
noise full confidence).  Two checks on what the VAD measured reject what cannot be the
phrase:

* ``NOT_VOICED`` — fewer than ``MIN_VOICED_MS`` of periodic (pitched) frames: noise, a
  cough, a click, breathing.  Every spoken option has a vowel.
* ``TOO_LONG`` — the speech lasted far longer than the phrase takes to say: a sentence that
  is not an option, decoded to a short one.
"""
from __future__ import annotations

import enum

from ivr.speech.vad import EnergyVad

MIN_VOICED_MS = 60
SLACK_SECONDS = 0.6          # added to the phrase's expected length
HANGUL_SECONDS = 0.32        # per Hangul syllable block (slow speakers included)
LETTER_SECONDS = 0.11        # per Latin letter


class Rejection(enum.Enum):
    NOT_VOICED = "not_voiced"
    TOO_LONG = "too_long"


def longest_plausible(phrase: str) -> float:
    """Seconds the phrase may take at most, from its written length."""
    hangul = sum(1 for c in phrase if "\uac00" <= c <= "\ud7a3")
    letters = sum(1 for c in phrase if c.isalpha()) - hangul
    return SLACK_SECONDS + HANGUL_SECONDS * hangul + LETTER_SECONDS * letters


def plausible(phrase: str, vad: EnergyVad) -> Rejection | None:
    """None when ``phrase`` may be what the VAD heard, else why not."""
    if vad.voiced_ms < MIN_VOICED_MS:
        return Rejection.NOT_VOICED
    if vad.speech_seconds > longest_plausible(phrase):
        return Rejection.TOO_LONG
    return None

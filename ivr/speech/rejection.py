"""Is a decoded phrase plausible for the sound that was heard?  (Engine-independent.)

A grammar decoder maps *any* sound to its closest phrase (the Korean Vosk model gives white
noise full confidence).  Two checks on what the VAD measured reject what cannot be the
phrase:

* ``NOT_VOICED`` — fewer than ``MIN_VOICED_MS`` of periodic (pitched) frames: noise, a
  cough, a click, breathing.  Every spoken option has a vowel.
* ``TOO_LONG`` — the speech lasted far longer than the phrase takes to say: a sentence that
  is not an option, decoded to a short one.
* ``UNCOVERED`` — the decoder's alignment of the phrase leaves loud audio outside its words
  (it had to call speech "silence" to fit the phrase): "pay my bill" aligned as
  ``<sil> billing <sil>``.  Engines that give word timings check it (:func:`uncovered_frames`).

An engine's own score of how well the phrase fits the sound is not a rejection here: it is
mapped by :func:`confidence` to the answer's confidence, and the menu decides with its
``min_confidence`` (default 0.5: the engine's threshold) and ``confirm_below``.
"""
from __future__ import annotations

import enum
import math

import numpy as np

from ivr.speech.vad import EnergyVad, VadSettings

MIN_VOICED_MS = 60
SLACK_SECONDS = 0.6          # added to the phrase's expected length
HANGUL_SECONDS = 0.32        # per Hangul syllable block (slow speakers included)
LETTER_SECONDS = 0.11        # per Latin letter
# Loud 10 ms frames (LOUD_DB above the line's level before the speech) that the phrase's
# words may leave outside themselves.  Tuned on the dev split of bench.asr (voices en-us,
# en-gb-scotland, en-gb-x-rp; EN_OFF_MENU_DEV): see docs/decisions.md D22.
LOUD_DB = 6.0
FLOOR_FRAMES = 20            # the first 200 ms of what the decoder heard: before the speech
# Never louder than this is "quiet" (the VAD's floor): a line that is digital silence before
# the answer (Asterisk's snoop) would otherwise make G.711's idle pattern after it "speech".
QUIET_DBFS = VadSettings().floor_db
# The decoder's word boundaries are loose: a first vowel aligned as silence (up to 11 frames
# seen with en-gb "agent" through Asterisk), a final release after the word's end.
MARGIN_BEFORE_FRAMES = 12
MARGIN_AFTER_FRAMES = 5
MAX_UNCOVERED_FRAMES = 6


class Rejection(enum.Enum):
    NOT_VOICED = "not_voiced"
    TOO_LONG = "too_long"
    UNCOVERED = "speech_outside_phrase"


def confidence(score: float, reject_below: float, scale: float) -> float:
    """An engine's score mapped to 0..1: 0.5 at the engine's threshold ``reject_below`` (a
    menu's default ``min_confidence``), the odds growing e-fold every ``scale`` above it."""
    z = max(-50.0, min(50.0, (score - reject_below) / scale))
    return 1.0 / (1.0 + math.exp(-z))


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


def loud_frames(levels_db: np.ndarray) -> np.ndarray:
    """Which frames are louder than the line before the speech (its first ``FLOOR_FRAMES``),
    and than ``QUIET_DBFS``."""
    if levels_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.median(levels_db[:FLOOR_FRAMES]))
    return levels_db > max(floor + LOUD_DB, QUIET_DBFS)


def uncovered_frames(levels_db: np.ndarray, words: list[tuple[int, int]]) -> int:
    """Loud frames outside every word span (``(first, last)`` frame, inclusive, widened by
    the margins)."""
    loud = loud_frames(levels_db)
    inside = np.zeros(loud.size, dtype=bool)
    for first, last in words:
        inside[max(first - MARGIN_BEFORE_FRAMES, 0):last + 1 + MARGIN_AFTER_FRAMES] = True
    return int(np.count_nonzero(loud & ~inside))


def covered(levels_db: np.ndarray, words: list[tuple[int, int]]) -> Rejection | None:
    """None when the phrase's words cover the speech, else ``UNCOVERED``."""
    if uncovered_frames(levels_db, words) > MAX_UNCOVERED_FRAMES:
        return Rejection.UNCOVERED
    return None

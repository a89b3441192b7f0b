"""pocketsphinx: the English engine that needs no download.

The PyPI ``pocketsphinx`` wheel carries an en-us acoustic model and the CMU dictionary, so
``make run`` understands English offline.  Per answer a JSGF grammar is generated from the
question's phrases (:func:`jsgf`; *decoys*, common words that are not options, can be added
but are off: they cost more right answers than the wrong ones they stop, D15).  Each word
also gets its non-rhotic pronunciation (the CMU dictionary is American; callers are not).
Only a complete grammar phrase whose words cover the speech is an answer: "speak to an" for
"speak to an agent" is not, nor "billing" out of "billing address please"
(:func:`ivr.speech.rejection.covered`).  The answer's confidence comes from its acoustic score
(:func:`path_score`): below 0.5, a menu's default ``min_confidence``, the phrase fits the sound
worse than right answers did; a menu's ``confirm_below`` confirms the middle band (D28).

The model does not initialise at 8 kHz (its filter bank reaches 6800 Hz): 8 kHz audio is
resampled to 16 kHz.  A decoder holds ~6 MB with a dictionary of the grammar's words only
(the full dictionary makes it ~27 MB), so decoders are pooled and reused across calls; a
decoder keeps the searches of the grammars it has seen.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import numpy as np

from ivr.driver import Recognition
from ivr.speech.engine import complete_phrase
from ivr.speech.model import SpeechUnavailable
from ivr.speech.rejection import Rejection, confidence, covered

logger = logging.getLogger(__name__)

RATE = 16000
FRAME_SAMPLES = RATE // 100     # the decoder's frame shift (10 ms)
MAX_SEARCHES = 32              # grammars kept per decoder
WORD = re.compile(r"^[a-z][a-z']*$")
# Common words that are not menu options: what off-menu speech would decode to.  Measured
# (bench/asr.py set, half of it): decoys cut false accepts from 21/25 to 2/25 but the
# options fell from 38/48 to 12/48 whatever their weight (0.01 .. 1e-8): pocketsphinx's FSG
# search did not let the weights outweigh the decoys' acoustic fit.  Off by default
# (``SphinxEngine(decoys=DECOYS)`` turns them on).
DECOYS = tuple("""the a to of and in is it you that he was for on are with as i his they be at
have this from or had by hot word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them write would
like so these her long make thing see him has look more day could go come did number sound
most people my over know water than call first who may down side been now find""".split())
DECOY_WEIGHT = 0.01
# The en-us model's cepstral mean starts from a fixed estimate that suits quiet input.
# Measured through the live path (VAD, 20 ms frames; espeak-ng, 6 voices x 2 rates, G.711):
# "billing, cards, ..." 29/48 right at the natural level (-25 dBFS), 43/48 scaled by 0.05
# (35/48 at 0.02, 32/48 at 0.01); normalising each answer to a target level instead
# (-40..-64 dBFS) reached at most 39/48.  So a fixed gain, as a line's level is fixed.
INPUT_GAIN = 0.05
# The decoder's live cepstral mean carries over from one utterance to the next, so a pooled
# decoder would answer differently depending on the calls it served before (measured: the
# same clip right on a used decoder, wrong on a fresh one).  Every answer starts from this
# mean, measured after 10 espeak-ng menu answers through the phone path at INPUT_GAIN.
CMN_INIT = ("31.4756,9.04997,-13.6508,27.0603,-11.399,-2.50615,5.06623,-20.9374,4.20846,"
            "-8.57294,1.90904,3.4861,-9.53565")


VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


def non_rhotic(phones: str) -> str:
    """The pronunciation without post-vocalic R (British, Australian, Caribbean English):
    "K AA R D Z" -> "K AA D Z", a final "ER" -> "AH".  The CMU dictionary is American."""
    seq, out = phones.split(), []
    for i, phone in enumerate(seq):
        after = seq[i + 1] if i + 1 < len(seq) else None
        before_consonant = after is None or after not in VOWELS
        if phone == "R" and out and out[-1] in VOWELS and before_consonant:
            continue
        out.append("AH" if phone == "ER" and before_consonant else phone)
    return " ".join(out)


def pronunciation_variants(phones: str) -> list[str]:
    """The dictionary's pronunciation first, then its non-rhotic form when it differs."""
    variant = non_rhotic(phones)
    return [phones] if variant == phones else [phones, variant]


# The answer is the grammar search's Viterbi path, not the lattice's best path: the lattice
# pass often ended on a partial phrase ("" = heard, no match) or on nothing at all.  Measured
# on the bench's audio (D22): right answers clean / 20 dB / 10 dB 81 / 85 / 77 -> 84 / 88 / 83
# of 96, and the "partial path" outcomes went from 11 to 0.
BESTPATH = False

# Confidence (D28).  pocketsphinx scores each frame's senones against the best senone of that
# frame, so the Viterbi path's acoustic score per frame of its words is already a likelihood
# ratio against an unconstrained background (every frame free to take any senone): near 0
# when the words fit the sound as well as anything could, lower the worse they fit.  Units:
# 1000 x the natural log of the segment probabilities the Python API gives, per 10 ms frame.
# Chosen on the dev split only (voices en-us, en-gb-scotland, en-gb-x-rp x 2 rates, clean and
# 10 dB; bench.asr.EN_OFF_MENU_DEV): right answers ranged -4.96 .. -0.71 (2.5th percentile
# -4.26, median -3.0), accepted off-menu phrases -6.69 .. -1.94 (median -4.17).
# REJECT_SCORE (confidence 0.5: a menu's default min_confidence rejects below it) keeps 81/83
# right dev answers; SCORE_SCALE puts the dev median of right answers at confidence 0.9.  A second pass through a phone loop (allphone, flat or with the
# packaged phone LM) as the background separated worse and costs a second decode (D28).
REJECT_SCORE = -4.3
SCORE_SCALE = 0.6


class SphinxUnavailable(SpeechUnavailable):
    """The pocketsphinx package (and its model) is not installed."""


def model_dir() -> Path:
    try:
        import pocketsphinx
    except ImportError as exc:
        raise SphinxUnavailable("the pocketsphinx package is not installed") from exc
    return Path(pocketsphinx.get_model_path()) / "en-us"


def jsgf(grammar: list[str], decoys: tuple[str, ...] = DECOYS,
         decoy_weight: float = DECOY_WEIGHT) -> str:
    """A JSGF grammar: one of the phrases, or one decoy word weighted down.

    One flat rule: pocketsphinx applies weights to the alternatives of a rule, not to a
    reference to another rule."""
    words = {w for p in grammar for w in p.split()}
    alternatives = [f"/1/ {p}" for p in grammar]
    alternatives += [f"/{decoy_weight:g}/ {d}" for d in decoys if d not in words]
    return "#JSGF V1.0;\ngrammar menu;\npublic <answer> = " + " | ".join(alternatives) + ";\n"


class SphinxEngine:
    """The packaged en-us model; :meth:`recognizer` for one answer."""

    name = "pocketsphinx"

    def __init__(self, language: str = "en", path: Path | None = None,
                 decoys: tuple[str, ...] = ()) -> None:
        self.language = language
        self.path = Path(path) if path else model_dir()
        self.decoys = decoys
        self._idle: list[_Decoder] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="cp-sphinx-")
        self._empty_dict = Path(self._dir.name) / "empty.dict"
        self._empty_dict.write_text("")
        self.created = 0

    @property
    def path_label(self) -> str:
        return str(self.path)

    @cached_property
    def pronunciations(self) -> dict[str, str]:
        """The CMU dictionary (first pronunciation of each word), read once."""
        found: dict[str, str] = {}
        with open(self.path / "cmudict-en-us.dict", encoding="utf-8") as lines:
            for line in lines:
                word, _, phones = line.strip().partition(" ")
                found.setdefault(word, phones)
        return found

    def knows(self, word: str) -> bool:
        return word.lower() in self.pronunciations

    def known_phrases(self, phrases: list[str]) -> list[str]:
        return [p for p in phrases if p.split() and all(self.knows(w) for w in p.split())]

    def recognizer(self, grammar: list[str], sample_rate: int) -> SphinxRecognizer:
        return SphinxRecognizer(self, grammar, sample_rate)

    # -- the decoder pool -----------------------------------------------------------------
    def take(self) -> _Decoder:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        decoder = _Decoder(self)
        self.created += 1
        return decoder

    def give(self, decoder: _Decoder) -> None:
        with self._lock:
            self._idle.append(decoder)

    def new_decoder(self):
        import pocketsphinx

        config = pocketsphinx.Config(hmm=str(self.path / "en-us"), dict=str(self._empty_dict),
                                     lm=None, bestpath=BESTPATH, loglevel="FATAL")
        return pocketsphinx.Decoder(config)


class _Decoder:
    """One pocketsphinx decoder and the grammars (searches) it has built."""

    def __init__(self, engine: SphinxEngine) -> None:
        self.engine = engine
        self.decoder = engine.new_decoder()
        self.words: set[str] = set()
        self.searches: OrderedDict[str, None] = OrderedDict()

    def use(self, grammar: list[str]) -> None:
        text = jsgf(grammar, self.engine.decoys)
        name = "g" + hashlib.sha1(text.encode()).hexdigest()[:16]
        if name not in self.searches:
            self._add_words({w for p in grammar for w in p.split()} | set(self.engine.decoys))
            self.decoder.add_jsgf_string(name, text)
            self.searches[name] = None
            self._forget_old()
        self.searches.move_to_end(name)
        self.decoder.activate_search(name)

    def _add_words(self, words: set[str]) -> None:
        new = sorted(words - self.words)
        entries = [(word if n == 0 else f"{word}({n + 1})", phones)
                   for word in new
                   for n, phones in enumerate(pronunciation_variants(self.engine.pronunciations[word]))]
        for i, (name, phones) in enumerate(entries):
            self.decoder.add_word(name, phones, update=i == len(entries) - 1)
        self.words.update(new)

    def _forget_old(self) -> None:
        while len(self.searches) > MAX_SEARCHES:
            old, _ = self.searches.popitem(last=False)
            self.decoder.remove_search(old)


class SphinxRecognizer:
    """One answer; 8 kHz input is resampled to 16 kHz as it arrives."""

    def __init__(self, engine: SphinxEngine, grammar: list[str], sample_rate: int) -> None:
        phrases = [" ".join(p.lower().split()) for p in grammar]
        self.grammar = [p for p in engine.known_phrases(phrases) if all(WORD.match(w) for w in p.split())]
        dropped = set(phrases) - set(self.grammar)
        if dropped:
            logger.warning("pocketsphinx does not know %s; not listening for them", sorted(dropped))
        if not self.grammar:
            raise ValueError("no phrase of the grammar is in the pocketsphinx dictionary")
        self.sample_rate = sample_rate
        self.engine = engine
        self._resampler = _upsampler(sample_rate)
        self._slot: _Decoder | None = engine.take()
        self._slot.use(self.grammar)
        # The front end's noise estimate (remove_noise) also carries over between answers:
        # measured, a fresh decoder and a used one answered 2 of 96 clips differently, and
        # callers under load got other answers than alone.  A new front end costs ~35 us.
        self._slot.decoder.reinit_feat()
        self._slot.decoder.set_cmn(CMN_INIT)
        self._slot.decoder.start_utt()
        self._final: Recognition | None = None
        self.audio_seconds = 0.0
        self.rejected: Rejection | None = None
        self.words: list[tuple[int, int]] = []     # frames of the decoded words, at the end
        self.score: float | None = None             # path_score of the answer, at the end
        self.phrase = ""                            # the complete phrase, before the checks
        self._levels = _FrameLevels()

    def accept(self, pcm: bytes) -> bool:
        if self._slot is None:
            return True
        self.audio_seconds += len(pcm) / (2 * self.sample_rate)
        pcm = self._resampler(pcm)
        if pcm:                          # the resampler may hold back a first short chunk
            self._levels.feed(pcm)
            self._slot.decoder.process_raw(scaled(pcm, INPUT_GAIN), full_utt=False)
        return False

    def partial(self) -> str:
        if self._slot is None:
            return self._final.text if self._final else ""
        hyp = self._slot.decoder.hyp()
        return complete_phrase(hyp.hypstr, self.grammar) if hyp is not None else ""

    def result(self) -> Recognition | None:
        if self._slot is None:
            return self._final
        decoder = self._slot.decoder
        try:
            decoder.end_utt()
            hyp = decoder.hyp()
            text = hyp.hypstr.strip() if hyp is not None else ""
            segments = word_segments(decoder) if text else []
        finally:
            self.engine.give(self._slot)
            self._slot = None
        if not text:
            return None
        self.words = [(first, last) for first, last, _ in segments]
        self.score = path_score(segments)
        self.phrase = phrase = complete_phrase(text, self.grammar)
        if phrase:
            self.rejected = covered(self._levels.levels(), self.words)
        self._final = Recognition(phrase, self.confidence) if phrase and not self.rejected \
            else Recognition("", 0.0)
        return self._final

    @property
    def confidence(self) -> float:
        """0..1 from :func:`path_score`; below 0.5 (a menu's default ``min_confidence``) the
        phrase fits the sound worse than right answers did on the dev split."""
        if self.score is None:
            return 0.0
        return round(confidence(self.score, REJECT_SCORE, SCORE_SCALE), 3)


def word_segments(decoder) -> list[tuple[int, int, float]]:
    """(first frame, last frame, acoustic log probability) of each word of the best path;
    frames are 10 ms from the start of the audio given to the decoder; silences, fillers and
    null transitions left out."""
    return [(seg.start_frame, seg.end_frame, math.log(max(seg.ascore, 1e-300)))
            for seg in (decoder.seg() or ()) if not seg.word.startswith(("<", "[", "("))]


def path_score(segments: list[tuple[int, int, float]]) -> float | None:
    """The words' acoustic score per frame (x 1000), see REJECT_SCORE; None without words."""
    frames = sum(last - first + 1 for first, last, _ in segments)
    return 1000.0 * sum(ascore for _, _, ascore in segments) / frames if frames > 0 else None


class _FrameLevels:
    """Level (dBFS) of each 10 ms frame of the audio given to the decoder."""

    def __init__(self) -> None:
        self._rest = np.zeros(0, dtype=np.int16)
        self._levels: list[np.ndarray] = []

    def feed(self, pcm: bytes) -> None:
        samples = np.concatenate([self._rest, np.frombuffer(pcm, dtype="<i2")])
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        if whole:
            frames = samples[:whole].astype(np.float64).reshape(-1, FRAME_SAMPLES)
            power = np.mean(frames ** 2, axis=1) / 32768.0 ** 2
            self._levels.append(10 * np.log10(power + 1e-12))
        self._rest = samples[whole:]

    def levels(self) -> np.ndarray:
        return np.concatenate(self._levels) if self._levels else np.zeros(0)


def scaled(pcm: bytes, gain: float) -> bytes:
    if gain >= 1.0:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * gain
    return np.round(samples).astype("<i2").tobytes()


def _upsampler(sample_rate: int):
    if sample_rate == RATE:
        return lambda pcm: pcm
    import soxr

    stream = soxr.ResampleStream(sample_rate, RATE, 1, dtype="int16", quality="HQ")
    return lambda pcm: stream.resample_chunk(np.frombuffer(pcm, dtype="<i2")).tobytes()

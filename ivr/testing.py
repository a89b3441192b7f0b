"""Fakes for testing flows without Asterisk: a scripted caller and a tone "synthesiser"."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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

    async def listen(self, grammar: list[str], *, timeout: float,
                     barge_in_sounds: list[str]) -> Recognition | DTMF | None:
        self.played.append(list(barge_in_sounds))
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
                 calendars: dict[str, frozenset] | None = None) -> None:
        from ivr.services import age_band_of

        self.customers = customers or {}
        self.webhooks = webhooks or {}
        self.calendars = calendars or {}
        self.calls: list[tuple[str, object]] = []
        self._age_band = age_band_of

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
        return self.calendars.get(calendar, frozenset())

    def age_band(self, birth_year: int, year: int) -> str:
        return self._age_band(birth_year, year)


# --------------------------------------------------------------------------- synthetic callers

ALAW_PAYLOAD_TYPE = 8


def alaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear PCM -> G.711 A-law (ITU-T G.711, even bits inverted)."""
    pcm = samples.astype(np.int32) >> 3                       # 13-bit magnitude domain
    sign = np.where(pcm >= 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(pcm >= 0, pcm, -pcm - 1), 0x0FFF)
    exponent = np.zeros_like(magnitude)
    for bit in range(7):                                      # segment = position of top bit
        exponent = np.where(magnitude >= (0x20 << bit), bit + 1, exponent)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    code = (sign | (exponent << 4) | mantissa) ^ 0x55
    return code.astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law -> 16-bit linear PCM (for checks and sniffers)."""
    code = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


DTMF_PAYLOAD_TYPE = 101
DTMF_EVENTS = {**{d: int(d) for d in "0123456789"}, "*": 10, "#": 11}
DTMF_PACKETS = 5          # 100 ms tone, then the end packet sent 3 times (RFC 4733 2.5.1.4)


def rtp_pcap(samples: np.ndarray, path, *, dtmf: list[tuple[float, str]] = (), ptime_ms: int = 20,
             src=("10.1.3.143", 4000), dst=("10.1.6.18", 5000)) -> float:
    """Write 8 kHz PCM as a pcap of A-law RTP packets (what sipp's ``play_pcap_audio`` sends).

    ``dtmf``: ``(seconds, digit)`` RFC 4733 telephone-events (payload type 101) replacing the
    audio at those times, in the same RTP stream (one SSRC, continuous sequence numbers), so
    any order of digits arrives.  Ethernet/IPv4/UDP framing like sipp's own ``g711a.pcap``;
    sipp rewrites the addresses and paces packets by their capture times.  Returns the
    audio's length in seconds.
    """
    import struct

    step = 8 * ptime_ms
    padded = np.concatenate([samples.astype(np.int16),
                             np.zeros((-len(samples)) % step, dtype=np.int16)])
    slots = len(padded) // step
    events = _dtmf_slots(dtmf, ptime_ms, step)
    packets = []
    for i in range(slots):
        if i in events:
            packets.extend(events[i])
        else:
            packets.append((ALAW_PAYLOAD_TYPE, i == 0, i * step,
                            alaw_encode(padded[i * step:(i + 1) * step]), i))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for seq, (pt, marker, timestamp, payload, slot) in enumerate(packets):
        rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                          timestamp & 0xFFFFFFFF, 0x43504C54) + payload
        out.append(_pcap_record(rtp, slot * ptime_ms * 1000, seq, src, dst))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))
    return len(padded) / 8000


def _dtmf_slots(dtmf, ptime_ms: int, step: int) -> dict[int, list[tuple]]:
    """Slot index -> the telephone-event packets sent in that slot."""
    import struct

    slots: dict[int, list[tuple]] = {}
    for at, digit in dtmf:
        first = int(round(at * 1000 / ptime_ms))
        event = DTMF_EVENTS[digit]
        for k in range(DTMF_PACKETS):
            end = k == DTMF_PACKETS - 1
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, (k + 1) * step)
            for _ in range(3 if end else 1):
                slots.setdefault(first + k, []).append(
                    (DTMF_PAYLOAD_TYPE, k == 0, first * step, payload, first + k))
    return slots


def _pcap_record(rtp: bytes, usec: int, ident: int, src, dst) -> bytes:
    import socket
    import struct

    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    frame = b"\x00\x01\x02\x03\x04\x05\x00\x06\x07\x08\x09\x0a\x08\x00" + ip + udp
    return struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000, usec % 1_000_000,
                       len(frame), len(frame)) + frame


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

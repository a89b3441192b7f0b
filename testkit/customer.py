"""Customers of outbound campaigns: SIP user agents that RECEIVE calls (sipp UAS, no
registration) on their own loopback address, and what they say when they answer.

* :class:`CustomerPhone` - ``answer`` (180, 200 after ``answer_delay``, plays ``audio``: a
  person's "Hello?" and keys, or an answering machine's greeting; waits for the BYE),
  ``no_answer`` (rings until CANCEL) or ``busy`` (486).  Every INVITE is an ``invite``
  event, so a test counts how often each customer was dialled.
* :func:`person_pcap` / :func:`machine_pcap` - RTP pcaps of espeak-ng speech, silence,
  RFC 4733 keys and a beep.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from testkit.ivr_fakes import speech_samples
from testkit.rtp_pcap import rtp_pcap
from testkit.sipua import (SipEvent, SippProcess, _cancelled, _log, _nop, _reply, _scenario,
                           _wait_udp_bound, free_port, media_port)

logger = logging.getLogger(__name__)


def noon_zone(now: datetime | None = None) -> str:
    """An IANA zone in which it is about noon at ``now`` (default: now), for test contacts: a
    campaign's calling window (08:00-21:00 in the contact's zone by default) is then open
    whatever the time of day the suite runs (``America/New_York`` shut it from 01:00 or 02:00
    to 12:00 or 13:00 UTC)."""
    hour = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).hour
    offset = (12 - hour) % 24
    offset = offset - 24 if offset > 14 else offset          # Etc/GMT zones span UTC-12..UTC+14
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"    # POSIX signs: Etc/GMT-10 is UTC+10

RATE = 8000
BEHAVIOURS = ("answer", "no_answer", "busy")


def speech(text: str, voice: str = "en-us", rate: int = 160) -> np.ndarray:
    return speech_samples([("say", text)], voice=voice, rate=rate)


def _place(total: float, parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(int(total * RATE), dtype=np.int16)
    for at, samples in parts:
        start = int(at * RATE)
        out[start:start + len(samples)] = samples[:len(out) - start]
    return out


def person_pcap(path: Path, keys: list[tuple[float, str]] = (), total: float = 12.0,
                hello: str = "Hello?", says: list[tuple[float, str, str]] = ()) -> Path:
    """A person: says ``hello`` at 0.3 s, then silence; keys and ``says`` (second, text,
    espeak voice) at the given seconds."""
    parts = [(0.3, speech(hello))] + [(at, speech(text, voice, 150)) for at, text, voice in says]
    rtp_pcap(_place(total, parts), path, dtmf=list(keys))
    return path


def machine_pcap(path: Path, greeting: str, total: float = 30.0) -> tuple[Path, float]:
    """An answering machine: a long greeting from 0.2 s, a 1 kHz beep, silence.  Returns the
    pcap and the second the beep ends."""
    words = speech(greeting)
    beep_at = 0.2 + len(words) / RATE + 0.3
    beep = (8000 * np.sin(2 * np.pi * 1000 * np.arange(int(0.4 * RATE)) / RATE)).astype(np.int16)
    rtp_pcap(_place(total, [(0.2, words), (beep_at, beep)]), path)
    return path, beep_at + 0.4


def customer_scenario(name: str, behaviour: str, answer_delay: float, audio: Path | None) -> str:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
    tag = "[last_To:];tag=[pid]SIPpTag01[call_number]"
    keep_cseq = "" if behaviour == "busy" else \
        '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
    body = [f'<recv request="INVITE" crlf="true"><action>{keep_cseq}{_log("invite")}</action></recv>']
    if behaviour == "busy":
        body += [_reply("486 Busy Here", name, to=tag), '<recv request="ACK"/>', _nop(_log("done"))]
        return _scenario(f"customer-{name}-busy", body)
    body += [_reply("100 Trying", name), _reply("180 Ringing", name, to=tag), _nop(_log("ringing"))]
    if behaviour == "no_answer":
        body += [f'<recv request="CANCEL"><action>{_log("cancel")}</action></recv>']
        body += _cancelled(name, tag) + ['<label id="end"/>', _nop(_log("done"))]
        return _scenario(f"customer-{name}-no-answer", body)
    if answer_delay > 0:
        body += [f'<recv request="CANCEL" timeout="{int(answer_delay * 1000)}" '
                 f'ontimeout="answer"><action>{_log("cancel")}</action></recv>']
        body += _cancelled(name, tag) + ['<label id="answer"/>']
    play = f'<exec play_pcap_audio="{audio}"/>' if audio else ""
    body += [_reply("200 OK", name, to=tag, sdp=True, retrans=True),
             '<recv request="ACK" crlf="true"/>', _nop(f'{_log("answered")}{play}'),
             f'<recv request="BYE"><action>{_log("bye")}</action></recv>',
             _reply("200 OK", name), '<label id="end"/>', _nop(_log("done"))]
    return _scenario(f"customer-{name}-answer", body)


class CustomerPhone:
    """A customer's phone on ``local_ip`` (its own loopback address): no REGISTER, it only
    receives the calls Asterisk's outbound endpoint sends to ``sip:<number>@local_ip:port``."""

    def __init__(self, number: str, local_ip: str, behaviour: str = "answer", *,
                 audio: Path | None = None, answer_delay: float = 0.5, timeout: float = 600.0):
        self.number, self.local_ip, self.behaviour = number, local_ip, behaviour
        self.local_port = free_port(local_ip)
        self.media_port = media_port(local_ip)       # the RTP port its SDP offers
        self._sipp = SippProcess(
            f"customer-{number.lstrip('+')}", customer_scenario(number, behaviour, answer_delay, audio),
            ["-i", local_ip, "-p", str(self.local_port), "-mi", local_ip,
             "-mp", str(self.media_port)], timeout)

    @property
    def route(self) -> str:
        return f"{self.local_ip}:{self.local_port}"

    async def start(self) -> "CustomerPhone":
        await self._sipp.start()
        await _wait_udp_bound(self.local_port, self._sipp)
        return self

    async def stop(self) -> None:
        await self._sipp.kill()

    async def wait_for(self, event: str, timeout: float = 30.0, count: int = 1) -> SipEvent:
        return await self._sipp.wait_event(event, timeout, count)

    def count(self, name: str) -> int:
        return sum(1 for e in self._sipp.events if e.name == name)

    @property
    def invites(self) -> int:
        return self.count("invite")


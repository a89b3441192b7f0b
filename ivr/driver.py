"""How the flow runner talks to a call: the driver protocol and what it returns.

Implemented over ARI (callpilot.infra.asterisk / ivr.stasis) and over FastAGI.  The runner never
touches Asterisk itself, so flows are tested against a fake driver.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class CallerHangup(Exception):
    """Raised by a driver when the caller's channel is gone; the runner ends the flow."""


@dataclass(frozen=True)
class Recognition:
    """A spoken answer: ``text`` is one entry of the grammar ('' = heard, no match).

    ``confidence`` is in 0..1: Vosk's mean word confidence, or pocketsphinx's path score per
    frame mapped to 0..1 (docs/decisions.md D28).  ``timing``: what the driver measured (ms),
    e.g. ``barge_in_ms`` (speech start -> prompt stopped) and ``eos_ms`` (end of speech ->
    decision); it goes into the call's journey.
    """

    text: str
    confidence: float
    timing: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DTMF:
    """Keys pressed while the driver was listening for speech."""

    digits: str


@runtime_checkable
class CallDriver(Protocol):
    call_id: str
    caller_id: str
    did: str

    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        """Play Asterisk sound URIs in order.

        If ``barge_in`` and the caller presses a DTMF key during playback, stop playback and
        return that digit; else return None after playback ends.
        """

    async def read_digits(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                          first: str | None = None, inter_digit_timeout: float = 3.0) -> str:
        """Collect DTMF digits (``first`` is a digit already pressed during the prompt).

        Return '' on timeout with no input.  The terminator is not part of the result.
        """

    async def hangup(self) -> None:
        """Hang the call up; safe to call when it is already gone."""


@runtime_checkable
class SpeechDriver(CallDriver, Protocol):
    """A driver that can also recognise speech (optional capability)."""

    async def listen(self, grammar: list[str], *, timeout: float, barge_in_sounds: list[str],
                     language: str | None = None) -> Recognition | DTMF | None:
        """Play ``barge_in_sounds`` while listening, then listen up to ``timeout`` seconds,
        with the speech engine of ``language`` (the call's).

        Speech or a key stops the playback.  Returns a :class:`Recognition` whose text is one
        of ``grammar`` (or '' when speech was heard that fits no entry), a :class:`DTMF` with
        the first key pressed, or None when nothing was heard before the timeout.
        """


def can_listen(driver: object) -> bool:
    return callable(getattr(driver, "listen", None))

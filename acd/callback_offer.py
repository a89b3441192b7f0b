"""The callback offer, a short conversation with a waiting caller (over the queue's music).

Started by the offer key (announced when the estimated wait exceeds the queue's threshold,
accepted at any time).  Steps, each a named :class:`OfferStep`, every move logged:

1. READ_BACK: "We can call you back on 010-1234-5678. Press 1 to confirm, 2 for another
   number."  Keys pressed before the read-back has FINISHED playing are discarded: a caller
   confirms only a number they heard in full.
2. KEYING (after 2, or when the caller ID is not a callable number): digits then ``#``,
   normalised to E.164 and validated; an invalid number is said to be invalid and asked once
   more.
3. ACCEPTED: the caller leaves the line and the callback takes their place (the ORIGINAL
   entry time and ticket); they hear roughly when to expect the call, then are hung up on
   (or hang up themselves: the callback stays).

Anything else (no key, another key, hang-up) leaves the caller waiting where they were.
Every prompt is a message of the injected catalogue, in the call's language and voice.
"""
from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from acd.queues import QueueBook
from acd.state import CallState, LiveCall
from acd.waiting import language_of
from callpilot.infra.asterisk.channel_events import ChannelInbox, ChannelInboxes
from callpilot.infra.messages import MessageCatalogue, Said, SpokenMessages
from callpilot.infra.phone_numbers import InvalidNumber, spoken_digits, to_e164

logger = logging.getLogger(__name__)

CONFIRM_KEY = "1"
OTHER_NUMBER_KEY = "2"
KEY_TIMEOUT = 15.0
KEYING_TIMEOUT = 25.0
PLAY_DEADLINE = 30.0


class OfferStep(enum.Enum):
    READ_BACK = "read_back"
    KEYING = "keying"
    ACCEPTED = "accepted"
    DECLINED = "declined"


@dataclass(frozen=True)
class OfferSettings:
    default_country: str = "KR"
    allowed_countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfferRules:
    """When a waiting caller is offered a callback and with which key: the queue's own
    settings (edited in the admin web, reloaded live with the queues), else the
    configuration's ``[callbacks]`` (``offer_after`` per queue, then ``offer_after_seconds``)."""
    queues: QueueBook
    offer_after_seconds: float = 120.0
    offer_key_default: str = "5"
    offer_after_by_queue: Mapping[str, float] = field(default_factory=dict)

    def offer_after(self, queue: str) -> float:
        own = self.queues.get(queue).callback_offer_after
        return float(own) if own is not None else float(self.offer_after_by_queue.get(queue, self.offer_after_seconds))

    def offer_key(self, queue: str) -> str:
        return self.queues.get(queue).callback_offer_key or self.offer_key_default

Play = Callable[[str, str, str], Awaitable[bool]]        # (channel, sound URI, playback id) -> started
Accept = Callable[[LiveCall, str], Awaitable[float | None]]   # (call, E.164) -> ETA seconds


class CallbackOffer:
    """One offer to one caller; :meth:`run` returns the final step."""

    def __init__(self, call: LiveCall, inbox: ChannelInbox, play: Play, accept: Accept,
                 settings: OfferSettings, messages: SpokenMessages):
        self.call, self.inbox, self.play, self.accept, self.settings = call, inbox, play, accept, settings
        self.messages = messages
        self.language = language_of(call)       # every prompt in the call's language and voice
        self.step: OfferStep | None = None
        self._prompts = 0

    def move(self, step: OfferStep, why: str = "") -> None:
        logger.info("call %s queue=%s callback offer: %s -> %s %s", self.call.id, self.call.queue,
                    self.step.value if self.step else "start", step.value, why)
        self.step = step

    async def run(self) -> OfferStep:
        number = self._callable(self.call.caller_id)
        for _ in range(3):
            if self.call.state is not CallState.QUEUED:
                break
            if number is None:
                number = await self._keyed()
                if number is None:
                    break
            choice = await self._read_back(number)
            if choice == CONFIRM_KEY:
                return await self._accepted(number)
            if choice != OTHER_NUMBER_KEY:
                break
            number = None
        self.move(OfferStep.DECLINED, "no confirmation")
        await self._say(self._text("callback.declined"))
        return OfferStep.DECLINED

    def _callable(self, raw: str) -> str | None:
        try:
            return to_e164(raw, self.settings.default_country, self.settings.allowed_countries)
        except InvalidNumber:
            return None

    async def _read_back(self, number: str) -> str | None:
        self.move(OfferStep.READ_BACK, number)
        plus = self._text("number.plus").text
        digits = read_aloud(spoken_digits(number, self.settings.default_country), plus)
        await self._say(self._text("callback.read_back", number=digits, confirm=CONFIRM_KEY,
                                   other=OTHER_NUMBER_KEY))
        return await self._key(KEY_TIMEOUT)

    async def _keyed(self) -> str | None:
        self.move(OfferStep.KEYING)
        for attempt in range(2):
            await self._say(self._text("callback.enter_number" if attempt == 0 else "callback.number_invalid"))
            typed = await self._until_hash()
            if typed is None:
                return None
            number = self._callable(typed)
            if number is not None:
                return number
            logger.info("call %s: keyed number %r cannot be called back", self.call.id, typed)
        return None

    async def _accepted(self, number: str) -> OfferStep:
        eta = await self.accept(self.call, number)
        self.move(OfferStep.ACCEPTED, number)
        eta_said = eta_text(eta, self.messages.catalogue, self.language)
        await self._say(self._text("callback.accepted", eta=eta_said.text))
        return OfferStep.ACCEPTED

    # -- media --------------------------------------------------------------------------
    def _text(self, key: str, **values: object) -> Said:
        return self.messages.say(key, self.language, **values)

    async def _say(self, said: Said) -> None:
        """Play and wait for the end; keys pressed meanwhile are dropped (no type-ahead into
        a confirmation)."""
        self._prompts += 1
        playback_id = f"cp-offer-{self.call.id}-{self._prompts}"
        if await self.play(self.call.id, await self.messages.sound(said), playback_id):
            await self._until(lambda: playback_id in self.inbox.finished_playbacks, PLAY_DEADLINE)
        self.inbox.digits.clear()

    async def _key(self, timeout: float) -> str | None:
        await self._until(lambda: bool(self.inbox.digits), timeout)
        return self.inbox.digits.pop(0) if self.inbox.digits else None

    async def _until_hash(self) -> str | None:
        await self._until(lambda: "#" in self.inbox.digits, KEYING_TIMEOUT)
        if "#" not in self.inbox.digits:
            return None
        typed = "".join(self.inbox.digits[: self.inbox.digits.index("#")])
        self.inbox.digits.clear()
        return typed

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        loop_deadline = _Deadline(timeout)
        while not done() and not self.inbox.gone and not loop_deadline.passed():
            await self.inbox.wait_change(loop_deadline.left())


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.left() <= 0


def read_aloud(formatted: str, plus: str = "plus") -> str:
    """``010-5550-1234`` -> ``0 1 0, 5 5 5 0, 1 2 3 4``: digit by digit, a pause per group;
    ``plus`` is the word said for a leading "+"."""
    groups = formatted.replace("-", " ").replace("+", "+ ").split()
    return ", ".join(plus if group == "+" else " ".join(group) for group in groups)


def eta_text(seconds: float | None, messages: MessageCatalogue, language: str | None) -> Said:
    """Roughly when to expect the call."""
    if seconds is None:
        return messages.say("callback.eta_when_free", language)
    minutes = max(1, math.ceil(seconds / 60))
    if minutes <= 1:
        return messages.say("callback.eta_a_minute", language)
    return messages.say("callback.eta_minutes", language, n=minutes)


class CallbackOffers:
    """Starts at most one offer per waiting caller, on the offer key."""

    def __init__(self, inboxes: ChannelInboxes, play: Play, accept: Accept, settings: OfferSettings,
                 offer_key: Callable[[str], str], hangup: Callable[[str], Awaitable[None]],
                 messages: SpokenMessages):
        self.inboxes, self.play, self.accept, self.hangup = inboxes, play, accept, hangup
        self.messages = messages
        self.settings, self.offer_key = settings, offer_key     # queue -> its offer key
        self.running: dict[str, CallbackOffer] = {}

    async def key(self, call: LiveCall, digit: str) -> None:
        if digit != self.offer_key(call.queue or "") or call.id in self.running or call.state is not CallState.QUEUED:
            return
        inbox = self.inboxes.open(call.id)
        inbox.digits.clear()
        offer = self.running[call.id] = CallbackOffer(call, inbox, self.play, self.accept, self.settings,
                                                             self.messages)
        try:
            if await offer.run() is OfferStep.ACCEPTED:
                await self.hangup(call.id)
        except Exception:
            logger.exception("call %s: callback offer failed; the caller keeps waiting", call.id)
        finally:
            self.running.pop(call.id, None)
            self.inboxes.close(call.id)

"""Queue settings as the dispatcher uses them (loaded from the queues table by the server).

A queue's own words (the periodic announcement, the closed message) are typed by an admin:
one default text and, per language, a translation (D31).  A call hears the translation of
its language (by primary subtag: "ko-KR" -> ko) in its own voice, else the default text.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from acd.model import Step, default_steps
from callpilot.infra.messages import Said, primary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueSettings:
    name: str
    skill: str = ""                      # the queue's skill; "" = named like the queue
    sl_target_seconds: int = 20          # service level: sl_target_percent answered within
    sl_target_percent: int = 80
    max_wait_seconds: int = 0            # 0 = wait forever
    overflow_queue: str | None = None    # where a call goes after max_wait_seconds
    join_empty: bool = True              # False: no logged-in agent -> overflow at once
    moh_class: str = "default"
    announce_frequency: int = 30         # seconds between position/EWT announcements; 0 = off
    announce_position: bool = True
    periodic_announce: str = ""          # text spoken with each announcement, if any
    # language (primary subtag) -> the admin's text for calls in it; else the default above
    periodic_announce_translations: Mapping[str, str] = field(default_factory=dict, hash=False)
    steps: tuple[Step, ...] | None = None  # None = default_steps(skill)
    calendar: str | None = None          # opening hours; None = always open
    closed_queue: str | None = None      # where a call goes while closed (else the message)
    closed_message: str = ""             # said before hanging up a call that came while closed
    closed_message_translations: Mapping[str, str] = field(default_factory=dict, hash=False)
    survey_flow: str | None = None       # IVR flow for the caller when the agent hangs up first
    # callbacks (admin web); None = the configuration's ``callbacks`` setting
    callback_offer_after: int | None = None    # offer when the estimated wait exceeds it; 0 = never
    callback_offer_key: str | None = None      # the key that asks for a callback
    callback_customer_first: bool | None = None  # ring the customer before the agent

    @property
    def queue_skill(self) -> str:
        return self.skill or self.name

    def routing_steps(self) -> tuple[Step, ...]:
        return self.steps if self.steps is not None else default_steps(self.queue_skill)

    def periodic_announcement(self, language: str | None) -> Said | None:
        """The queue's text said with each announcement to a call in ``language``; None: none."""
        return queue_text(self.periodic_announce, self.periodic_announce_translations, language)

    def closed_announcement(self, language: str | None) -> Said | None:
        """What a call in ``language`` hears when the queue is closed; None: the queue has no
        text of its own (the catalogue's ``queue.closed`` is said)."""
        return queue_text(self.closed_message, self.closed_message_translations, language)


def queue_text(default: str, translations: Mapping[str, str], language: str | None) -> Said | None:
    """The admin's text for ``language`` (by primary subtag), else ``default``; spoken in the
    call's voice either way (a call with no language: the default text, default voice)."""
    text = translations.get(primary(language)) if language else None
    text = text if text and text.strip() else default
    return Said(text, language) if text and text.strip() else None


def translations_of(stored: object) -> dict[str, str]:
    """A stored ``{language: text}`` (JSON column) as the ACD uses it: keys by primary subtag,
    empty texts and anything that is not a text left out."""
    if not isinstance(stored, Mapping):
        return {}
    return {primary(lang): text for lang, text in stored.items()
            if isinstance(lang, str) and lang.strip() and isinstance(text, str) and text.strip()}


@dataclass
class QueueBook:
    """All queues by name; an unknown queue gets default settings (and a warning once)."""

    queues: dict[str, QueueSettings] = field(default_factory=dict)

    def replace(self, other: QueueBook) -> None:
        """Take ``other``'s settings in place (everyone holding this book sees them): the
        admin web changed the queues table.  Calls already parked keep their announcements
        timer; every later decision uses the new settings."""
        self.queues.clear()
        self.queues.update(other.queues)
        logger.info("queue settings reloaded: %s", sorted(self.queues))

    def get(self, name: str) -> QueueSettings:
        settings = self.queues.get(name)
        if settings is None:
            logger.warning("queue %s is not configured: default settings", name)
            settings = self.queues[name] = QueueSettings(name=name)
        return settings


Render = Callable[[str, str | None], Awaitable[object]]     # (text, voice language) -> rendered


def texts_to_render(book: QueueBook, voices: Iterable[str | None]) -> set[Said]:
    """Every queue text said on its own (closed messages; announcements when there is no
    position or wait to say with them) in each of ``voices``: what serve renders ahead."""
    voices = list(voices)
    return {said for settings in book.queues.values() for voice in voices
            for said in (settings.periodic_announcement(voice), settings.closed_announcement(voice))
            if said is not None}


async def prerender(book: QueueBook, voices: Iterable[str | None], render: Render) -> int:
    """Render :func:`texts_to_render` (cached by the renderer: a text rendered before costs a
    file check); a text that fails is logged and left to the call that needs it."""
    done = 0
    for said in sorted(texts_to_render(book, voices), key=lambda s: (s.language or "", s.text)):
        try:
            await render(said.text, said.language)
            done += 1
        except Exception:  # noqa: BLE001  (one bad text must not keep the others unrendered)
            logger.exception("queue text %r (%s) not rendered", said.text, said.language)
    logger.info("queue texts: %d rendered ahead", done)
    return done

"""Queue settings as the dispatcher uses them (loaded from the queues table by the server)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from acd.model import Step, default_steps

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
    steps: tuple[Step, ...] | None = None  # None = default_steps(skill)
    calendar: str | None = None          # opening hours; None = always open
    closed_queue: str | None = None      # where a call goes while closed (else the message)
    closed_message: str = ""             # said before hanging up a call that came while closed
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

"""Named states of campaigns, contacts and attempts, and the campaign settings the policies read."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, time


class CampaignState(enum.Enum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"


class CampaignMode(enum.Enum):
    NOTIFICATION = "notification"   # message first; an agent only if the customer asks
    PROGRESSIVE = "progressive"     # dial only when an agent is free; live answer -> agent


class ContactStatus(enum.Enum):
    PENDING = "pending"     # waiting for its next attempt (next_attempt_at)
    DIALLING = "dialling"   # claimed: one attempt in flight
    DONE = "done"           # final outcome reached, attempts exhausted, or DNC


class ContactOutcome(enum.Enum):
    REACHED = "reached"           # a person heard the message, no reply
    CONFIRMED = "confirmed"
    TRANSFERRED = "transferred"   # asked for an agent, handed to the ACD
    OPTED_OUT = "opted_out"       # pressed the DNC key
    MACHINE = "machine"           # answering machine (voicemail left if configured)
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"       # live answer, no agent within 2 s (safe-harbor message)
    UNKNOWN = "unknown"           # serve crashed while the attempt was in flight
    DNC = "dnc"                   # on a DNC list at dial time, never dialled


class Reply(enum.Enum):
    CONFIRM = "confirm"
    AGENT = "agent"
    REPEAT = "repeat"
    OPT_OUT = "opt_out"


class AmdResult(enum.Enum):
    """Asterisk AMD() ``AMDSTATUS`` values."""
    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"
    HANGUP = "HANGUP"

    @property
    def is_person(self) -> bool:
        """NOTSURE is treated as a person (a machine costs a message; a person hung up on costs
        an abandoned call)."""
        return self in (AmdResult.HUMAN, AmdResult.NOTSURE)


# outcomes after which the contact is finished, whatever attempts are left
FINAL_OUTCOMES = frozenset({ContactOutcome.REACHED, ContactOutcome.CONFIRMED,
                            ContactOutcome.TRANSFERRED, ContactOutcome.OPTED_OUT,
                            ContactOutcome.MACHINE, ContactOutcome.ABANDONED, ContactOutcome.DNC})

DEFAULT_REPLIES = {"1": Reply.CONFIRM.value, "2": Reply.AGENT.value, "3": Reply.REPEAT.value,
                   "9": Reply.OPT_OUT.value}
REPLY_OUTCOMES = {Reply.CONFIRM: ContactOutcome.CONFIRMED, Reply.AGENT: ContactOutcome.TRANSFERRED,
                  Reply.OPT_OUT: ContactOutcome.OPTED_OUT}
# seconds before the next attempt, per outcome (outcomes absent here are final)
DEFAULT_RETRY_DELAYS = {ContactOutcome.NO_ANSWER.value: 3600, ContactOutcome.BUSY.value: 600,
                        ContactOutcome.FAILED.value: 1800, ContactOutcome.UNKNOWN.value: 1800}


@dataclass(frozen=True)
class CallingWindow:
    """Hours allowed in the CALLED PARTY's local time (TSR: 08:00-21:00), and dates never."""
    start: time = time(8, 0)
    end: time = time(21, 0)
    excluded: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, start: str, end: str, excluded: list[str] | tuple[str, ...] = ()) -> "CallingWindow":
        return cls(time.fromisoformat(start), time.fromisoformat(end),
                   frozenset(date.fromisoformat(d) for d in excluded))

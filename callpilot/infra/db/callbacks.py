"""Callbacks and their attempts: tables and the persisted state vocabulary.

A callback is a caller's place in a queue kept without the caller holding: it carries the
ORIGINAL queue-entry time and the whole routing ticket, so the ACD orders it among live
callers exactly as if the caller were still waiting.  Each dial is an attempt row, inserted
in the same transaction that claims the callback (see ``callpilot.infra.db.callback_store``);
the attempt's integer id names the Asterisk channels (:func:`customer_channel_id`), so a
restarted ``serve`` finds the legs it originated before it died.

Two guards live in the schema, so they hold across processes and nodes on one database:

* ``open_key`` = ``"<queue>|<number>"`` while the callback is open (pending or dialling),
  NULL once closed; a unique index over it allows one open callback per number and queue.
* ``dialling_number`` = the number while an attempt is being placed, NULL otherwise; a
  unique index over it means never two calls to one number at once.

Both are plain nullable unique columns (several NULLs are allowed by SQLite and
PostgreSQL alike), which is portable where partial indexes are spelled differently.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime


class CallbackState(enum.Enum):
    PENDING = "pending"        # waiting for its turn, its retry time or its window
    DIALLING = "dialling"      # an attempt is claimed and being placed
    DONE = "done"              # the customer was connected with an agent
    FAILED = "failed"          # attempts exhausted, or the number cannot be reached
    CANCELLED = "cancelled"    # by the customer ("press 9"), the CLI or the API
    EXPIRED = "expired"        # its expiry passed before it was served
    MERGED = "merged"          # the customer called in again; the live call took its place


OPEN_STATES = frozenset({CallbackState.PENDING, CallbackState.DIALLING})


class CallbackSource(enum.Enum):
    IVR = "ivr"
    WEB = "web"
    APP = "app"


class AttemptOutcome(enum.Enum):
    ANSWERED = "answered"                  # a person answered and was bridged
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"                # answering machine detected
    INVALID_NUMBER = "invalid_number"      # the network refused the number
    CUSTOMER_CANCELLED = "customer_cancelled"   # pressed the cancel key
    AGENT_NO_ANSWER = "agent_no_answer"    # the agent declined or did not answer: not a
                                           # customer attempt, the next agent is tried
    UNKNOWN_AFTER_CRASH = "unknown_after_crash"  # serve died and the leg was gone on restart


# Outcomes that used up one of the customer's attempts.
CUSTOMER_OUTCOMES = frozenset(set(AttemptOutcome) - {AttemptOutcome.AGENT_NO_ANSWER})


def open_key(queue: str, number: str) -> str:
    return f"{queue}|{number}"


def customer_channel_id(attempt_id: int) -> str:
    """The customer leg of one attempt (deterministic: found again after a restart)."""
    return f"callback-{attempt_id}-customer"


def agent_channel_id(attempt_id: int) -> str:
    """The agent leg of one attempt."""
    return f"callback-{attempt_id}-agent"


def attempt_of_channel(channel_id: str) -> tuple[int, str] | None:
    """``(attempt id, "customer" | "agent")`` for a channel id made above, else None."""
    parts = channel_id.split("-")
    if len(parts) != 3 or parts[0] != "callback" or not parts[1].isdigit():
        return None
    if parts[2] not in ("customer", "agent"):
        return None
    return int(parts[1]), parts[2]


class Callback(Base):
    __tablename__ = "callbacks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), index=True)          # E.164
    queue: Mapped[str] = mapped_column(String(64), index=True)
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime)             # ORIGINAL queue entry
    # {"priority", "skills", "steps", "attributes"}: the routing ticket as the live call had it
    ticket: Mapped[dict] = mapped_column(JSON, default=dict)
    name: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(8))                        # CallbackSource value
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the call that asked
    state: Mapped[str] = mapped_column(String(16), index=True)            # CallbackState value
    open_key: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    dialling_number: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)             # customer attempts
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # retry or window
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)   # serve instance
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"
    # ids name Asterisk channels: never reused, even after rows are deleted (SQLite would
    # otherwise hand out max(id)+1 again)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(24), nullable=True)  # None: in progress
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # set just before the customer leg is originated: after a crash, an attempt without it
    # never reached the customer (not a customer attempt); one with it may have
    customer_dialled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    channel_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class CallbackApiToken(Base):
    """A token for the "call me" endpoint; only its SHA-256 is stored."""
    __tablename__ = "callback_api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

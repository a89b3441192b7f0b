"""Durable facts of outbound campaigns: campaigns, their contacts, every dial attempt, DNC.

Columns hold plain values; the state names are ``outbound.model`` enums (this package imports
no domain).  The exactly-once guarantee rests on two constraints here:

* a contact is claimed by a conditional ``UPDATE`` (``status = 'pending' AND attempts = n``)
  that only one session can win, in the same transaction as the attempt row it creates;
* ``(contact_id, number)`` is unique on ``campaign_attempts``: attempt n of a contact exists
  once, and its ARI channel id (``cp-out-<attempt id>``) is derived from its primary key, so
  Asterisk itself refuses a second channel for it while the first is alive.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime

GLOBAL_DNC = "*"      # dnc.scope of the global list; otherwise the campaign's name


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(200), default="")
    template: Mapped[str] = mapped_column(Text)                  # "Hello {name}, order {order_id}..."
    language: Mapped[str] = mapped_column(String(16), default="en")
    voice: Mapped[str] = mapped_column(String(64), default="")   # "" = the language's voice
    replies: Mapped[dict] = mapped_column(JSON, default=dict)    # {"1": "confirm", "2": "agent", ...}
    flow: Mapped[str | None] = mapped_column(String(64), nullable=True)   # an IVR flow instead
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    callback_number: Mapped[str] = mapped_column(String(32), default="")
    agent_queue: Mapped[str] = mapped_column(String(64), default="general")
    window_start: Mapped[str] = mapped_column(String(5), default="08:00")  # contact's local time
    window_end: Mapped[str] = mapped_column(String(5), default="21:00")
    excluded_dates: Mapped[list] = mapped_column(JSON, default=list)       # ["2026-12-25", ...]
    calendar: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its closed days too
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_delays: Mapped[dict] = mapped_column(JSON, default=dict)         # outcome -> seconds
    max_concurrent: Mapped[int] = mapped_column(Integer, default=5)
    mode: Mapped[str] = mapped_column(String(16), default="notification")  # CampaignMode
    amd: Mapped[bool] = mapped_column(default=True)
    voicemail_template: Mapped[str] = mapped_column(Text, default="")
    abandon_cap_percent: Mapped[float] = mapped_column(Float, default=3.0)
    max_dial_level: Mapped[float] = mapped_column(Float, default=1.0)     # lines per free agent
    ring_seconds: Mapped[int] = mapped_column(Integer, default=25)
    state: Mapped[str] = mapped_column(String(16), default="draft")        # CampaignState
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CampaignContact(Base):
    __tablename__ = "campaign_contacts"
    __table_args__ = (UniqueConstraint("campaign_id", "phone", name="uq_contact_phone"),
                      Index("ix_contacts_due", "campaign_id", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))               # E.164
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64))            # IANA
    language: Mapped[str] = mapped_column(String(16), default="")
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")     # ContactStatus
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # ContactOutcome
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_reply: Mapped[str] = mapped_column(String(32), default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CampaignAttempt(Base):
    __tablename__ = "campaign_attempts"
    __table_args__ = (UniqueConstraint("contact_id", "number", name="uq_attempt_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("campaign_contacts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)                  # 1, 2, ... per contact
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # AttemptOutcome
    amd_status: Mapped[str] = mapped_column(String(16), default="")
    reply: Mapped[str] = mapped_column(String(32), default="")
    live_answer: Mapped[bool] = mapped_column(default=False)
    abandoned: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[str] = mapped_column(Text, default="")


class DncEntry(Base):
    """Do-not-call: ``scope`` is ``*`` (every campaign) or one campaign's name."""
    __tablename__ = "dnc"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)

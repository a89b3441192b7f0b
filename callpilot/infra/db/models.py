"""Durable facts: queues, agents, customers, call records.

Every query must stay portable between SQLite (default) and PostgreSQL (scale-out).
Live call state lives in Asterisk and in the serve process; the open call records here are
what a restarted ``serve`` uses to re-adopt calls still parked in Stasis.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime


class Queue(Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    moh_class: Mapped[str] = mapped_column(String(64), default="default")
    skill: Mapped[str] = mapped_column(String(64), default="", server_default="")  # "" = queue name
    sl_target_seconds: Mapped[int] = mapped_column(Integer, default=20, server_default=text("20"))
    sl_target_percent: Mapped[int] = mapped_column(Integer, default=80, server_default=text("80"))
    max_wait_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    overflow_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    join_empty: Mapped[bool] = mapped_column(default=True, server_default=true())
    announce_frequency: Mapped[int] = mapped_column(Integer, default=30, server_default=text("30"))
    announce_position: Mapped[bool] = mapped_column(default=True, server_default=true())
    periodic_announce: Mapped[str] = mapped_column(Text, default="", server_default="")
    # the admin's texts per language (primary subtag -> text, D31); the plain column is the
    # default for a call whose language has none
    periodic_announce_translations: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    steps: Mapped[list | None] = mapped_column(JSON, nullable=True)   # None: default steps
    # opening hours: a named calendar (callpilot.infra.db.calendars); closed -> closed_queue,
    # else closed_message then hang up.  survey_flow: where a caller goes when the agent hangs up
    calendar: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    closed_message_translations: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    survey_flow: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # callback offer (acd.callback_offer.OfferRules); NULL = the configuration's [callbacks]
    callback_offer_after: Mapped[int | None] = mapped_column(Integer, nullable=True)   # s of EWT, 0 = never
    callback_offer_key: Mapped[str | None] = mapped_column(String(1), nullable=True)
    callback_customer_first: Mapped[bool | None] = mapped_column(nullable=True)
    members: Mapped[list["QueueMember"]] = relationship(back_populates="queue", cascade="all, delete-orphan")


class Agent(Base):
    __tablename__ = "agents"

    extension: Mapped[str] = mapped_column(String(32), primary_key=True)   # also SIP username
    name: Mapped[str] = mapped_column(String(200), default="")
    # md5(username:realm:password) for PJSIP auth_type=md5; the clear password is never stored.
    sip_md5_cred: Mapped[str] = mapped_column(String(32))
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    auto_login: Mapped[bool] = mapped_column(default=True)
    languages: Mapped[list] = mapped_column(JSON, default=lambda: ["en"], server_default='["en"]')
    wrapup_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: ACD default
    queues: Mapped[list["QueueMember"]] = relationship(back_populates="agent", cascade="all, delete-orphan")
    skills: Mapped[list["AgentSkill"]] = relationship(back_populates="agent", cascade="all, delete-orphan")


class AgentSkill(Base):
    """Proficiency 1-5 of one agent in one skill (a queue's skill is named like the queue
    unless the queue says otherwise)."""
    __tablename__ = "agent_skills"

    agent_extension: Mapped[str] = mapped_column(ForeignKey("agents.extension", ondelete="CASCADE"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    agent: Mapped[Agent] = relationship(back_populates="skills")


class QueueMember(Base):
    __tablename__ = "queue_members"

    queue_name: Mapped[str] = mapped_column(ForeignKey("queues.name", ondelete="CASCADE"), primary_key=True)
    agent_extension: Mapped[str] = mapped_column(ForeignKey("agents.extension", ondelete="CASCADE"), primary_key=True)
    queue: Mapped[Queue] = relationship(back_populates="members")
    agent: Mapped[Agent] = relationship(back_populates="queues")


class Customer(Base):
    __tablename__ = "customers"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    segment: Mapped[str] = mapped_column(String(32), default="standard")
    language: Mapped[str] = mapped_column(String(16), default="en")


class CallRecord(Base):
    __tablename__ = "call_records"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)   # caller channel id
    caller_id: Mapped[str] = mapped_column(String(64), default="")
    did: Mapped[str] = mapped_column(String(32), default="")
    flow: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="ivr")   # call_vocabulary.CallState
    menu_path: Mapped[list] = mapped_column(JSON, default=list)     # ['menu=1', ...]
    journey: Mapped[dict] = mapped_column(JSON, default=dict)       # the IVR's FlowResult
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)   # CallOutcome value
    detail: Mapped[str] = mapped_column(Text, default="")
    # call_vocabulary.RoutingTicket / IvrPlace as JSON: what re-adoption and the AGI handoff restore
    ticket: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ivr_place: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    hangup_cause: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Q.850, when known


class QueueEvent(Base):
    """One queue or agent event, the same facts as one line of the Asterisk-style queue_log.

    ``event`` is the app_queue name (ENTERQUEUE, CONNECT, COMPLETEAGENT, ...; see
    ``acd.queue_log``).  Where the queue_log says NONE the column is NULL; ``agent`` is the
    agent's extension (the queue_log writes the member name ``PJSIP/<extension>``); ``data``
    holds the event's values unrounded (``wait_s``, ``talk_s``, ``position``, ...).
    Append-only: rows are inserted by ``acd.queue_events.QueueEventRecorder``, never updated.
    """

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON, default=dict)

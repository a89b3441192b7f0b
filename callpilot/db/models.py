"""Durable facts: queues, agents, customers, call records.

Every query must stay portable between SQLite (default) and PostgreSQL (scale-out).
Live call state lives in Asterisk and in the serve process; the open call records here are
what a restarted ``serve`` uses to re-adopt calls still parked in Stasis.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callpilot.db.base import Base


class Queue(Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    moh_class: Mapped[str] = mapped_column(String(64), default="default")
    members: Mapped[list["QueueMember"]] = relationship(back_populates="queue", cascade="all, delete-orphan")


class Agent(Base):
    __tablename__ = "agents"

    extension: Mapped[str] = mapped_column(String(32), primary_key=True)   # also SIP username
    name: Mapped[str] = mapped_column(String(200), default="")
    # md5(username:realm:password) for PJSIP auth_type=md5; the clear password is never stored.
    sip_md5_cred: Mapped[str] = mapped_column(String(32))
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    auto_login: Mapped[bool] = mapped_column(default=True)
    queues: Mapped[list["QueueMember"]] = relationship(back_populates="agent", cascade="all, delete-orphan")


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
    state: Mapped[str] = mapped_column(String(16), default="ivr")   # CallState value
    menu_path: Mapped[list] = mapped_column(JSON, default=list)     # ['menu=1', ...]
    journey: Mapped[dict] = mapped_column(JSON, default=dict)       # the IVR's FlowResult
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")

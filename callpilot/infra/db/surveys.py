"""Post-call survey answers: one row per call and question, with the agent who took the call.

Written by the IVR when a caller finishes a queue's survey flow; read by the queue report
(``callpilot queues stats``: NPS per queue and per agent).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime

logger = logging.getLogger(__name__)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    question: Mapped[str] = mapped_column(String(32), primary_key=True, default="nps")
    score: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    flow: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


@dataclass(frozen=True)
class Score:
    call_id: str
    question: str
    score: int
    agent: str | None
    queue: str | None
    at: datetime


class SurveyStore:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def add(self, score: Score, *, flow: str = "") -> None:
        with self.sessions.begin() as s:
            s.add(SurveyResponse(call_id=score.call_id, question=score.question, score=score.score,
                                 agent=score.agent, queue=score.queue, flow=flow, at=score.at))

    def scores(self, *, question: str = "nps", queue: str | None = None,
               since: datetime | None = None) -> list[Score]:
        query = select(SurveyResponse).where(SurveyResponse.question == question)
        if queue is not None:
            query = query.where(SurveyResponse.queue == queue)
        if since is not None:
            query = query.where(SurveyResponse.at >= since)
        with self.sessions() as s:
            return [Score(r.call_id, r.question, r.score, r.agent, r.queue, r.at)
                    for r in s.scalars(query.order_by(SurveyResponse.at))]

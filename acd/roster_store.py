"""Load the agent roster (agents and their queues) from the database."""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import selectinload, sessionmaker

from acd.agents import LiveAgent
from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentState, steps_from_list
from acd.queues import QueueBook, QueueSettings, translations_of
from callpilot.infra.db.models import Agent, Queue

logger = logging.getLogger(__name__)


def load_roster(sessions: sessionmaker, today_year: int | None = None,
                bands: AgeBands = DEFAULT_AGE_BANDS) -> list[LiveAgent]:
    year = today_year or date.today().year
    with sessions() as s:
        rows = s.scalars(select(Agent).options(selectinload(Agent.queues),
                                               selectinload(Agent.skills))).all()
        agents = [_live(row, year, bands) for row in rows]
    logger.info("roster: %d agents", len(agents))
    return agents


def _live(row: Agent, year: int, bands: AgeBands) -> LiveAgent:
    queues = frozenset(m.queue_name for m in row.queues)
    band = bands.band_of(row.birth_year, year) if row.birth_year else None
    agent = LiveAgent(extension=row.extension, queues=queues, age_band=band,
                      skills={k.skill: k.level for k in row.skills},
                      languages=frozenset(row.languages or ()), language=first(row.languages),
                      wrapup_seconds=row.wrapup_seconds)
    if row.auto_login:
        agent.move(AgentState.AVAILABLE, "auto login")
    return agent


def first(languages: list | None) -> str | None:
    """The agent's first language (the list is stored in the agent's order)."""
    return next((lang for lang in languages or () if isinstance(lang, str) and lang), None)


def load_queues(sessions: sessionmaker) -> QueueBook:
    with sessions() as s:
        rows = s.scalars(select(Queue)).all()
        return QueueBook({row.name: queue_settings(row) for row in rows})


def queue_settings(row: Queue) -> QueueSettings:
    return QueueSettings(
        name=row.name, skill=row.skill, sl_target_seconds=row.sl_target_seconds,
        sl_target_percent=row.sl_target_percent, max_wait_seconds=row.max_wait_seconds,
        overflow_queue=row.overflow_queue, join_empty=row.join_empty, moh_class=row.moh_class,
        announce_frequency=row.announce_frequency, announce_position=row.announce_position,
        periodic_announce=row.periodic_announce, calendar=row.calendar,
        closed_queue=row.closed_queue, closed_message=row.closed_message or "",
        periodic_announce_translations=translations_of(row.periodic_announce_translations),
        closed_message_translations=translations_of(row.closed_message_translations),
        survey_flow=row.survey_flow, callback_offer_after=row.callback_offer_after,
        callback_offer_key=row.callback_offer_key, callback_customer_first=row.callback_customer_first,
        steps=None if row.steps is None else steps_from_list(row.steps, where=f"queue {row.name}.steps"))


# Queue columns ``callpilot queues set`` may change (opening hours, closed handling, survey).
EDGE_SETTINGS = ("calendar", "closed_queue", "closed_message", "survey_flow")


def update_queue(sessions: sessionmaker, name: str, **changes: str | None) -> QueueSettings:
    """Set some of :data:`EDGE_SETTINGS` on queue ``name`` ("" clears a name); KeyError if
    there is no such queue.  serve reads queue settings when it starts."""
    unknown = set(changes) - set(EDGE_SETTINGS)
    if unknown:
        raise ValueError(f"not a queue edge setting: {sorted(unknown)}")
    with sessions.begin() as s:
        row = s.get(Queue, name)
        if row is None:
            raise KeyError(name)
        for key, value in changes.items():
            setattr(row, key, value if key == "closed_message" else (value or None))
        s.flush()
        return queue_settings(row)

"""Net Promoter Score from post-call survey answers (0-10), per queue and per agent.

NPS = % promoters (9-10) - % detractors (0-6), rounded to a whole number, over the answers
given; passives (7-8) count in the total only.  No answers: NPS None.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import sessionmaker

from callpilot.infra.db.surveys import Score, SurveyStore

logger = logging.getLogger(__name__)

PROMOTER_MIN = 9
DETRACTOR_MAX = 6


def nps(scores: Iterable[int]) -> dict[str, Any]:
    values = list(scores)
    promoters = sum(1 for s in values if s >= PROMOTER_MIN)
    detractors = sum(1 for s in values if s <= DETRACTOR_MAX)
    score = round(100 * (promoters - detractors) / len(values)) if values else None
    return {"nps": score, "answers": len(values), "promoters": promoters,
            "detractors": detractors}


def nps_by_queue(scores: Iterable[Score]) -> dict[str, dict[str, Any]]:
    """{queue: {nps, answers, promoters, detractors, agents: {agent: {...}}}}."""
    by_queue: dict[str, list[Score]] = {}
    for s in scores:
        by_queue.setdefault(s.queue or "", []).append(s)
    report = {}
    for queue, rows in sorted(by_queue.items()):
        agents: dict[str, list[int]] = {}
        for s in rows:
            agents.setdefault(s.agent or "", []).append(s.score)
        report[queue] = nps(s.score for s in rows)
        report[queue]["agents"] = {a: nps(v) for a, v in sorted(agents.items())}
    return report


def load_nps(sessions: sessionmaker, queue: str | None = None,
             since: datetime | None = None) -> dict[str, dict[str, Any]]:
    return nps_by_queue(SurveyStore(sessions).scores(queue=queue, since=since))

"""NPS per queue and agent from stored survey answers (both database backends)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from acd.nps import load_nps, nps
from acd.queue_report import build_report, format_report
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.infra.db.surveys import Score, SurveyStore


def test_nps_counts_promoters_minus_detractors():
    assert nps([10, 9, 8, 7, 6, 0]) == {"nps": 0, "answers": 6, "promoters": 2, "detractors": 2}
    assert nps([9, 9, 9, 3]) == {"nps": 50, "answers": 4, "promoters": 3, "detractors": 1}
    assert nps([]) == {"nps": None, "answers": 0, "promoters": 0, "detractors": 0}


def test_scores_stored_per_call_and_agent_feed_the_queue_report(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    store, now = SurveyStore(sessions), datetime.now(timezone.utc)
    for call, agent, score in [("c1", "1001", 9), ("c2", "1001", 10), ("c3", "1002", 4)]:
        store.add(Score(call, "nps", score, agent, "billing", now), flow="survey")
    store.add(Score("c4", "nps", 10, "1003", "cards", now - timedelta(days=2)))
    report = load_nps(sessions)
    assert report["billing"]["nps"] == 33 and report["billing"]["answers"] == 3
    assert report["billing"]["agents"]["1001"] == {"nps": 100, "answers": 2, "promoters": 2,
                                                   "detractors": 0}
    assert set(load_nps(sessions, since=now - timedelta(days=1))) == {"billing"}
    text = format_report(build_report({}, None, {}, nps=report))
    assert "survey: NPS +33 (3 answer(s): 2 promoter(s), 1 detractor(s)); by agent: 1001 NPS +100" in text
    engine.dispose()

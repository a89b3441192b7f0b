"""Reports: per queue per interval and per agent from the stored queue events; CSV; queue_log."""
from __future__ import annotations

import csv
import re
import io
from datetime import date, datetime, time, timedelta

import pytest

from admin_web import db
from callpilot.infra.db.models import QueueEvent

DAY = date.today()        # once: a run that crosses midnight seeds and asks for the same day
TODAY = DAY.isoformat()


def _at(hour: int, minute: int, second: float = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute)).astimezone() + timedelta(seconds=second)


def _call(session, call_id, queue, hour, minute, *, wait, talk=None, agent=None):
    enter = _at(hour, minute)
    session.add(QueueEvent(at=enter, call_id=call_id, queue=queue, event="ENTERQUEUE", data={"position": 1}))
    if agent is None:
        session.add(QueueEvent(at=enter + timedelta(seconds=wait), call_id=call_id, queue=queue,
                               event="ABANDON", data={"wait_s": wait, "position": 1, "orig_position": 1}))
        return
    session.add(QueueEvent(at=enter + timedelta(seconds=wait), call_id=call_id, queue=queue, agent=agent,
                           event="CONNECT", data={"wait_s": wait, "ring_s": 1.0}))
    session.add(QueueEvent(at=enter + timedelta(seconds=wait + talk), call_id=call_id, queue=queue,
                           agent=agent, event="COMPLETEAGENT", data={"wait_s": wait, "talk_s": talk}))


@pytest.fixture(autouse=True)
def events(app):
    with app.app_context():
        session = db.get()
        _call(session, "a", "billing", 9, 5, wait=10, talk=100, agent="1001")
        _call(session, "b", "billing", 9, 40, wait=30, talk=50, agent="1002")
        _call(session, "c", "billing", 10, 15, wait=25)
        _call(session, "d", "cards", 10, 20, wait=5, talk=60, agent="1001")
        session.commit()


def test_report_page_per_interval_and_agent(client, auth):
    auth.login("super")
    html = client.get(f"/reports/?from={TODAY}&interval=60").get_data(as_text=True)
    assert 'id="chart-data"' in html and "vendor/chart.js/chart.umd.min.js" in html
    assert "No calls in this period" not in html


def _csv(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_interval_csv(client, auth):
    auth.login("super")
    rows = _csv(client, f"/reports/intervals.csv?from={TODAY}&interval=60")
    by = {(r["start"][11:16], r["queue"]): r for r in rows}
    nine = by[("09:00", "billing")]
    assert (nine["offered"], nine["answered"], nine["abandoned"]) == ("2", "2", "0")
    assert float(nine["service_level"]) == 0.5 and float(nine["asa"]) == 20.0 and float(nine["aht"]) == 75.0
    ten = by[("10:00", "billing")]
    assert (ten["offered"], ten["answered"], ten["abandoned"], float(ten["service_level"])) == ("1", "0", "1", 0.0)
    assert by[("10:00", "cards")]["answered"] == "1"
    assert len(rows) == 3


def test_interval_of_a_day(client, auth):
    auth.login("super")
    rows = _csv(client, f"/reports/intervals.csv?from={TODAY}&interval=1440")
    assert {r["queue"]: r["offered"] for r in rows} == {"billing": "3", "cards": "1"}


def test_agent_csv(client, auth):
    auth.login("super")
    rows = {r["agent"]: r for r in _csv(client, f"/reports/agents.csv?from={TODAY}")}
    assert rows["1001"]["answered"] == "2" and float(rows["1001"]["aht"]) == 80.0
    assert rows["1001"]["queues"] == "billing cards"
    assert rows["1002"]["answered"] == "1" and float(rows["1002"]["talk_s"]) == 50.0


def test_other_days_are_not_counted(client, auth):
    auth.login("super")
    yesterday = (DAY - timedelta(days=1)).isoformat()
    assert _csv(client, f"/reports/intervals.csv?from={yesterday}&to={yesterday}") == []


@pytest.mark.parametrize("query", ["interval=7", "from=2026-13-01", f"from={TODAY}&to=2020-01-01"])
def test_bad_windows(client, auth, query):
    auth.login("super")
    assert client.get(f"/reports/?{query}").status_code == 400


def test_queue_log_export(client, auth, services, tmp_path):
    auth.login("super")
    assert client.get("/reports/queue_log").status_code == 404
    services.queue_log_path = tmp_path / "queue_log"
    services.queue_log_path.write_text("1764581100|a|billing|NONE|ENTERQUEUE||15550001|1\n")
    response = client.get("/reports/queue_log")
    assert response.status_code == 200 and b"ENTERQUEUE" in response.data
    assert "attachment" in response.headers["Content-Disposition"]


def test_agents_have_no_reports(client, auth):
    auth.login("agent")
    assert client.get("/reports/").status_code == 403


def test_nps_per_queue_and_agent(app, client, auth):
    from callpilot.infra.db.surveys import SurveyResponse
    with app.app_context():
        session = db.get()
        for call_id, score, agent in (("a", 10, "1001"), ("b", 9, "1002"), ("d", 3, "1001")):
            session.add(SurveyResponse(call_id=call_id, question="nps", score=score, agent=agent,
                                       queue="billing", flow="survey", at=_at(11, 0)))
        session.commit()
    auth.login("super")
    html = client.get(f"/reports/?from={TODAY}").get_data(as_text=True)
    row = re.search(r'<table class="grid board" id="nps-table">.*?</table>', html, re.S).group(0)
    assert "<td>billing</td><td class=\"num\">+33</td><td class=\"num\">3</td>" in row
    assert "1001 +0 (2)" in row and "1002 +100 (1)" in row

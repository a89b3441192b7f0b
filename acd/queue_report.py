"""Queue statistics from the stored queue events, plus live agent states from ``serve``.

``queue_stats`` rebuilds each call's visit to a queue from its ``QueueEvent`` rows and hands
them to ``acd.stats.queue_kpis`` (the KPI definitions live there, not here):

* A visit starts at ENTERQUEUE and ends at COMPLETEAGENT/COMPLETECALLER, ABANDON or
  EXITWITHTIMEOUT.  A second ENTERQUEUE while a visit is open (a call re-adopted after a
  restart) continues that visit.  A visit whose ENTERQUEUE row is missing starts
  ``wait_s`` before its CONNECT/ABANDON/EXIT event.
* Waits are the dispatcher's own ``wait_s`` (the queue_log holdtime, unrounded): answered
  at enqueue + wait; handle time = talk time of COMPLETE* (wrap-up is not reported).
* EXITWITHTIMEOUT counts as not answered, like app_queue's own counters (record_abandoned):
  in ``offered`` and against the service level, but reported as ``timed_out``, not
  ``abandoned``.  So offered = answered + abandoned + timed_out, and
  service_level = answered within the target (wait <= target) / offered.
* ``since`` selects visits that entered the queue at or after it (a visit belongs to the
  interval it was offered in).  ``now`` lets ``longest_wait`` include calls still waiting.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from acd.queue_log import QueueLogEvent as E
from acd.stats import CallFact, queue_kpis
from callpilot.infra.db.models import QueueMember
from callpilot.infra.db.queue_events import QueueEventStore

logger = logging.getLogger(__name__)

DEFAULT_TARGET_SECONDS = 20
_ENDS = frozenset(e.value for e in (E.COMPLETEAGENT, E.COMPLETECALLER, E.ABANDON, E.EXITWITHTIMEOUT))


@dataclass
class Visit:
    """One call's stay in one queue."""

    call_id: str
    queue: str
    enqueued_at: datetime
    outcome: str | None = None        # answered | abandoned | timed_out; None while waiting
    wait_s: float | None = None       # until answered, abandoned or timed out
    talk_s: float | None = None
    agent: str | None = None
    ended: bool = False

    def fact(self, now: datetime | None = None) -> CallFact:
        """The visit as a CallFact on a clock whose zero is ``now``: an ended visit starts at
        0 (its wait is exact, no epoch-sized float error against the target), a waiting one
        ``now - enqueued_at`` seconds before 0."""
        wait = None if self.wait_s is None else max(0.0, self.wait_s)
        if self.outcome == "answered":
            return CallFact(0.0, answered_at=wait, handle_time=_non_negative(self.talk_s))
        if self.outcome in ("abandoned", "timed_out"):
            return CallFact(0.0, abandoned_at=wait)
        return CallFact(0.0 if now is None else min(0.0, (self.enqueued_at - now).total_seconds()))


def _non_negative(value: float | None) -> float | None:
    return None if value is None else max(0.0, value)


def _seconds(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class _Visits:
    """Folds events (oldest first) into visits, one open visit per (call, queue)."""

    def __init__(self) -> None:
        self.visits: list[Visit] = []
        self.ring_no_answer: Counter[str] = Counter()
        self._open: dict[tuple[str, str], Visit] = {}

    def add(self, ev) -> None:
        if not ev.call_id or not ev.queue:
            return
        data = ev.data or {}
        if ev.event == E.ENTERQUEUE:
            self._visit(ev, ev.at)
        elif ev.event == E.RINGNOANSWER:
            self.ring_no_answer[ev.queue] += 1
        elif ev.event == E.CONNECT:
            self._answered(self._visit(ev, ev.at - timedelta(seconds=_seconds(data, "wait_s"))), ev, data)
        elif ev.event in _ENDS:
            self._end(ev, data)

    def _visit(self, ev, enqueued_at: datetime) -> Visit:
        key = (ev.call_id, ev.queue)
        visit = self._open.get(key)
        if visit is None:
            visit = self._open[key] = Visit(ev.call_id, ev.queue, enqueued_at)
            self.visits.append(visit)
        return visit

    @staticmethod
    def _answered(visit: Visit, ev, data: Mapping[str, Any]) -> None:
        if visit.outcome is None:
            visit.outcome, visit.wait_s, visit.agent = "answered", _seconds(data, "wait_s"), ev.agent

    def _end(self, ev, data: Mapping[str, Any]) -> None:
        back = _seconds(data, "wait_s") + _seconds(data, "talk_s")
        visit = self._visit(ev, ev.at - timedelta(seconds=back))
        if ev.event in (E.COMPLETEAGENT, E.COMPLETECALLER):
            self._answered(visit, ev, data)
            visit.talk_s = _seconds(data, "talk_s")
        elif visit.outcome is None:
            visit.outcome = "abandoned" if ev.event == E.ABANDON else "timed_out"
            visit.wait_s = _seconds(data, "wait_s")
        visit.ended = True
        del self._open[(ev.call_id, ev.queue)]


def visits_from_events(events: Iterable[Any]) -> tuple[list[Visit], Counter[str]]:
    """Visits and RINGNOANSWER counts per queue from events with ``at, call_id, queue,
    agent, event, data`` (``QueueEvent`` rows), oldest first."""
    fold = _Visits()
    for ev in events:
        fold.add(ev)
    return fold.visits, fold.ring_no_answer


def stats_from_visits(visits: Iterable[Visit], ring_no_answer: Mapping[str, int] | None = None, *,
                      target_seconds: float = DEFAULT_TARGET_SECONDS,
                      now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per-queue statistics (see the module docstring); seconds as floats, None if no data."""
    by_queue: dict[str, list[Visit]] = {}
    for visit in visits:
        by_queue.setdefault(visit.queue, []).append(visit)
    rna = ring_no_answer or {}
    return {queue: _queue_stats(vs, rna.get(queue, 0), target_seconds, now)
            for queue, vs in sorted(by_queue.items())}


def _queue_stats(visits: list[Visit], ring_no_answer: int, target: float,
                 now: datetime | None) -> dict[str, Any]:
    kpis = queue_kpis([v.fact(now) for v in visits], target, now=None if now is None else 0.0)
    timed_out = sum(1 for v in visits if v.outcome == "timed_out")
    abandoned = kpis.abandoned - timed_out
    return {
        "offered": kpis.offered, "answered": kpis.answered, "abandoned": abandoned,
        "timed_out": timed_out, "waiting": kpis.waiting,
        "answered_in_target": kpis.answered_in_target, "target_seconds": target,
        "service_level": kpis.service_level,
        "abandon_rate": abandoned / kpis.offered if kpis.offered else None,
        "asa": kpis.asa, "aht": kpis.aht, "longest_wait": kpis.longest_wait,
        "ring_no_answer": ring_no_answer,
    }


def queue_stats(sessions: sessionmaker, queue: str | None = None, since: datetime | None = None,
                target_seconds: float = DEFAULT_TARGET_SECONDS,
                now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per-queue statistics from the ``queue_events`` table: {queue: {offered, answered, ...}}."""
    events = QueueEventStore(sessions).events(queue=queue, since=since, calls_only=True)
    visits, rna = visits_from_events(events)
    if since is not None:
        visits = [v for v in visits if v.enqueued_at >= since]
    return stats_from_visits(visits, rna, target_seconds=target_seconds, now=now)


# ---------------------------------------------------------------- live agents (serve)


def queue_members(sessions: sessionmaker) -> dict[str, list[str]]:
    """Configured members per queue: {queue: [extension, ...]}."""
    with sessions() as s:
        rows = s.execute(select(QueueMember.queue_name, QueueMember.agent_extension)
                         .order_by(QueueMember.queue_name, QueueMember.agent_extension)).all()
    members: dict[str, list[str]] = {}
    for queue, extension in rows:
        members.setdefault(queue, []).append(extension)
    return members


def _state_of(agent: Mapping[str, Any]) -> str:
    state = str(agent.get("state", "unknown"))
    if state == "available" and agent.get("routable") is False:
        return "unreachable"
    return state


def agents_by_state(live_agents: Mapping[str, Mapping[str, Any]],
                    members: list[str]) -> dict[str, int]:
    """How many of ``members`` are in each live state ({"available": 2, "paused": 1, ...}).

    An agent "available" in the ACD whose phone is not registered and idle cannot take a
    call: it is counted as "unreachable" (serve's ``routable`` flag says which)."""
    states = Counter(_state_of(live_agents[ext]) for ext in members if ext in live_agents)
    return dict(sorted(states.items()))


def build_report(stats: Mapping[str, dict[str, Any]], live: Mapping[str, Any] | None,
                 members: Mapping[str, list[str]], *, queue: str | None = None,
                 since: datetime | None = None,
                 target_seconds: float = DEFAULT_TARGET_SECONDS,
                 nps: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Stats merged with serve's live view; ``live`` None = serve down (agents/waiting_now None).
    ``nps``: survey results per queue (``acd.nps.load_nps``)."""
    nps = nps or {}
    names = set(stats) | set(members) | set((live or {}).get("queues", {})) | set(nps)
    if queue is not None:
        names = {queue}
    queues = {}
    for name in sorted(names):
        entry = dict(stats.get(name) or _empty_stats(target_seconds))
        entry["agents"] = None if live is None else agents_by_state(live.get("agents", {}), members.get(name, []))
        entry["waiting_now"] = None if live is None else live.get("queues", {}).get(name, {}).get("waiting", 0)
        entry["survey"] = nps.get(name)
        queues[name] = entry
    return {"serve": "down" if live is None else "up", "since": since.isoformat() if since else None,
            "target_seconds": target_seconds, "queues": queues}


def _empty_stats(target: float) -> dict[str, Any]:
    return _queue_stats([], 0, target, None)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def format_report(report: Mapping[str, Any]) -> str:
    """Human-readable lines for ``callpilot queues stats``."""
    window = f"since {report['since']}" if report["since"] else "all time"
    lines = [f"queue statistics, {window}, service level target {report['target_seconds']:g}s"]
    if report["serve"] == "down":
        lines.append("serve is not running: live agent states and waiting calls unavailable")
    if not report["queues"]:
        lines.append("  no queue events yet")
    for name, q in report["queues"].items():
        lines.append(f"  {name}: offered {q['offered']}, answered {q['answered']}, abandoned "
                     f"{q['abandoned']}, timed out {q['timed_out']}, SL {_pct(q['service_level'])}, "
                     f"ASA {_secs(q['asa'])}, AHT {_secs(q['aht'])}, longest wait {_secs(q['longest_wait'])}, "
                     f"ring-no-answer {q['ring_no_answer']}")
        if q["agents"] is not None:
            agents = ", ".join(f"{n} {state}" for state, n in q["agents"].items()) or "no agents"
            lines.append(f"    now: {q['waiting_now']} waiting; agents: {agents}")
        if q.get("survey"):
            lines.append(f"    survey: {_nps_text(q['survey'])}; by agent: " + ", ".join(
                f"{a or '?'} {_nps_text(v)}" for a, v in q["survey"]["agents"].items()))
    return "\n".join(lines)


def _nps_text(n: Mapping[str, Any]) -> str:
    return (f"NPS {n['nps']:+d} ({n['answers']} answer(s): {n['promoters']} promoter(s), "
            f"{n['detractors']} detractor(s))")


def parse_since(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is read in the local time zone."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.astimezone()


# ---------------------------------------------------------------- per interval, per agent (web reports)


def interval_stats(visits: Iterable[Visit], start: datetime, end: datetime, minutes: int,
                   target_seconds: float = DEFAULT_TARGET_SECONDS) -> list[dict[str, Any]]:
    """One row per interval and queue for visits offered in [start, end): the interval's
    ``start`` then the same statistics as :func:`stats_from_visits` (no ring-no-answer)."""
    step = timedelta(minutes=minutes)
    buckets: dict[int, list[Visit]] = {}
    for visit in visits:
        if start <= visit.enqueued_at < end:
            buckets.setdefault(int((visit.enqueued_at - start) / step), []).append(visit)
    rows = []
    for index in sorted(buckets):
        for queue, stats in stats_from_visits(buckets[index], target_seconds=target_seconds).items():
            rows.append({"start": start + index * step, "queue": queue, **stats})
    return rows


def agent_stats(visits: Iterable[Visit], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per agent, calls answered in visits offered in [start, end): count, talk and AHT,
    average wait of the calls they answered."""
    answered: dict[str, list[Visit]] = {}
    for visit in visits:
        if visit.outcome == "answered" and visit.agent and start <= visit.enqueued_at < end:
            answered.setdefault(visit.agent, []).append(visit)
    rows = []
    for agent, calls in sorted(answered.items()):
        talks = [v.talk_s for v in calls if v.talk_s is not None]
        waits = [v.wait_s for v in calls if v.wait_s is not None]
        rows.append({"agent": agent, "answered": len(calls), "talk_s": sum(talks),
                     "aht": sum(talks) / len(talks) if talks else None,
                     "asa": sum(waits) / len(waits) if waits else None,
                     "queues": sorted({v.queue for v in calls})})
    return rows


def visits_between(sessions: sessionmaker, start: datetime, end: datetime) -> list[Visit]:
    """Visits offered in [start, end) (events up to ``end`` plus the talk time after it are
    read from ``start`` on: a visit's end may come after ``end``)."""
    events = QueueEventStore(sessions).events(since=start, calls_only=True)
    visits, _rna = visits_from_events(events)
    return [v for v in visits if start <= v.enqueued_at < end]

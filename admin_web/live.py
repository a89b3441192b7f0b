"""What the wallboard and the agent page show, built from serve's live snapshot, today's
queue statistics and the call records; and the server-sent-event stream that pushes it.

Pure functions except :func:`event_stream` (polls) and :func:`screen_pop` (one query).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from callpilot.infra.db.models import CallRecord, Customer

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5          # serve's snapshot is read this often: changes reach the page < 1 s
STATS_SECONDS = 5.0         # today's statistics (a query over the day's queue events)
HEARTBEAT_SECONDS = 15.0    # an SSE comment keeps proxies from closing an idle stream
OPEN_STATES = ("ringing", "connected")


@dataclass
class StateClock:
    """When each agent entered its current state, as seen by this web process.

    serve's snapshot carries the state, not since when; the clock starts at the first
    snapshot that shows a state (``exact`` False until a change has been seen)."""

    since: dict[str, tuple[str, float, bool]] = field(default_factory=dict)

    def observe(self, agents: Mapping[str, Mapping[str, Any]], now: float) -> None:
        for ext, agent in agents.items():
            state = str(agent.get("state"))
            known = self.since.get(ext)
            if known is None:
                self.since[ext] = (state, now, False)
            elif known[0] != state:
                self.since[ext] = (state, now, True)

    def seconds_in_state(self, ext: str, now: float) -> tuple[float, bool]:
        _state, since, exact = self.since.get(ext, ("", now, False))
        return now - since, exact


def wallboard(live: Mapping[str, Any] | None, stats: Mapping[str, Mapping[str, Any]],
              clock: StateClock, now: float) -> dict[str, Any]:
    """Per queue: waiting, longest wait, SL, ASA, abandon rate; agents by state."""
    if live is None:
        return {"serve": "down", "queues": _queues({}, stats), "agents": []}
    clock.observe(live.get("agents", {}), now)
    return {"serve": "up", "queues": _queues(live, stats), "agents": _agents(live, clock, now)}


def waiting_by_queue(live: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{queue: {"count", "longest"}}``: a merged picture carries it, one serve's snapshot
    has the waiting calls themselves."""
    if "waiting_by_queue" in live:
        return dict(live["waiting_by_queue"])
    waiting: dict[str, dict[str, float]] = {}
    for call in live.get("waiting", []):
        queue = waiting.setdefault(call.get("queue") or "?", {"count": 0, "longest": 0.0})
        queue["count"] += 1
        queue["longest"] = max(queue["longest"], float(call.get("waited", 0.0)))
    return waiting


def _queues(live: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    waiting = waiting_by_queue(live)
    # serve's pending callbacks per queue; None when serve does not say (down, or an older serve)
    callbacks = (live.get("callbacks") or {}).get("pending_by_queue")
    names = sorted(set(waiting) | set(live.get("queues", {})) | set(stats) | set(callbacks or {}))
    rows = []
    for name in names:
        day = stats.get(name, {})
        waits = waiting.get(name, {"count": 0, "longest": 0.0})
        rows.append({"queue": name, "waiting": int(waits["count"]),
                     "longest_wait": round(waits["longest"], 1) if waits["count"] else None,
                     "agents_available": live.get("queues", {}).get(name, {}).get("agents_available"),
                     "offered": day.get("offered", 0), "service_level": day.get("service_level"),
                     "asa": day.get("asa"), "abandon_rate": day.get("abandon_rate"),
                     "callbacks_pending": None if callbacks is None else callbacks.get(name, 0)})
    return rows


# -- several nodes on one database: one picture of the center ---------------------------------

_BUSY_STATES = ("ringing", "on_call", "wrap_up")


def merge_center(snapshots: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One picture from the nodes' live snapshots (this node's first, then the others'
    published ones): waiting calls added up (each call is on one node), pending callbacks
    counted once (every node reads the same ones), each agent as the node that has it busy,
    or else the one where it is reachable, sees it; available agents counted once."""
    if not snapshots:
        return None
    if len(snapshots) == 1:
        return dict(snapshots[0])
    waiting: dict[str, dict[str, float]] = {}
    for snapshot in snapshots:
        for queue, here in waiting_by_queue(snapshot).items():
            total = waiting.setdefault(queue, {"count": 0, "longest": 0.0})
            total["count"] += here["count"]
            total["longest"] = max(total["longest"], here["longest"])
    agents = _merged_agents(snapshots)
    queues = {name: {"waiting": int(waiting.get(name, {}).get("count", 0)),
                     "agents_available": sum(1 for a in agents.values()
                                             if a.get("routable") and name in a.get("queues", ()))}
              for snapshot in snapshots for name in snapshot.get("queues", {})}
    return {**snapshots[0], "nodes": [s.get("node") for s in snapshots], "queues": queues,
            "waiting_by_queue": waiting, "agents": agents,
            "callbacks": {"pending_by_queue": _most_per_queue(snapshots)}}


def _merged_agents(snapshots: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    agents: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        for ext, view in snapshot.get("agents", {}).items():
            if ext not in agents or _rank(view) > _rank(agents[ext]):
                agents[ext] = dict(view)
    return agents


def _rank(view: Mapping[str, Any]) -> tuple[int, int, int]:
    """The node whose view of an agent tells most: busy there, not held by another node,
    its phone reachable there."""
    return (int(view.get("state") in _BUSY_STATES), int(not view.get("held_by")),
            int(view.get("device") not in (None, "UNAVAILABLE", "UNKNOWN", "INVALID")))


def _most_per_queue(snapshots: list[Mapping[str, Any]]) -> dict[str, int]:
    most: dict[str, int] = {}
    for snapshot in snapshots:
        for queue, count in ((snapshot.get("callbacks") or {}).get("pending_by_queue") or {}).items():
            most[queue] = max(most.get(queue, 0), int(count))
    return most


def _agents(live: Mapping[str, Any], clock: StateClock, now: float) -> list[dict[str, Any]]:
    rows = []
    for ext, agent in sorted(live.get("agents", {}).items()):
        seconds, exact = clock.seconds_in_state(ext, now)
        rows.append({"agent": ext, "state": agent.get("state"), "pause_reason": agent.get("pause_reason", ""),
                     "device": agent.get("device"), "queues": agent.get("queues", []),
                     "seconds_in_state": round(seconds), "exact": exact})
    return rows


def screen_pop(session: Session, extension: str,
               age_band: Callable[[int], str] | None) -> dict[str, Any] | None:
    """The call ringing or connected at ``extension``: caller profile, IVR path, what was said."""
    record = session.scalars(select(CallRecord).where(CallRecord.agent == extension)
                             .where(CallRecord.state.in_(OPEN_STATES))
                             .order_by(CallRecord.started_at.desc()).limit(1)).first()
    if record is None:
        return None
    customer = session.get(Customer, record.caller_id) if record.caller_id else None
    journey = record.journey or {}
    return {"call_id": record.id, "state": record.state, "caller_id": record.caller_id,
            "queue": record.queue, "did": record.did,
            "queued_at": record.enqueued_at.astimezone().strftime("%H:%M:%S") if record.enqueued_at else None,
            "waited": _seconds_between(record.enqueued_at, record.answered_at),
            "customer": _profile(customer, age_band),
            "ivr_path": list(record.menu_path or []),
            "said": [{"node": i.get("node"), "kind": i.get("kind"), "value": i.get("value"),
                      "confidence": i.get("confidence")}
                     for i in journey.get("inputs", []) if i.get("kind") in ("speech", "dtmf")],
            # for admin_web.pop_context: a campaign call's context; when the call came
            "outbound": journey.get("outbound"), "since": record.enqueued_at or record.started_at}


def _profile(customer: Customer | None, age_band: Callable[[int], str] | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    band = age_band(customer.birth_year) if age_band and customer.birth_year else None
    return {"name": customer.name, "age_band": band, "segment": customer.segment,
            "language": customer.language}


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from queue to answer; None while ringing (the page would change every poll)."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def event_stream(produce: Callable[[], Any], *, poll: float = POLL_SECONDS,
                 heartbeat: float = HEARTBEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Server-sent events: ``produce()`` every ``poll`` s, sent when it changed."""
    last: str | None = None
    last_sent = clock()
    while True:
        try:
            data = json.dumps(produce(), sort_keys=True, default=str)
        except Exception:     # a failing poll must not kill the page's stream
            logger.exception("live data for an event stream failed")
            data = last
        now = clock()
        if data is not None and data != last:
            last, last_sent = data, now
            yield f"data: {data}\n\n"
        elif now - last_sent >= heartbeat:
            last_sent = now
            yield ": keep-alive\n\n"
        sleep(poll)

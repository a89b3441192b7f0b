"""``QueueEventRecorder``: the dispatcher's ``QueueEventSink``, writing queue_log + database.

Each sink method
1. appends its line(s) to the Asterisk-style ``queue_log`` at once (a local append, a few
   microseconds; see ``acd.queue_log`` for the format), then
2. queues one database transaction inserting the same events as ``QueueEvent`` rows on a
   single worker thread, in call order, off the event loop.
Nothing raises into the caller: every failure (file, database, bad argument) is logged with
``logger.exception`` and the other half still happens.  ``close()`` waits for pending inserts.

One sink call can make several lines, exactly as app_queue would write them:
``agent_login`` -> AGENTLOGIN + ADDMEMBER per queue; ``agent_logout`` -> REMOVEMEMBER per
queue + AGENTLOGOFF; ``agent_pause`` -> PAUSEALL + PAUSE per queue; ``agent_unpause`` ->
UNPAUSEALL + UNPAUSE per queue.  Each line is one database row with the same event name.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from acd.queue_log import NONE, QueueLogEvent as E, QueueLogFile, format_line, member_name, seconds
from callpilot.infra.db.queue_events import QueueEventStore
from callpilot.infra.db.write_behind import WriteBehind
from callpilot.infra.db.records import utcnow

logger = logging.getLogger(__name__)

MAX_TRACKED_CALLS = 10_000   # original positions kept for calls still in a queue


@dataclass(frozen=True)
class Entry:
    """One event: a queue_log line and a database row.  None = NONE in the queue_log."""

    event: E
    call_id: str | None = None
    queue: str | None = None
    agent: str | None = None                  # extension
    fields: tuple[Any, ...] = ("",)           # queue_log data fields, in app_queue's order
    data: dict[str, Any] = field(default_factory=dict)   # database data, unrounded

    def line(self, at: datetime) -> str:
        agent = member_name(self.agent) if self.agent else NONE
        return format_line(at.timestamp(), self.call_id or NONE, self.queue or NONE, agent,
                           self.event, self.fields)

    def row(self, at: datetime) -> dict[str, Any]:
        return {"at": at, "call_id": self.call_id, "queue": self.queue, "agent": self.agent,
                "event": self.event.value, "data": self.data}


def _never_raises(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            method(self, *args, **kwargs)
        except Exception:
            logger.exception("queue event %s%r failed", method.__name__, args)
    return wrapper


def callback_call_id(callback_id: str) -> str:
    """The queue_log callid of a callback's events."""
    return f"callback-{callback_id}"


class QueueEventRecorder:
    """Implements ``acd.events.QueueEventSink``; wired in server.py, closed at shutdown."""

    def __init__(self, sessions: sessionmaker, queue_log_path: Path | str, *,
                 clock: Callable[[], datetime] = utcnow):
        self.store = QueueEventStore(sessions)
        self.queue_log = QueueLogFile(queue_log_path)
        self.clock = clock
        self._writer: WriteBehind[list[dict[str, Any]]] = WriteBehind("queue-events", self._insert_all)
        self._orig_position: dict[tuple[str, str], int] = {}
        self._closed = False

    # -- calls ----------------------------------------------------------------------------
    @_never_raises
    def enter_queue(self, call_id: str, queue: str, caller_id: str, position: int) -> None:
        self._remember_position(call_id, queue, position)
        self._record(Entry(E.ENTERQUEUE, call_id, queue, None, ("", caller_id, position),
                           {"caller_id": caller_id, "position": position}))

    @_never_raises
    def ring_no_answer(self, call_id: str, queue: str, agent: str, ring_ms: int) -> None:
        self._record(Entry(E.RINGNOANSWER, call_id, queue, agent, (int(ring_ms),),
                           {"ring_ms": int(ring_ms)}))

    @_never_raises
    def connect(self, call_id: str, queue: str, agent: str, wait_s: float, ring_s: float,
                agent_channel: str = "") -> None:
        """``agent_channel``: the agent leg's channel id (CONNECT's bridged-channel field)."""
        self._record(Entry(E.CONNECT, call_id, queue, agent,
                           (seconds(wait_s), agent_channel, seconds(ring_s)),
                           {"wait_s": wait_s, "ring_s": ring_s, "agent_channel": agent_channel}))

    @_never_raises
    def abandon(self, call_id: str, queue: str, position: int, orig_position: int,
                wait_s: float) -> None:
        self._orig_position.pop((call_id, queue), None)
        self._record(Entry(E.ABANDON, call_id, queue, None, (position, orig_position, seconds(wait_s)),
                           {"position": position, "orig_position": orig_position, "wait_s": wait_s}))

    @_never_raises
    def complete(self, call_id: str, queue: str, agent: str, wait_s: float, talk_s: float,
                 by: str) -> None:
        if by not in ("agent", "caller"):
            logger.warning("call %s: complete by %r, expected 'agent' or 'caller': logged as caller",
                           call_id, by)
        event = E.COMPLETEAGENT if by == "agent" else E.COMPLETECALLER
        orig = self._orig_position.pop((call_id, queue), 1)
        self._record(Entry(event, call_id, queue, agent, (seconds(wait_s), seconds(talk_s), orig),
                           {"wait_s": wait_s, "talk_s": talk_s, "orig_position": orig}))

    @_never_raises
    def exit_with_timeout(self, call_id: str, queue: str, position: int, wait_s: float,
                          overflow_to: str | None) -> None:
        orig = self._orig_position.pop((call_id, queue), position)
        self._record(Entry(E.EXITWITHTIMEOUT, call_id, queue, None, (position, orig, seconds(wait_s)),
                           {"position": position, "orig_position": orig, "wait_s": wait_s,
                            "overflow_to": overflow_to}))

    # -- agents ---------------------------------------------------------------------------
    @_never_raises
    def agent_login(self, agent: str, queues: list[str]) -> None:
        queues = sorted(queues)
        self._record(Entry(E.AGENTLOGIN, None, None, agent, (member_name(agent),), {"queues": queues}),
                     *(Entry(E.ADDMEMBER, None, q, agent) for q in queues))

    @_never_raises
    def agent_logout(self, agent: str, queues: list[str], logged_in_s: float) -> None:
        queues = sorted(queues)
        self._record(*(Entry(E.REMOVEMEMBER, None, q, agent) for q in queues),
                     Entry(E.AGENTLOGOFF, None, None, agent, (member_name(agent), seconds(logged_in_s)),
                           {"queues": queues, "logged_in_s": logged_in_s}))

    @_never_raises
    def agent_pause(self, agent: str, queues: list[str], reason: str) -> None:
        queues = sorted(queues)
        self._record(Entry(E.PAUSEALL, None, None, agent, (reason,), {"reason": reason, "queues": queues}),
                     *(Entry(E.PAUSE, None, q, agent, (reason,), {"reason": reason}) for q in queues))

    @_never_raises
    def agent_unpause(self, agent: str, queues: list[str]) -> None:
        queues = sorted(queues)
        self._record(Entry(E.UNPAUSEALL, None, None, agent, ("",), {"queues": queues}),
                     *(Entry(E.UNPAUSE, None, q, agent) for q in queues))

    @_never_raises
    def exit_with_key(self, call_id: str, queue: str, key: str, position: int, orig_position: int,
                      wait_s: float) -> None:
        self._orig_position.pop((call_id, queue), None)
        self._record(Entry(E.EXITWITHKEY, call_id, queue, None, (key, position, orig_position, seconds(wait_s)),
                           {"key": key, "position": position, "orig_position": orig_position, "wait_s": wait_s}))

    # -- callbacks (CallPilot's own events, see acd.queue_log) ----------------------------
    @_never_raises
    def callback_request(self, callback_id: str, queue: str, number: str, source: str,
                         call_id: str) -> None:
        self._record(Entry(E.CALLBACKREQUEST, callback_call_id(callback_id), queue, None,
                           (number, source, call_id), {"number": number, "source": source, "call_id": call_id}))

    @_never_raises
    def callback_attempt(self, callback_id: str, queue: str, agent: str, attempt_id: int,
                         number: str) -> None:
        self._record(Entry(E.CALLBACKATTEMPT, callback_call_id(callback_id), queue, agent,
                           (attempt_id, number), {"attempt": attempt_id, "number": number}))

    @_never_raises
    def callback_connect(self, callback_id: str, queue: str, agent: str, wait_s: float,
                         agent_channel: str) -> None:
        self.connect(callback_call_id(callback_id), queue, agent, wait_s, 0.0, agent_channel)

    @_never_raises
    def callback_complete(self, callback_id: str, queue: str, agent: str, talk_s: float) -> None:
        self._record(Entry(E.COMPLETEAGENT, callback_call_id(callback_id), queue, agent,
                           (0, seconds(talk_s), 1), {"talk_s": talk_s, "callback": True}))

    @_never_raises
    def callback_result(self, callback_id: str, queue: str, agent: str, attempt_id: int,
                        outcome: str, state: str, detail: str) -> None:
        self._record(Entry(E.CALLBACKRESULT, callback_call_id(callback_id), queue, agent or None,
                           (attempt_id, outcome, state, detail),
                           {"attempt": attempt_id, "outcome": outcome, "state": state, "detail": detail}))

    @_never_raises
    def callback_closed(self, callback_id: str, queue: str, state: str, detail: str) -> None:
        self._record(Entry(E.CALLBACKCLOSED, callback_call_id(callback_id), queue or None, None,
                           (state, detail), {"state": state, "detail": detail}))

    # -- writing --------------------------------------------------------------------------
    def _remember_position(self, call_id: str, queue: str, position: int) -> None:
        if len(self._orig_position) >= MAX_TRACKED_CALLS:   # calls lost without an end event
            self._orig_position.pop(next(iter(self._orig_position)))
        self._orig_position.setdefault((call_id, queue), position)

    def _record(self, *entries: Entry) -> None:
        at = self.clock()
        for entry in entries:
            try:
                self.queue_log.write(entry.line(at))
            except Exception:
                logger.exception("queue_log %s: %s not written", self.queue_log.path, entry.event)
        if self._closed:
            logger.error("queue events %s after close: not stored", [e.event.value for e in entries])
            return
        self._writer.post([entry.row(at) for entry in entries])

    def _insert_all(self, posts: list[list[dict[str, Any]]]) -> None:
        """One flush: every post's rows in one insert; if that fails, post by post, so one
        bad event cannot drop the others."""
        try:
            self.store.add([row for rows in posts for row in rows])
        except Exception:  # noqa: BLE001  (each post retried and logged below)
            for rows in posts:
                self._insert(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.store.add(rows)
        except Exception:
            logger.exception("queue events not stored in the database: %s",
                             [(r["event"], r["call_id"], r["queue"], r["agent"]) for r in rows])

    # -- lifecycle ------------------------------------------------------------------------
    def flush(self) -> None:
        """Wait until every event recorded so far is in the database (or has failed)."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Store what is pending, then close the queue_log.  Later events are logged, not stored."""
        self._closed = True
        self._writer.close()
        self.queue_log.close()

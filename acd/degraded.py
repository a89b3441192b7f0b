"""Call records for the calls Asterisk took on the degraded path while serve was away.

When the Stasis application is not registered (serve stopped, restarting or starting), the
dialplan sends a trunk call to app_queue's queue ``callpilot-degraded`` over the same agents
(``dialplans/extensions.conf.j2`` ``[callpilot-degraded]``).  app_queue writes every such
call to the instance's ``queue_log`` (format in :mod:`acd.queue_log`), with the DID as the
ENTERQUEUE URL field.  :class:`DegradedCalls` reads that file from where it stopped and
writes one *ended* call record per finished call, so the record shows the degraded call:

=================  ==========================================
last event         record outcome
=================  ==========================================
COMPLETEAGENT      answered (agent = member name)
COMPLETECALLER     answered
ABANDON            abandoned
EXITWITHTIMEOUT    failed (no agent answered in time)
EXITEMPTY          failed
EXITWITHKEY        failed
=================  ==========================================

A call still waiting in app_queue gets no record until it ends: an open record would be
taken for a call parked in Stasis and "re-adopted" by serve's resync.  Records are keyed by
the channel's unique id, so reading the whole file again after a restart writes nothing
twice.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from callpilot.infra.db.call_vocabulary import CallOutcome as Outcome, CallState

logger = logging.getLogger(__name__)

DETAIL = "degraded path: serve was away, taken by app_queue"
TERMINAL = {"COMPLETEAGENT": Outcome.ANSWERED, "COMPLETECALLER": Outcome.ANSWERED,
            "ABANDON": Outcome.ABANDONED, "EXITWITHTIMEOUT": Outcome.FAILED,
            "EXITEMPTY": Outcome.FAILED, "EXITWITHKEY": Outcome.FAILED}
POLL_SECONDS = 5.0


class RecordStore(Protocol):
    def open(self, call_id: str, **fields: Any) -> None: ...
    def get(self, call_id: str) -> Any: ...


@dataclass
class DegradedCall:
    id: str
    started_at: datetime
    caller_id: str = ""
    did: str = ""
    agent: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    events: list[str] = field(default_factory=list)

    def record(self, queue: str) -> dict[str, Any]:
        return {"caller_id": self.caller_id, "did": self.did, "state": CallState.ENDED.value,
                "queue": queue, "agent": self.agent, "started_at": self.started_at,
                "enqueued_at": self.started_at, "answered_at": self.answered_at,
                "ended_at": self.ended_at, "outcome": self.outcome.value if self.outcome else None,
                "detail": f"{DETAIL} ({' '.join(self.events)})"}


def _at(epoch: str) -> datetime:
    return datetime.fromtimestamp(int(epoch), timezone.utc)


def apply_line(calls: dict[str, DegradedCall], line: str, queue: str) -> DegradedCall | None:
    """Fold one queue_log line into ``calls``; return the call when this line ended it."""
    parts = line.rstrip("\n").split("|")
    if len(parts) < 5 or parts[2] != queue or parts[1] in ("", "NONE"):
        return None
    epoch, call_id, _queue, agent, event, *data = parts
    if not epoch.isdigit():
        return None
    if event == "ENTERQUEUE":
        calls[call_id] = DegradedCall(call_id, _at(epoch), caller_id=_field(data, 1),
                                      did=_field(data, 0), events=[event])
        return None
    call = calls.get(call_id)
    if call is None:
        return None
    call.events.append(event)
    if event == "CONNECT":
        call.agent, call.answered_at = agent, _at(epoch)
    if event in TERMINAL:
        call.ended_at, call.outcome = _at(epoch), TERMINAL[event]
        return calls.pop(call_id)
    return None


def _field(data: list[str], index: int) -> str:
    return data[index] if len(data) > index else ""


class DegradedCalls:
    """Tails app_queue's queue_log and records every finished degraded call once."""

    def __init__(self, path: Path, store: RecordStore, *, queue: str,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.path = path
        self.store = store
        self.queue = queue
        self.poll_seconds = poll_seconds
        self._offset = 0
        self._calls: dict[str, DegradedCall] = {}
        self.recorded = 0

    def poll(self) -> list[str]:
        """Read what was appended since the last poll; return the ids recorded now."""
        written = []
        for line in self._new_lines():
            done = apply_line(self._calls, line, self.queue)
            if done is not None and self._write(done):
                written.append(done.id)
        return written

    def _new_lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._offset:            # rotated or truncated: start again
            self._offset, self._calls = 0, {}
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]   # a half-written last line waits
        self._offset += len(complete)
        return complete.decode("utf-8", errors="replace").splitlines()

    def _write(self, call: DegradedCall) -> bool:
        if self.store.get(call.id) is not None:
            return False
        self.store.open(call.id, **call.record(self.queue))
        self.recorded += 1
        logger.info("call %s from %s to %s taken on the degraded path: %s, agent %s",
                    call.id, call.caller_id, call.did, call.outcome.value if call.outcome else None,
                    call.agent)
        return True

    async def run(self) -> None:
        """Poll forever (first poll at once); one bad poll never stops the loop."""
        while True:
            try:
                await asyncio.to_thread(self.poll)
            except Exception:  # noqa: BLE001  (a DB or file hiccup: try again next poll)
                logger.exception("reading degraded calls from %s failed", self.path)
            await asyncio.sleep(self.poll_seconds)

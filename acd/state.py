"""Live call state in the ACD: the call-record states (``CallState``, shared vocabulary in
``callpilot.infra.db.call_vocabulary``) as a state machine whose every move is checked and
logged."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acd.log_later import NOW, LogLater
from acd.model import IllegalTransition
from callpilot.infra.db.call_vocabulary import CallOutcome, CallState, RoutingTicket

logger = logging.getLogger(__name__)

__all__ = ["CALL_TRANSITIONS", "CallEntry", "CallOutcome", "CallState", "IllegalTransition", "LiveCall"]

CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.IVR: frozenset({CallState.QUEUED, CallState.ENDED}),
    CallState.QUEUED: frozenset({CallState.RINGING, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.CONNECTED, CallState.QUEUED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


@dataclass
class LiveCall:
    id: str                            # the caller's channel id
    caller_id: str
    did: str
    state: CallState = CallState.IVR
    queue: str | None = None
    priority: int = 0
    enqueued_at: datetime | None = None
    enqueued_mono: float = 0.0         # monotonic clock at queue entry (policy time base)
    attributes: dict = field(default_factory=dict)
    skills: dict = field(default_factory=dict)
    steps: tuple = ()
    skill: str = ""                    # the queue's skill (proficiency tie-breaker)
    ticket: RoutingTicket | None = None  # as the flow chose it; stored with the record
    orig_position: int = 0
    answered_mono: float = 0.0
    agent: str | None = None
    agent_channel: str | None = None
    parked: Any = None                 # the park request's future (holding bridge + MOH)
    view: Any = None                   # the policy's CallView, built once per queue entry
    attempts: int = 0
    bridge_failures: int = 0           # agent answered but Asterisk failed the bridge

    def waited(self, now: float) -> float:
        return max(0.0, (self.answered_mono or now) - self.enqueued_mono)

    def move(self, new: CallState, why: str = "", *, log: LogLater | None = None) -> None:
        """``log``: the line goes there (written a moment later) instead of out now."""
        if new not in CALL_TRANSITIONS[self.state]:
            raise IllegalTransition(self.state, new, f"call {self.id}")
        (NOW if log is None else log).info(logger, "call %s queue=%s agent=%s: %s -> %s %s", self.id,
                                           self.queue, self.agent, self.state.value, new.value, why)
        self.state = new


@dataclass(frozen=True)
class CallEntry:
    """A call the dispatcher takes over.  ``attributes`` come from the caller's profile; the
    ticket's own attributes (what the flow learnt) win over them.  A re-adopted call keeps
    its ``enqueued_at`` (its place in line); one found talking to an agent names the agent
    and its leg."""

    call_id: str
    caller_id: str
    did: str
    ticket: RoutingTicket
    attributes: dict[str, Any] = field(default_factory=dict)
    enqueued_at: datetime | None = None
    readopted: bool = False
    agent: str | None = None
    agent_channel: str | None = None

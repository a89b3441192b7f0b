"""Live call state in the ACD: a named enum whose every transition is checked and logged."""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)


class CallState(enum.Enum):
    IVR = "ivr"
    QUEUED = "queued"
    RINGING = "ringing"        # an agent leg is being offered the call
    CONNECTED = "connected"
    ENDED = "ended"


CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.IVR: frozenset({CallState.QUEUED, CallState.ENDED}),
    CallState.QUEUED: frozenset({CallState.RINGING, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.CONNECTED, CallState.QUEUED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class Outcome(enum.Enum):
    ANSWERED = "answered"              # talked to an agent
    ABANDONED = "abandoned"            # hung up while waiting or ringing
    IVR_HANGUP = "ivr_hangup"          # hung up in the IVR
    IVR_COMPLETED = "ivr_completed"    # the flow ended the call itself
    LOST = "lost"                      # the channel vanished while serve was away
    CALLBACK = "callback"              # left the line with a callback that keeps its place
    FAILED = "failed"


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
    orig_position: int = 0
    answered_mono: float = 0.0
    agent: str | None = None
    agent_channel: str | None = None
    parked: Any = None                 # the park request's future (holding bridge + MOH)
    view: Any = None                   # the policy's CallView, built once per queue entry
    attempts: int = 0

    def waited(self, now: float) -> float:
        return max(0.0, (self.answered_mono or now) - self.enqueued_mono)

    def move(self, new: CallState, why: str = "") -> None:
        if new not in CALL_TRANSITIONS[self.state]:
            raise IllegalTransition(f"call {self.id}: {self.state.value} -> {new.value}")
        logger.info("call %s queue=%s agent=%s: %s -> %s %s", self.id, self.queue, self.agent,
                    self.state.value, new.value, why)
        self.state = new

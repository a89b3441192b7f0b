"""What a flow decides for a call, handed to the ACD (enqueue), Asterisk (transfer) or ended."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from callpilot.infra.db.call_vocabulary import RoutingTicket

OutcomeKind = Literal["enqueue", "hangup", "transfer"]


@dataclass
class Outcome:
    kind: OutcomeKind
    queue: str | None = None
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)     # skill -> minimum level
    steps: list[dict[str, Any]] = field(default_factory=list)  # relaxation steps, passed through
    target: str | None = None                                 # transfer destination
    attributes: dict[str, Any] = field(default_factory=dict)  # caller attributes for routing
    reason: str = ""                                          # e.g. "caller", "error", "max_steps"

    def ticket(self, fallback_queue: str) -> RoutingTicket:
        """The routing ticket the ACD takes (and the call record keeps) for an ``enqueue``."""
        return RoutingTicket(queue=self.queue or fallback_queue, priority=self.priority,
                             skills=dict(self.skills),
                             steps=[dict(s) for s in self.steps] if self.steps else None,
                             attributes=dict(self.attributes))

"""What a flow decides for a call, handed to the ACD (enqueue), Asterisk (transfer) or ended."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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

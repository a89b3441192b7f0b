"""What a waiting caller is told: position in line and estimated wait (pure, no I/O)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from acd.state import CallState, LiveCall


def position_of(call: LiveCall, calls: Iterable[LiveCall]) -> int:
    """1-based place in the call's queue: higher priority first, then earlier entry."""
    ahead = 0
    for other in calls:
        if other.id == call.id or other.queue != call.queue:
            continue
        if other.state not in (CallState.QUEUED, CallState.RINGING):
            continue
        if (-other.priority, other.enqueued_mono, other.id) < (-call.priority, call.enqueued_mono, call.id):
            ahead += 1
    return ahead + 1


def announcement_text(position: int, wait_seconds: float | None, *, say_position: bool = True,
                      extra: str = "") -> str:
    parts = []
    if say_position:
        parts.append("You are next in line." if position == 1 else f"You are caller number {position}.")
    if wait_seconds is not None:
        minutes = math.ceil(wait_seconds / 60)
        parts.append("Your estimated wait is less than a minute." if minutes <= 1
                     else f"Your estimated wait is about {minutes} minutes.")
    if extra:
        parts.append(extra)
    return " ".join(parts)

"""What a waiting caller is told: position in line and estimated wait (pure, no I/O)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from acd.state import CallState, LiveCall


WAITING = (CallState.QUEUED, CallState.RINGING)


def _line_key(call: LiveCall) -> tuple:
    return (-call.priority, call.enqueued_mono, call.id)


def position_of(call: LiveCall, calls: Iterable[LiveCall]) -> int:
    """1-based place in the call's queue: higher priority first, then earlier entry."""
    mine = _line_key(call)
    return 1 + sum(1 for other in calls if other.id != call.id and other.queue == call.queue
                   and other.state in WAITING and _line_key(other) < mine)


def positions(calls: Iterable[LiveCall]) -> dict[str, int]:
    """Every waiting call's position at once: one sort per queue, not one scan per call."""
    lines: dict[str | None, list[LiveCall]] = {}
    for call in calls:
        if call.state in WAITING:
            lines.setdefault(call.queue, []).append(call)
    return {call.id: place for line in lines.values()
            for place, call in enumerate(sorted(line, key=_line_key), start=1)}


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

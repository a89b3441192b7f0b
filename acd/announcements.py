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


# The caller's language (primary subtag) -> (next, number n, under a minute, about n minutes).
PHRASES = {
    "en": ("You are next in line.", "You are caller number {n}.",
           "Your estimated wait is less than a minute.", "Your estimated wait is about {n} minutes."),
    "ko": ("다음 순서입니다.", "대기 순서는 {n}번째입니다.", "예상 대기 시간은 1분 미만입니다.",
           "예상 대기 시간은 약 {n}분입니다."),
}


def announcement_text(position: int, wait_seconds: float | None, *, say_position: bool = True,
                      extra: str = "", language: str | None = None) -> str:
    """Position and wait in the caller's language (English when it has no phrases)."""
    first, nth, short, about = PHRASES.get((language or "en").lower().split("-")[0], PHRASES["en"])
    parts = []
    if say_position:
        parts.append(first if position == 1 else nth.format(n=position))
    if wait_seconds is not None:
        minutes = math.ceil(wait_seconds / 60)
        parts.append(short if minutes <= 1 else about.format(n=minutes))
    if extra:
        parts.append(extra)
    return " ".join(parts)

"""What a waiting caller is told: position in line and estimated wait (pure, no I/O)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from sortedcontainers import SortedList

from acd.state import CallState, LiveCall
from callpilot.infra.messages import MessageCatalogue, Said


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


class Lines:
    """The waiting calls (QUEUED or RINGING) of each queue in line order, kept as calls come
    and go, so a position costs O(log n) and a queue's length O(1): nothing on a per-event
    path walks the waiting calls.  Agrees with :func:`position_of`."""

    def __init__(self) -> None:
        self._lines: dict[str | None, SortedList] = {}
        self._keys: dict[str, tuple[str | None, tuple]] = {}   # call id -> (queue, key)

    def join(self, call: LiveCall) -> None:
        """The call is (again) in its queue's line; a previous place is given up."""
        self.leave(call.id)
        key = _line_key(call)
        line = self._lines.get(call.queue)
        if line is None:            # (not setdefault: a SortedList built per join, D38)
            line = self._lines[call.queue] = SortedList()
        line.add(key)
        self._keys[call.id] = (call.queue, key)

    def leave(self, call_id: str) -> None:
        entry = self._keys.pop(call_id, None)
        if entry is not None:
            queue, key = entry
            self._lines[queue].discard(key)

    def position(self, call: LiveCall) -> int:
        """1-based; for a call not in line, where it would stand."""
        queue, key = self._keys.get(call.id) or (call.queue, _line_key(call))
        line = self._lines.get(queue)
        return 1 + (line.bisect_left(key) if line else 0)

    def length(self, queue: str | None) -> int:
        return len(self._lines.get(queue) or ())

    def lengths(self) -> dict[str | None, int]:
        return {queue: len(line) for queue, line in self._lines.items() if line}

    def positions(self) -> dict[str, int]:
        """Every waiting call's position, one walk of each line (no sort)."""
        return {key[2]: place for line in self._lines.values()
                for place, key in enumerate(line, start=1)}


def announcement(messages: MessageCatalogue, position: int, wait_seconds: float | None, *,
                 say_position: bool = True, language: str | None = None) -> Said:
    """Position and wait in the caller's language (the catalogue falls back to English)."""
    said = Said("", language)
    if say_position:
        said = said.then(messages.say("queue.next", language) if position == 1
                         else messages.say("queue.position", language, n=position))
    if wait_seconds is not None:
        minutes = math.ceil(wait_seconds / 60)
        said = said.then(messages.say("queue.wait_under_a_minute", language) if minutes <= 1
                         else messages.say("queue.wait_minutes", language, n=minutes))
    return said

"""The ACD's clocks, passed in so the dispatcher is tested with time under the test's control.

``monotonic`` is the policy's time base (step expiries, waits, idle time); ``utcnow`` stamps
records.  Timers still sleep on the event loop.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def utcnow(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(timezone.utc)

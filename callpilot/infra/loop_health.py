"""Event-loop health: how late a periodic ticker wakes (no policy, no domain).

A ticker sleeps ``interval`` seconds and records how much later than asked it woke: the
time the loop was busy with something else (a long callback, a blocking call, the garbage
collector, or the host not scheduling the process).  The last ``window`` lateness values
(the last ``window_seconds``) give p50 / p99 / max; ``worst`` is the largest since start.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

INTERVAL_ENV = "CALLPILOT_LOOP_LAG_INTERVAL"   # seconds; the default ticker is cheap: 10 wakes/s
DEFAULT_INTERVAL = 0.1


class LoopLag:
    def __init__(self, interval: float | None = None, window_seconds: float = 60.0, *,
                 clock: Callable[[], float] | None = None) -> None:
        self.interval = interval if interval is not None else _env_interval()
        self.clock = clock              # None: the loop's own clock (tests pass a scripted one)
        self.lags: deque[float] = deque(maxlen=max(1, int(window_seconds / self.interval)))
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None
        self.observers: list[Callable[[float], None]] = []   # each lateness (s), e.g. a histogram

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick(), name="loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _tick(self) -> None:
        now = self.clock or asyncio.get_running_loop().time
        while True:
            expected = now() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, now() - expected)
            self.lags.append(lag)
            self.ticks += 1
            self.worst = max(self.worst, lag)
            for observe in self.observers:
                observe(lag)

    def figures(self) -> dict[str, float]:
        """Milliseconds over the window: p50, p99, max; ``worst_ms`` since start or reset."""
        ordered = sorted(self.lags)
        if not ordered:
            return {"interval_ms": self.interval * 1000, "ticks": 0}
        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] * 1000
        return {"interval_ms": self.interval * 1000, "ticks": self.ticks, "p50_ms": at(0.5),
                "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000, "worst_ms": self.worst * 1000}


def _env_interval() -> float:
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        logger.warning("%s=%r is not a number: %.2f s", INTERVAL_ENV, raw, DEFAULT_INTERVAL)
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL

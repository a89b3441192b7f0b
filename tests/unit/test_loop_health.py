"""The loop-lag ticker records lateness when the loop is blocked (no timed assertion: a
blocked loop can only make the ticker later, never earlier)."""
from __future__ import annotations

import asyncio
import time

from callpilot.infra.loop_health import LoopLag


async def test_a_blocked_loop_shows_as_lag():
    lag = LoopLag(interval=0.01, window_seconds=10)
    lag.start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)                       # the loop is blocked for 200 ms
    await asyncio.sleep(0.05)
    lag.stop()
    figures = lag.figures()
    assert figures["ticks"] >= 1
    assert figures["max_ms"] >= 150       # the tick due during the block came >= 190 ms late
    assert figures["worst_ms"] == figures["max_ms"]
    assert len(lag.lags) <= 1000


def test_no_ticks_yet_reports_only_the_interval(monkeypatch):
    monkeypatch.setenv("CALLPILOT_LOOP_LAG_INTERVAL", "0.02")
    assert LoopLag().figures() == {"interval_ms": 20.0, "ticks": 0}

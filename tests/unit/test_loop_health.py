"""The loop-lag ticker: what it records and what it reports.  No timed assertion: the
lateness comes from a scripted clock, and the live ticker is only checked to run and report
(how late a real loop is stays in the benchmarks: bench.acd (c), bench.load)."""
from __future__ import annotations

import asyncio

import pytest

from callpilot.infra.loop_health import LoopLag


def scripted(lag: LoopLag, times: list[float]):
    """A clock that returns ``times`` in turn, then stops the ticker (at its next sleep)."""
    pending = iter(times)

    def clock() -> float:
        try:
            return next(pending)
        except StopIteration:
            lag.stop()
            return times[-1]
    return clock


async def test_the_ticker_records_how_much_later_than_asked_it_woke():
    lag = LoopLag(interval=0.01, window_seconds=10)
    # each tick reads the clock twice: before its sleep (due = t + 10 ms) and on waking
    lag.clock = scripted(lag, [0.0, 0.010,      # on time
                               0.010, 0.220,    # woke 200 ms late (a blocked loop)
                               0.220, 0.235])   # 5 ms late
    lag.start()
    await asyncio.wait_for(asyncio.gather(lag._task, return_exceptions=True), 5)
    assert lag.figures() == pytest.approx({"interval_ms": 10.0, "ticks": 3, "p50_ms": 5.0,
                                           "p99_ms": 200.0, "max_ms": 200.0, "worst_ms": 200.0})


async def test_the_live_ticker_runs_and_reports_its_figures():
    lag = LoopLag(interval=0.01, window_seconds=10)
    lag.start()
    try:
        await asyncio.wait_for(_ticks(lag, 3), 10)    # a bound for the test itself, not a figure
    finally:
        lag.stop()
    figures = lag.figures()
    assert figures["ticks"] >= 3 and figures["interval_ms"] == 10.0
    assert 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] <= figures["worst_ms"]
    assert len(lag.lags) <= 1000                      # the window: 10 s of 10 ms ticks


async def _ticks(lag: LoopLag, n: int) -> None:
    while lag.ticks < n:
        await asyncio.sleep(0.01)


def test_no_ticks_yet_reports_only_the_interval(monkeypatch):
    monkeypatch.setenv("CALLPILOT_LOOP_LAG_INTERVAL", "0.02")
    assert LoopLag().figures() == {"interval_ms": 20.0, "ticks": 0}

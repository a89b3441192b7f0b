"""bench.acd part (c) at a tiny scale: the bench drives the real Dispatcher, so a change of
the dispatcher's routing interface must not leave the benchmark broken (it was, unnoticed,
from the callbacks merge until this test: FullRouting.offers lacked ``virtual``)."""
from bench.acd import loop_bench


def test_the_dispatcher_bench_runs_both_routings_at_a_small_scale():
    figures = loop_bench.run(quick=True, log=lambda _line: None, agents=40, calls=200, seconds=1.0)
    assert figures["dispatcher_freed_agent.runs"] > 0
    assert figures["dispatcher_freed_agent_full.runs"] > 0
    assert figures["loop_lag_full.p99_ms"] >= 0 and "loop_lag.p99_ms" in figures

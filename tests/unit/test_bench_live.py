"""bench.acd live: the per-path split at the caller's first RTP packet and the ratio of
Asterisk's own part after Answer()."""
from bench.acd.live import Round, _asterisk_after_rtp_ratio, _path_stats
from bench.acd.sipcap import CallTimes

ENDED = {"ended": "caller"}


def _call(number: str, rtp: float | None) -> CallTimes:
    return CallTimes(number, invite=10.0, answer=10.001, agent_invite=10.005, agent_answer=10.2,
                     agent_invites=1, caller_rtp=rtp)


def test_the_answer_is_split_at_the_callers_first_rtp():
    r = Round("app_queue", "8500", "411", calls=2, skip=0, events={1: ENDED, 2: ENDED})
    stats = _path_stats([r], {"4111": _call("4111", 10.003), "4112": _call("4112", 10.0035)})
    assert round(stats["answer_to_rtp_p50_ms"], 3) == 2.25      # 2 and 2.5 ms
    assert round(stats["rtp_to_agent_p50_ms"], 3) == 1.75       # 2 and 1.5 ms
    assert round(stats["after_answer_p50_ms"], 3) == 4.0


def test_a_call_without_rtp_in_the_capture_counts_but_leaves_the_split_out():
    r = Round("app_queue", "8500", "411", calls=2, skip=0, events={1: ENDED, 2: ENDED})
    stats = _path_stats([r], {"4111": _call("4111", None), "4112": _call("4112", 10.003)})
    assert (stats["failed"], round(stats["rtp_to_agent_p50_ms"], 3)) == (0, 2.0)


def test_asterisks_part_after_the_answer_is_stasis_plus_originate_over_queue():
    figures = {"live.callpilot.rtp_to_stasis_p50_ms": 0.3,
               "live.callpilot.originate_to_agent_invite_p50_ms": 1.2,
               "live.app_queue.rtp_to_agent_p50_ms": 1.25}
    assert round(_asterisk_after_rtp_ratio(figures), 3) == 1.2
    assert _asterisk_after_rtp_ratio({**figures, "live.callpilot.rtp_to_stasis_p50_ms": None}) is None


def test_the_targets_name_the_floors_for_reference_and_do_not_judge_them():
    """D41: the bare and raw ARI apps' ratios are printed under the targets; the verdict is
    CallPilot's alone."""
    from bench.acd.report import targets
    figures = {"live.ratio.p50": 1.1, "live.ratio.p95": 1.2, "live.callpilot.failed": 0,
               "live.app_queue.failed": 0, "live.ratio.bare_p50": 1.5, "live.ratio.bare_p95": 2.0}
    lines, ok = targets(figures)
    assert ok
    assert lines[-1] == ("  for reference, bare ARI app (serve's ARI client, no ACD) / app_queue: "
                         "p50 1.50x, p95 2.00x")
    assert not any("raw ARI app" in line for line in lines)

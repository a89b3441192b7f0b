"""acd.stats: Erlang B/C, service level, ASA, estimated wait, queue KPIs."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from acd.stats import (
    AbandonRule,
    CallFact,
    StatsError,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    estimated_wait,
    probability_of_wait,
    queue_kpis,
    service_level,
)


def erlang_c_exact(traffic: Fraction, agents: int) -> Fraction:
    """The textbook closed form, in exact rational arithmetic (independent of the recursion):
    C = (A^N / N!) (N / (N - A)) / (sum_{k<N} A^k / k! + (A^N / N!) (N / (N - A)))."""
    top = traffic ** agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    return top / (sum(traffic ** k / math.factorial(k) for k in range(agents)) + top)


# ---------------------------------------------------------------- Erlang B / C


@pytest.mark.parametrize(("traffic", "agents", "expected"), [
    # Standard Erlang B table entries (traffic carried by N lines at a grade of service):
    (4.461, 10, 0.01),   # 10 lines, 1 % blocking: 4.461 erlangs
    (5.084, 10, 0.02),   # 10 lines, 2 % blocking: 5.084 erlangs
    (12.03, 20, 0.01),   # 20 lines, 1 % blocking: 12.03 erlangs
    (10, 10, 0.2146),    # the often-quoted 10 erlangs on 10 lines: 21.46 % blocked
])
def test_erlang_b_table_values(traffic, agents, expected):
    assert erlang_b(traffic, agents) == pytest.approx(expected, abs=1e-4)


def test_erlang_b_edges():
    assert erlang_b(3.0, 0) == 1.0
    assert erlang_b(0.0, 4) == 0.0


@pytest.mark.parametrize(("traffic", "agents"), [
    (Fraction(1, 2), 1), (Fraction(3, 2), 2), (Fraction(10), 11), (Fraction(10), 14), (Fraction(48), 55),
    (Fraction(41, 4), 12), (Fraction(90), 100),
])
def test_erlang_c_equals_the_closed_form(traffic, agents):
    assert erlang_c(float(traffic), agents) == pytest.approx(float(erlang_c_exact(traffic, agents)), rel=1e-12)


@pytest.mark.parametrize("traffic", [0.1, 0.5, 0.9])
def test_erlang_c_single_agent_is_the_utilisation(traffic):
    # M/M/1: P(wait) = rho; ASA = rho * AHT / (1 - rho); SL(t) = 1 - rho e^{-(1 - rho) t / AHT}.
    aht = 100.0
    rate = traffic / aht
    assert probability_of_wait(rate, aht, 1) == pytest.approx(traffic)
    assert average_speed_of_answer(rate, aht, 1) == pytest.approx(traffic * aht / (1 - traffic))
    assert service_level(rate, aht, 1, 30.0) == pytest.approx(1 - traffic * math.exp(-(1 - traffic) * 30 / aht))


@pytest.mark.parametrize("traffic", [0.2, 1.0, 1.9])
def test_erlang_c_two_agents_closed_form(traffic):
    # M/M/2: C = A^2 / (2 + A).
    assert erlang_c(traffic, 2) == pytest.approx(traffic ** 2 / (2 + traffic))


def test_westbay_worked_example():
    # Inputs of the worked example on Westbay Engineers' "The Erlang-C Formula" page
    # (erlang.com): 360 calls per half hour, average call duration 4 minutes, 55 agents,
    # 15 s target. Traffic 48 erlangs, occupancy 0.873. The expected outputs were computed
    # independently (exact rational closed form above) and rounded:
    # P(wait) 0.2387, ASA 8.18 s, service level 84.59 %.
    rate, aht = 360 / 1800, 240.0
    assert rate * aht == pytest.approx(48.0)
    assert erlang_c_exact(Fraction(48), 55) == pytest.approx(0.2387, abs=5e-5)
    assert probability_of_wait(rate, aht, 55) == pytest.approx(0.2387, abs=5e-5)
    assert average_speed_of_answer(rate, aht, 55) == pytest.approx(8.18, abs=5e-3)
    assert service_level(rate, aht, 55, 15) == pytest.approx(0.8459, abs=5e-5)


@pytest.mark.parametrize(("agents", "p_wait", "sl_20s", "asa"), [
    # Inputs of Call Centre Helper's "Erlang C Formula - Made Simple" example: 100 calls in
    # 30 minutes, AHT 180 s, 80 % in 20 s goal -> 14 agents before shrinkage (13 give
    # just under 80 %). Values computed with the closed form, rounded.
    (11, 0.6821, 0.3896, 122.78),
    (12, 0.4494, 0.6402, 40.44),
    (13, 0.2853, 0.7956, 17.12),
    (14, 0.1741, 0.8884, 7.84),
])
def test_call_centre_helper_example(agents, p_wait, sl_20s, asa):
    rate, aht = 100 / 1800, 180.0
    assert probability_of_wait(rate, aht, agents) == pytest.approx(p_wait, abs=5e-5)
    assert service_level(rate, aht, agents, 20) == pytest.approx(sl_20s, abs=5e-5)
    assert average_speed_of_answer(rate, aht, agents) == pytest.approx(asa, abs=5e-3)
    assert (service_level(rate, aht, agents, 20) >= 0.8) is (agents >= 14)


@pytest.mark.parametrize("agents", [0, 5, 10])
def test_overloaded_queue(agents):
    rate, aht = 0.1, 100.0   # 10 erlangs
    assert probability_of_wait(rate, aht, agents) == 1.0
    assert service_level(rate, aht, agents, 20) == 0.0
    assert average_speed_of_answer(rate, aht, agents) == math.inf


def test_no_traffic():
    assert erlang_c(0.0, 3) == 0.0
    assert service_level(0.0, 180.0, 3, 20) == 1.0
    assert average_speed_of_answer(0.0, 180.0, 3) == 0.0
    assert service_level(1.0, 0.0, 3, 20) == 1.0


def test_zero_target_service_level_is_one_minus_wait_probability():
    rate, aht = 100 / 1800, 180.0
    assert service_level(rate, aht, 13, 0) == pytest.approx(1 - probability_of_wait(rate, aht, 13))


def test_more_agents_never_hurt():
    waits = [erlang_c(30.0, n) for n in range(31, 60)]
    assert waits == sorted(waits, reverse=True)
    levels = [service_level(0.3, 100.0, n, 20) for n in range(31, 60)]
    assert levels == sorted(levels)


def test_large_centre_is_numerically_stable():
    value = erlang_c(900.0, 950)
    assert 0.0 < value < 1.0 and math.isfinite(value)
    assert value == pytest.approx(float(erlang_c_exact(Fraction(900), 950)), rel=1e-9)


@pytest.mark.parametrize("call", [
    lambda: erlang_c(-1.0, 3), lambda: erlang_c(math.nan, 3), lambda: erlang_c(math.inf, 3),
    lambda: erlang_c(1.0, -1), lambda: erlang_c(1.0, 2.0), lambda: erlang_c(1.0, True),
    lambda: erlang_b(True, 2), lambda: probability_of_wait(-0.1, 10, 2), lambda: probability_of_wait(0.1, -10, 2),
    lambda: service_level(0.1, 10, 2, -1), lambda: average_speed_of_answer("1", 10, 2),
])
def test_erlang_input_validation(call):
    with pytest.raises(StatsError):
        call()


# ---------------------------------------------------------------- estimated wait


def test_estimated_wait_scales_with_position_and_agents():
    assert estimated_wait(1, [100.0, 200.0], 5) == pytest.approx(30.0)
    assert estimated_wait(3, [100.0, 200.0], 5) == pytest.approx(90.0)
    assert estimated_wait(3, [150.0], 10) == pytest.approx(45.0)


def test_estimated_wait_default_and_unknown():
    assert estimated_wait(2, [], 4, default_aht=120.0) == pytest.approx(60.0)
    assert estimated_wait(2, [], 4) is None
    assert estimated_wait(2, [100.0], 0) is None
    assert estimated_wait(2, [100.0], 4, default_aht=999.0) == pytest.approx(50.0)


@pytest.mark.parametrize("args", [(0, [1.0], 1), (1.5, [1.0], 1), (True, [1.0], 1), (1, [-1.0], 1), (1, [1.0], -1)])
def test_estimated_wait_validation(args):
    with pytest.raises(StatsError):
        estimated_wait(*args)


def test_estimated_wait_bad_default():
    with pytest.raises(StatsError):
        estimated_wait(1, [], 2, default_aht=-5.0)


# ---------------------------------------------------------------- call facts and KPIs


def answered(wait, handle=None, at=0.0):
    return CallFact(at, answered_at=at + wait, handle_time=handle)


def abandoned(wait, at=0.0):
    return CallFact(at, abandoned_at=at + wait)


def test_call_fact_wait_and_validation():
    assert answered(12.0).wait == 12.0
    assert abandoned(3.0).wait == 3.0
    assert CallFact(5.0).wait is None
    with pytest.raises(StatsError, match="both answered and abandoned"):
        CallFact(0.0, answered_at=1.0, abandoned_at=2.0)
    with pytest.raises(StatsError, match="answered_at is before"):
        CallFact(10.0, answered_at=5.0)
    with pytest.raises(StatsError, match="abandoned_at is before"):
        CallFact(10.0, abandoned_at=5.0)
    with pytest.raises(StatsError, match="handle_time needs answered_at"):
        CallFact(0.0, handle_time=30.0)
    with pytest.raises(StatsError, match="handle_time"):
        CallFact(0.0, answered_at=1.0, handle_time=-1.0)


FACTS = [
    answered(5.0, 100.0), answered(20.0, 200.0), answered(21.0, None), answered(60.0, 300.0),
    abandoned(2.0), abandoned(10.0), abandoned(45.0),
    CallFact(500.0),   # still waiting
]


def test_kpis_default_rule_counts_abandons_against():
    kpis = queue_kpis(FACTS, 20.0)
    assert (kpis.offered, kpis.answered, kpis.abandoned, kpis.short_abandoned, kpis.waiting) == (7, 4, 3, 0, 1)
    assert (kpis.answered_in_target, kpis.abandoned_in_target) == (2, 2)   # 20.0 s is within 20 s
    assert kpis.service_level == pytest.approx(2 / 7)
    assert kpis.abandon_rate == pytest.approx(3 / 7)
    assert kpis.asa == pytest.approx((5 + 20 + 21 + 60) / 4)
    assert kpis.aht == pytest.approx(200.0)   # the answered call without handle time is left out
    assert kpis.longest_wait == 60.0


def test_kpis_exclude_rule_removes_abandons_within_target():
    kpis = queue_kpis(FACTS, 20.0, abandon_rule=AbandonRule.EXCLUDE)
    assert kpis.service_level == pytest.approx(2 / 5)


def test_kpis_count_as_met_rule():
    kpis = queue_kpis(FACTS, 20.0, abandon_rule=AbandonRule.COUNT_AS_MET)
    assert kpis.service_level == pytest.approx(4 / 7)


def test_kpis_short_abandons_are_left_out_of_offered():
    kpis = queue_kpis(FACTS, 20.0, short_abandon=5.0)
    assert (kpis.offered, kpis.abandoned, kpis.short_abandoned) == (6, 2, 1)
    assert kpis.abandoned_in_target == 1
    assert kpis.service_level == pytest.approx(2 / 6)
    assert kpis.abandon_rate == pytest.approx(2 / 6)
    assert queue_kpis([abandoned(5.0)], 20.0, short_abandon=5.0).abandoned == 1   # strictly under


def test_kpis_longest_wait_includes_waiting_calls_when_now_is_given():
    assert queue_kpis(FACTS, 20.0, now=600.0).longest_wait == 100.0
    assert queue_kpis(FACTS, 20.0, now=520.0).longest_wait == 60.0
    assert queue_kpis([CallFact(10.0)], 20.0, now=5.0).longest_wait == 0.0
    assert queue_kpis([CallFact(10.0)], 20.0).longest_wait is None


def test_kpis_empty_and_only_waiting():
    for facts in ([], [CallFact(1.0)]):
        kpis = queue_kpis(facts, 20.0)
        assert kpis.offered == 0
        assert kpis.service_level is None and kpis.abandon_rate is None
        assert kpis.asa is None and kpis.aht is None


def test_kpis_exclude_rule_with_only_quick_abandons():
    assert queue_kpis([abandoned(3.0)], 20.0, abandon_rule=AbandonRule.EXCLUDE).service_level is None


def test_kpis_accept_a_generator_and_validate_arguments():
    assert queue_kpis((f for f in FACTS), 20.0).offered == 7
    with pytest.raises(StatsError):
        queue_kpis(FACTS, -1.0)
    with pytest.raises(StatsError):
        queue_kpis(FACTS, 20.0, short_abandon=-1.0)

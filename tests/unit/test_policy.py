"""acd.policy: conditions, the step clock with skipping, eligibility, orderings, assign, timers."""
from __future__ import annotations

import math
import random

import pytest

from acd.model import (
    AdjacentBand,
    AgeBands,
    AgentState,
    AgentView,
    AttributeEquals,
    CallView,
    LanguageMatch,
    ModelError,
    SkillAtLeast,
    Step,
    default_steps,
)
from acd.policy import (
    activation_times,
    active_step,
    agent_order_key,
    assign,
    best_agent,
    best_call,
    call_order_key,
    can_serve,
    condition_holds,
    eligible_agents,
    eligible_calls,
    is_eligible,
    matched_step,
    meets_required,
    next_wakeup,
    step_holds,
)
from acd.policy.timeline import Phase, build_phases, phase_at, phase_change_after

S = AgentState
T0 = 1000.0
BANDS = AgeBands()


def agent(id="a1", *, queues=("sales",), skills=None, band="25-34", languages=("en",), state=S.AVAILABLE,
          idle=0.0, attributes=None):
    return AgentView(id, frozenset(queues), {"sales": 3} if skills is None else skills, band, frozenset(languages),
                     state, idle, state is not S.LOGGED_OUT, attributes or {})


def call(id="c1", *, queue="sales", priority=0, at=T0, band="25-34", language="en", steps=None,
         required=None, skill=None, attributes=None):
    attrs = {"age_band": band, "language": language} if attributes is None else attributes
    return CallView(id, queue, priority, at, attrs, default_steps("sales") if steps is None else steps,
                    required or {}, skill)


# ---------------------------------------------------------------- conditions


@pytest.mark.parametrize(("level", "ok"), [(2, True), (3, True), (4, False)])
def test_skill_at_least_boundary(level, ok):
    assert condition_holds(SkillAtLeast("sales", level), {}, agent(skills={"sales": 3}), BANDS) is ok


def test_missing_skill_counts_as_zero():
    assert not condition_holds(SkillAtLeast("billing", 1), {}, agent(skills={"sales": 5}), BANDS)


@pytest.mark.parametrize(("caller", "agent_band", "ok"), [
    ("25-34", "25-34", True), ("25-34", "35-44", False), (None, "25-34", False), ("25-34", None, False),
    (None, None, False),
])
def test_attribute_equals_on_age_band(caller, agent_band, ok):
    cond = AttributeEquals("age_band")
    assert condition_holds(cond, {"age_band": caller}, agent(band=agent_band), BANDS) is ok


def test_attribute_equals_missing_key_and_agent_attributes():
    cond = AttributeEquals("region", "home_region")
    north = agent(attributes={"home_region": "north"})
    assert condition_holds(cond, {"region": "north"}, north, BANDS)
    assert not condition_holds(cond, {"region": "south"}, north, BANDS)
    assert not condition_holds(cond, {}, north, BANDS)
    assert not condition_holds(cond, {"region": "north"}, agent(), BANDS)


@pytest.mark.parametrize(("caller", "agent_band", "ok"), [
    ("25-34", "25-34", True), ("25-34", "<25", True), ("25-34", "35-44", True), ("25-34", "45-54", False),
    ("55+", "45-54", True), ("55+", "<25", False), (None, "25-34", False), ("25-34", None, False),
    ("unknown", "25-34", False),
])
def test_adjacent_band(caller, agent_band, ok):
    assert condition_holds(AdjacentBand(), {"age_band": caller}, agent(band=agent_band), BANDS) is ok


def test_adjacent_band_uses_the_configured_bands():
    bands = AgeBands((30, 60))   # <30, 30-59, 60+
    assert condition_holds(AdjacentBand(), {"age_band": "<30"}, agent(band="30-59"), bands)
    assert not condition_holds(AdjacentBand(), {"age_band": "<30"}, agent(band="60+"), bands)
    assert not condition_holds(AdjacentBand(), {"age_band": "<25"}, agent(band="25-34"), bands)


@pytest.mark.parametrize(("caller", "ok"), [("en", True), ("ko", True), ("es", False), (None, False)])
def test_language_match(caller, ok):
    assert condition_holds(LanguageMatch(), {"language": caller}, agent(languages=("en", "ko")), BANDS) is ok


def test_language_match_custom_attribute():
    assert condition_holds(LanguageMatch("lang"), {"lang": "ko"}, agent(languages=("ko",)), BANDS)


def test_condition_holds_rejects_other_objects():
    with pytest.raises(TypeError):
        condition_holds("skill>3", {}, agent(), BANDS)


def test_step_holds_is_a_conjunction_and_empty_step_always_holds():
    step = Step((AttributeEquals("age_band"), SkillAtLeast("sales", 3)), 20)
    attrs = {"age_band": "25-34"}
    assert step_holds(step, attrs, agent(), BANDS)
    assert not step_holds(step, attrs, agent(skills={"sales": 2}), BANDS)
    assert not step_holds(step, attrs, agent(band="35-44"), BANDS)
    assert step_holds(Step((), 5), {}, agent(skills={}), BANDS)


def test_meets_required_and_can_serve():
    assert meets_required({}, agent(skills={}))
    assert meets_required({"sales": 3}, agent(skills={"sales": 3}))
    assert not meets_required({"sales": 3, "ko": 1}, agent(skills={"sales": 5}))
    c = call(required={"sales": 2})
    assert can_serve(c, agent(state=S.PAUSED))
    assert not can_serve(c, agent(state=S.LOGGED_OUT))
    assert not can_serve(c, agent(queues=("billing",)))
    assert not can_serve(c, agent(skills={"sales": 1}))


# ---------------------------------------------------------------- step clock


@pytest.mark.parametrize(("offset", "step"), [
    (-5.0, 0), (0.0, 0), (19.999, 0), (20.0, 1), (39.999, 1), (40.0, 2), (69.999, 2), (70.0, 3), (1e6, 3),
])
def test_default_relaxation_boundaries_when_every_step_is_possible(offset, step):
    agents = [agent("same", band="25-34", skills={"sales": 3}, state=S.ON_CALL)]
    assert active_step(call(), agents, T0 + offset) == step


def test_activation_times_default_steps():
    agents = [agent(band="25-34")]
    assert activation_times(call(), agents) == (T0, T0 + 20, T0 + 40, T0 + 70)


def test_impossible_first_step_is_skipped_at_once():
    # Only a 35-44 agent is logged in: "same band" is impossible, "adjacent band" is not.
    agents = [agent("adj", band="35-44", skills={"sales": 4})]
    c = call(band="25-34")
    assert active_step(c, agents, T0) == 1
    assert active_step(c, agents, T0 + 19.999) == 1
    assert active_step(c, agents, T0 + 20) == 2
    assert active_step(c, agents, T0 + 50) == 3
    assert activation_times(c, agents) == (None, T0, T0 + 20, T0 + 50)


def test_impossible_middle_step_takes_no_time():
    agents = [agent("x", band="25-34", skills={"sales": 3}), agent("y", band="55+", skills={"sales": 1})]
    steps = (Step((SkillAtLeast("sales", 3),), 10), Step((SkillAtLeast("sales", 5),), 10),
             Step((SkillAtLeast("sales", 1),), 10))
    c = call(steps=steps)
    assert activation_times(c, agents) == (T0, None, T0 + 10, T0 + 20)
    assert active_step(c, agents, T0 + 10) == 2


@pytest.mark.parametrize("state", [S.AVAILABLE, S.RINGING, S.ON_CALL, S.WRAP_UP, S.PAUSED])
def test_step_possibility_ignores_availability(state):
    agents = [agent("busy", band="25-34", state=state), agent("free", band="55+", skills={"sales": 1})]
    assert active_step(call(), agents, T0) == 0


def test_logged_out_agents_do_not_make_a_step_possible():
    agents = [agent("gone", band="25-34", state=S.LOGGED_OUT), agent("free", band="55+", skills={"sales": 1})]
    assert activation_times(call(), agents) == (None, None, T0, T0 + 30)


def test_agents_of_other_queues_do_not_make_a_step_possible():
    agents = [agent("other", queues=("billing",), band="25-34"), agent("mine", band="55+", skills={"sales": 1})]
    assert active_step(call(), agents, T0) == 2


def test_required_skills_count_for_possibility():
    steps = (Step((AttributeEquals("age_band"),), 20),)
    agents = [agent("same", band="25-34", skills={"sales": 5}), agent("ko", band="55+", skills={"sales": 1, "ko": 3})]
    c = call(steps=steps, required={"ko": 2})
    assert active_step(c, agents, T0) == 1   # the only same-band agent lacks Korean


def test_everything_impossible_goes_straight_to_any_agent():
    assert activation_times(call(), [agent(band="55+", skills={})]) == (None, None, None, T0)
    assert active_step(call(), [], T0) == 3


def test_caller_without_band_skips_band_steps():
    agents = [agent(band="25-34", skills={"sales": 5})]
    assert activation_times(call(band=None), agents) == (None, None, T0, T0 + 30)


def test_no_steps_means_any_agent_from_the_start():
    assert activation_times(call(steps=()), [agent()]) == (T0,)
    assert active_step(call(steps=()), [agent()], T0 - 1) == 0


def test_never_expiring_step_hides_later_ones():
    steps = (Step((SkillAtLeast("sales", 3),), math.inf), Step((), 5))
    c = call(steps=steps)
    agents = [agent()]
    assert activation_times(c, agents) == (T0, None, None)
    assert active_step(c, agents, T0 + 1e9) == 0
    assert next_wakeup([c], agents, T0 + 1e9) is None


def test_never_expiring_step_that_is_impossible_is_skipped():
    steps = (Step((SkillAtLeast("sales", 5),), math.inf), Step((), 5))
    assert activation_times(call(steps=steps), [agent()]) == (None, T0, T0 + 5)


def test_build_phases_and_phase_helpers():
    steps = (Step((), 10), Step((), 5), Step((), 7))
    phases = build_phases(steps, (True, False, True))
    assert phases == (Phase(0, 0.0, 10.0), Phase(2, 10.0, 17.0), Phase(3, 17.0, math.inf))
    assert phase_at(phases, 100.0, 110.0).step == 2
    assert phase_change_after(phases, 100.0, 99.0) == 110.0
    assert phase_change_after(phases, 100.0, 117.0) is None


def test_fractional_boundaries_are_consistent():
    steps = (Step((), 0.1), Step((), 0.2), Step((), 0.3))
    c = call(steps=steps, at=0.7)
    agents = [agent()]
    now = 0.7
    seen = []
    while (wake := next_wakeup([c], agents, now)) is not None:
        assert active_step(c, agents, wake) == active_step(c, agents, now) + 1
        now = wake
        seen.append(active_step(c, agents, now))
    assert seen == [1, 2, 3]


# ---------------------------------------------------------------- eligibility


def test_matched_step_is_the_earliest_allowed_step():
    c = call()
    same, adjacent, weak, outsider = (agent(band="25-34"), agent(band="35-44"), agent(band="55+", skills={"sales": 1}),
                                      agent(band="55+", skills={}))
    assert matched_step(c, same, 0) == 0
    assert matched_step(c, same, 3) == 0
    assert matched_step(c, adjacent, 0) is None
    assert matched_step(c, adjacent, 1) == 1
    assert matched_step(c, weak, 1) is None
    assert matched_step(c, weak, 2) == 2
    assert matched_step(c, outsider, 2) is None
    assert matched_step(c, outsider, 3) == 3


def test_relaxation_makes_an_adjacent_agent_eligible_exactly_at_expiry():
    agents = [agent("same", band="25-34", state=S.ON_CALL), agent("adj", band="35-44")]
    c = call()
    assert not is_eligible(c, agents[1], agents, T0 + 19.999)
    assert is_eligible(c, agents[1], agents, T0 + 20)
    assert best_agent(c, agents, T0 + 19.999) is None
    assert best_agent(c, agents, T0 + 20).id == "adj"


@pytest.mark.parametrize("state", [S.LOGGED_OUT, S.RINGING, S.ON_CALL, S.WRAP_UP, S.PAUSED])
def test_only_available_agents_are_eligible(state):
    a = agent(state=state)
    assert not is_eligible(call(), a, [a], T0 + 1000)


def test_queue_membership_is_required_even_in_the_final_phase():
    a = agent(queues=("billing",))
    assert not is_eligible(call(), a, [a], T0 + 1000)


def test_required_skills_apply_in_the_final_phase():
    a = agent(skills={"sales": 5})
    c = call(required={"ko": 1})
    assert active_step(c, [a], T0) == 3
    assert not is_eligible(c, a, [a], T0 + 1000)
    assert is_eligible(call(required={"sales": 5}), a, [a], T0 + 1000)


def test_final_phase_takes_any_agent_of_the_queue():
    a = agent(band=None, skills={}, languages=())
    assert is_eligible(call(), a, [a], T0 + 70)
    assert not is_eligible(call(), a, [a, agent("b", band="25-34", state=S.ON_CALL)], T0 + 69.9)


# ---------------------------------------------------------------- agent order for a call


def test_earlier_matched_step_beats_longer_idle():
    agents = [agent("adj", band="35-44", idle=0.0), agent("same", band="25-34", idle=500.0)]
    assert [a.id for a in eligible_agents(call(), agents, T0 + 25)] == ["same", "adj"]


def test_longest_idle_beats_proficiency():
    agents = [agent("expert", skills={"sales": 5}, idle=20.0), agent("ok", skills={"sales": 3}, idle=10.0)]
    assert best_agent(call(), agents, T0).id == "ok"


def test_proficiency_in_the_queue_skill_breaks_idle_ties():
    agents = [agent("b3", skills={"sales": 3, "billing": 5}, idle=10.0), agent("a4", skills={"sales": 4}, idle=10.0)]
    assert best_agent(call(), agents, T0).id == "a4"
    c = call(skill="billing", steps=())
    assert best_agent(c, agents, T0).id == "b3"


def test_id_breaks_full_ties():
    agents = [agent("b"), agent("a"), agent("c")]
    assert [a.id for a in eligible_agents(call(), agents, T0)] == ["a", "b", "c"]


def test_agent_order_key_shape():
    assert agent_order_key(call(), agent("x", skills={"sales": 4}, idle=7.5), 1) == (1, 7.5, -4, "x")


# ---------------------------------------------------------------- call order for a freed agent


def test_priority_beats_age():
    calls = [call("old", at=T0 - 500), call("vip", priority=5, at=T0)]
    a = agent()
    assert best_call(a, calls, [a], T0 + 1).id == "vip"


def test_age_beats_id_and_id_breaks_ties():
    calls = [call("b", at=T0), call("a", at=T0), call("z", at=T0 - 1)]
    a = agent()
    assert [c.id for c in eligible_calls(a, calls, [a], T0 + 1)] == ["z", "a", "b"]


def test_freed_agent_skips_calls_it_is_not_eligible_for():
    a = agent("adj", band="35-44")
    busy = agent("same", band="25-34", state=S.ON_CALL)
    calls = [call("vip-young", priority=9, band="25-34", at=T0), call("plain", priority=0, band="35-44", at=T0)]
    assert best_call(a, calls, [a, busy], T0 + 1).id == "plain"
    assert best_call(a, calls, [a, busy], T0 + 20).id == "vip-young"


def test_freed_agent_outside_the_queue_gets_nothing():
    a = agent(queues=("billing",))
    assert best_call(a, [call()], [a], T0 + 100) is None


def test_call_order_key_shape():
    assert call_order_key(call("c9", priority=2, at=5.0)) == (-2, 5.0, "c9")


# ---------------------------------------------------------------- assign


def test_assign_empty_inputs():
    assert assign([], [], T0) == []
    assert assign([call()], [], T0) == []
    assert assign([], [agent()], T0) == []


def test_assign_serves_calls_in_priority_then_age_order():
    calls = [call("late", at=T0 + 5), call("early", at=T0), call("vip", priority=1, at=T0 + 9)]
    agents = [agent("a1", idle=1.0), agent("a2", idle=2.0)]
    assert assign(calls, agents, T0 + 10) == [("vip", "a1"), ("early", "a2")]


def test_assign_gives_each_call_its_best_remaining_agent():
    calls = [call("young", band="25-34", at=T0), call("older", band="45-54", at=T0 + 1)]
    agents = [agent("a-young", band="25-34", idle=50.0), agent("a-older", band="45-54", idle=1.0)]
    assert assign(calls, agents, T0 + 2) == [("young", "a-young"), ("older", "a-older")]


def test_assign_skips_a_call_without_eligible_agent():
    calls = [call("strict", priority=5, required={"ko": 3}), call("plain")]
    assert assign(calls, [agent()], T0 + 100) == [("plain", "a1")]


def test_assign_waits_for_relaxation_then_matches():
    agents = [agent("same", band="25-34", state=S.ON_CALL), agent("adj", band="35-44")]
    calls = [call()]
    assert assign(calls, agents, T0 + 19.9) == []
    wake = next_wakeup(calls, agents, T0 + 19.9)
    assert wake == T0 + 20
    assert assign(calls, agents, wake) == [("c1", "adj")]


def test_assign_with_agents_in_several_queues():
    agents = [agent("both", queues=("sales", "billing"), skills={"sales": 3, "billing": 3}, idle=1.0),
              agent("billing-only", queues=("billing",), skills={"billing": 3}, idle=2.0)]
    calls = [call("s", queue="sales", steps=()), call("b", queue="billing", steps=(), at=T0 + 1)]
    assert assign(calls, agents, T0 + 5) == [("s", "both"), ("b", "billing-only")]


def test_assign_more_calls_than_agents_and_more_agents_than_calls():
    agents = [agent(f"a{i}", idle=float(i)) for i in range(3)]
    calls = [call(f"c{i}", at=T0 + i) for i in range(5)]
    assert assign(calls, agents, T0 + 10) == [("c0", "a0"), ("c1", "a1"), ("c2", "a2")]
    assert assign(calls[:2], agents, T0 + 10) == [("c0", "a0"), ("c1", "a1")]


def test_assign_does_not_depend_on_input_order():
    rnd = random.Random(7)
    bands = BANDS.labels
    agents = [agent(f"a{i}", band=rnd.choice(bands), skills={"sales": rnd.randint(1, 5)}, idle=float(rnd.randint(0, 3)))
              for i in range(30)]
    calls = [call(f"c{i}", band=rnd.choice(bands), priority=rnd.randint(0, 2), at=T0 + rnd.randint(0, 5))
             for i in range(40)]
    expected = assign(calls, agents, T0 + 30)
    for _ in range(5):
        rnd.shuffle(agents)
        rnd.shuffle(calls)
        assert assign(calls, agents, T0 + 30) == expected


def test_assign_rejects_duplicate_ids():
    with pytest.raises(ModelError, match="duplicate call id 'c1'"):
        assign([call(), call()], [agent()], T0)
    with pytest.raises(ModelError, match="duplicate agent id 'a1'"):
        assign([call()], [agent(), agent()], T0)


def test_assign_uses_the_configured_bands():
    bands = AgeBands((30, 60))   # <30, 30-59, 60+
    agents = [agent("far", band="60+", idle=0.0), agent("near", band="30-59", idle=5.0)]
    c = call(band="<30", steps=(Step((AdjacentBand(),), 20),))
    assert assign([c], agents, T0, bands=bands) == [("c1", "near")]
    # Under the default bands these labels are unknown: the step is impossible and skipped,
    # so the call is at once in its final phase, where the longest idle agent wins.
    assert active_step(c, agents, T0) == 1
    assert assign([c], agents, T0) == [("c1", "far")]


# ---------------------------------------------------------------- next_wakeup


def test_next_wakeup_is_the_earliest_step_change():
    agents = [agent(band="25-34", state=S.ON_CALL)]
    calls = [call("c1", at=T0), call("c2", at=T0 + 3)]
    assert next_wakeup(calls, agents, T0 + 1) == T0 + 20
    assert next_wakeup(calls, agents, T0 + 20) == T0 + 23
    assert next_wakeup(calls, agents, T0 + 69) == T0 + 70
    assert next_wakeup(calls, agents, T0 + 70) == T0 + 73
    assert next_wakeup(calls, agents, T0 + 73) is None


def test_next_wakeup_follows_skipped_steps():
    agents = [agent(band="55+", skills={"sales": 1})]
    assert next_wakeup([call()], agents, T0) == T0 + 30


def test_next_wakeup_before_queue_entry_and_with_nothing_waiting():
    assert next_wakeup([call()], [agent()], T0 - 50) == T0 + 20
    assert next_wakeup([], [agent()], T0) is None
    assert next_wakeup([call(steps=())], [agent()], T0) is None


def test_assign_calls_sharing_a_situation_at_different_steps():
    # Same queue, band and steps; the older call has relaxed to step 1, the younger has not.
    agents = [agent("same", band="25-34", idle=5.0), agent("adj", band="35-44", idle=0.0)]
    calls = [call("older", at=T0), call("younger", at=T0 + 15)]
    assert assign(calls, agents, T0 + 25) == [("older", "same")]
    assert assign(calls, agents, T0 + 40) == [("older", "same"), ("younger", "adj")]

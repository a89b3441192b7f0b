"""Property-based tests of acd.policy (hypothesis), checked against a naive reference."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.model import (
    DEFAULT_AGE_BANDS,
    AdjacentBand,
    AgentState,
    AgentView,
    AttributeEquals,
    CallView,
    LanguageMatch,
    SkillAtLeast,
    Step,
    default_steps,
)
from acd.policy import (
    activation_times,
    active_step,
    agent_order_key,
    assign,
    best_call,
    call_order_key,
    is_eligible,
    matched_step,
    next_wakeup,
)

QUEUES = ("q1", "q2")
SKILLS = ("q1", "q2", "ko")
BANDS = (*DEFAULT_AGE_BANDS.labels, None)
LANGUAGES = ("en", "ko")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

levels = st.integers(1, 5)
skill_maps = st.dictionaries(st.sampled_from(SKILLS), levels, max_size=3)
conditions = st.one_of(
    st.builds(SkillAtLeast, st.sampled_from(SKILLS), levels),
    st.just(AttributeEquals("age_band")),
    st.just(AdjacentBand()),
    st.just(LanguageMatch()),
)
steps = st.builds(Step, st.lists(conditions, max_size=2).map(tuple), st.sampled_from([5.0, 10.0, 12.5, math.inf]))
step_lists = st.one_of(st.sampled_from([default_steps("q1"), default_steps("q2"), ()]),
                       st.lists(steps, max_size=3).map(tuple))
times = st.integers(0, 120).map(float)
moments = st.integers(0, 200).map(float)
# Mostly available agents, so that matchings are not trivially empty.
states = st.sampled_from([AgentState.AVAILABLE] * 4 + list(AgentState))


def _agent(index, row):
    queues, skills, band, languages, state, idle = row
    return AgentView(f"a{index}", queues, skills, band, languages, state, idle, state is not AgentState.LOGGED_OUT)


def _call(index, row):
    queue, priority, enqueued_at, band, language, call_steps, required = row
    return CallView(f"c{index}", queue, priority, enqueued_at, {"age_band": band, "language": language},
                    call_steps, required)


agent_rows = st.tuples(
    st.frozensets(st.sampled_from(QUEUES), min_size=1, max_size=2), skill_maps, st.sampled_from(BANDS),
    st.frozensets(st.sampled_from(LANGUAGES), max_size=2), states, st.integers(0, 5).map(float))
call_rows = st.tuples(
    st.sampled_from(QUEUES), st.integers(0, 2), times, st.sampled_from(BANDS), st.sampled_from((*LANGUAGES, None)),
    step_lists, st.one_of(st.just({}), st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 2), max_size=1)))


def agents_st(max_size=8):
    return st.lists(agent_rows, max_size=max_size).map(lambda rows: [_agent(i, r) for i, r in enumerate(rows)])


def calls_st(max_size=8):
    return st.lists(call_rows, max_size=max_size).map(lambda rows: [_call(i, r) for i, r in enumerate(rows)])


def reference_assign(calls, agents, now):
    """The rule written plainly: calls best first, each takes its best eligible free agent."""
    taken, pairs = set(), []
    for call in sorted(calls, key=call_order_key):
        active = active_step(call, agents, now)
        keyed = [(agent_order_key(call, a, matched_step(call, a, active)), a) for a in agents
                 if a.id not in taken and is_eligible(call, a, agents, now)]
        if keyed:
            chosen = min(keyed, key=lambda pair: pair[0])[1]
            taken.add(chosen.id)
            pairs.append((call.id, chosen.id))
    return pairs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls_st(), agents_st(), moments)
def test_assign_invariants(calls, agents, now):
    pairs = assign(calls, agents, now)
    # The optimised batch equals the rule written plainly.
    assert pairs == reference_assign(calls, agents, now)
    # Never an agent twice, never a call twice.
    call_ids = [c for c, _ in pairs]
    agent_ids = [a for _, a in pairs]
    assert len(set(call_ids)) == len(call_ids)
    assert len(set(agent_ids)) == len(agent_ids)
    # Every pair is eligible.
    by_call = {c.id: c for c in calls}
    by_agent = {a.id: a for a in agents}
    for call_id, agent_id in pairs:
        assert is_eligible(by_call[call_id], by_agent[agent_id], agents, now)
    # Maximal: no eligible agent stays free while an eligible call waits unassigned.
    for call in calls:
        if call.id not in call_ids:
            for agent in agents:
                assert agent.id in agent_ids or not is_eligible(call, agent, agents, now)


# One queue, default steps, few distinct values: many calls share a routing situation
# while sitting at different steps, which is where the batch's caches could go wrong.
crowded_agent_rows = st.tuples(
    st.just(frozenset({"q1"})), st.dictionaries(st.just("q1"), levels, max_size=1),
    st.sampled_from(BANDS[:3]), st.just(frozenset({"en"})), states, st.integers(0, 3).map(float))
crowded_call_rows = st.tuples(
    st.just("q1"), st.integers(0, 1), st.sampled_from([0.0, 15.0, 30.0, 45.0, 60.0]), st.sampled_from(BANDS[:3]),
    st.just("en"), st.just(default_steps("q1")), st.just({}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(crowded_call_rows, max_size=10).map(lambda rows: [_call(i, r) for i, r in enumerate(rows)]),
       st.lists(crowded_agent_rows, max_size=8).map(lambda rows: [_agent(i, r) for i, r in enumerate(rows)]),
       st.sampled_from([0.0, 20.0, 45.0, 70.0, 100.0]))
def test_assign_matches_the_reference_in_a_crowded_queue(calls, agents, now):
    assert assign(calls, agents, now) == reference_assign(calls, agents, now)


@FAST
@given(calls_st(), agents_st(), moments, st.randoms(use_true_random=False))
def test_assign_is_independent_of_input_order(calls, agents, now, rnd):
    expected = assign(calls, agents, now)
    rnd.shuffle(calls)
    rnd.shuffle(agents)
    assert assign(calls, agents, now) == expected


@FAST
@given(calls_st(), agents_st(), moments)
def test_single_freed_agent_gets_highest_priority_then_oldest(calls, agents, now):
    free = [a for a in agents if a.state is AgentState.AVAILABLE]
    if not free:
        return
    freed = free[0]
    others = [a for a in agents if a.state is not AgentState.AVAILABLE]
    roster = [freed, *others]
    pairs = assign(calls, roster, now)
    eligible = [c for c in calls if is_eligible(c, freed, roster, now)]
    if not eligible:
        assert pairs == []
        return
    best = min(eligible, key=lambda c: (-c.priority, c.enqueued_at, c.id))
    assert pairs == [(best.id, freed.id)]
    assert best_call(freed, calls, roster, now) == best


@FAST
@given(calls_st(max_size=3), agents_st(), st.lists(moments, min_size=2, max_size=6))
def test_active_step_and_activation_are_monotone_in_now(calls, agents, instants):
    instants = sorted(instants)
    for call in calls:
        actives = [active_step(call, agents, now) for now in instants]
        assert actives == sorted(actives)
        starts = activation_times(call, agents)
        known = [t for t in starts if t is not None]
        assert known == sorted(known)
        assert known[0] == call.enqueued_at
        first = next(k for k, start in enumerate(starts) if start is not None)
        for now, active in zip(instants, actives):
            reached = [k for k, start in enumerate(starts) if start is not None and start <= now]
            assert active == max(reached, default=first)


@FAST
@given(calls_st(), agents_st(), moments)
def test_next_wakeup_is_the_next_change(calls, agents, now):
    wake = next_wakeup(calls, agents, now)
    before = [active_step(c, agents, now) for c in calls]
    if wake is None:
        assert [active_step(c, agents, now + 1e6) for c in calls] == before
        return
    assert wake > now
    assert [active_step(c, agents, math.nextafter(wake, -math.inf)) for c in calls] == before
    assert [active_step(c, agents, (now + wake) / 2) for c in calls] == before
    assert [active_step(c, agents, wake) for c in calls] != before

"""The incremental router gives, after every event, exactly the offers of a full recomputation.

Random event sequences (calls entering and leaving, agents changing state, logging in and
out, time passing over step expiries) are applied to :class:`IncrementalRouter` and to a plain
model; after each event the router's offers must equal ``assign`` on the model's whole state.
A second test counts the calls a freed agent examines at 10,000 waiting calls.
"""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.model import (AgentState, AgentView, AttributeEquals, CallView, ModelError, SkillAtLeast, Step,
                       default_steps)
from acd.policy import assign, next_wakeup
from acd.policy.incremental import IncrementalRouter
from tests.unit.test_policy_properties import BANDS, LANGUAGES, QUEUES, call_rows, skill_maps

agent_states = st.sampled_from([AgentState.AVAILABLE] * 3 + list(AgentState))
profiles = st.tuples(st.frozensets(st.sampled_from(QUEUES), min_size=1, max_size=2), skill_maps,
                     st.sampled_from(BANDS), st.frozensets(st.sampled_from(LANGUAGES), max_size=2))

events = st.one_of(
    st.tuples(st.just("call"), call_rows, st.integers(0, 40)),          # enters, waited 0..40 s
    st.tuples(st.just("leave"), st.integers(0, 30)),                    # the n-th waiting call leaves
    st.tuples(st.just("agent"), st.integers(0, 5), agent_states, profiles),
    st.tuples(st.just("logout"), st.integers(0, 5)),
    st.tuples(st.just("time"), st.sampled_from([0.0, 1.0, 4.9, 5.0, 7.5, 12.5, 20.0, 45.0])),
)


class Model:
    """The plain state both sides should agree on."""

    def __init__(self) -> None:
        self.calls: dict[str, CallView] = {}
        self.agents: dict[str, AgentView] = {}
        self.now = 100.0
        self.serial = 0

    def apply(self, pairs) -> None:
        for call_id, agent_id in pairs:
            del self.calls[call_id]
            self.agents[agent_id] = dataclasses.replace(self.agents[agent_id], state=AgentState.RINGING)


def agent_view(index: int, state: AgentState, profile, now: float) -> AgentView:
    queues, skills, band, languages = profile
    return AgentView(f"a{index}", queues, skills, band, languages, state, now,
                     state is not AgentState.LOGGED_OUT)


def step_event(model: Model, router: IncrementalRouter, event):
    kind = event[0]
    if kind == "time":
        model.now += event[1]
        return router.advance(model.now)
    if kind == "call":
        queue, priority, _, band, language, steps, required = event[1]
        model.serial += 1
        call = CallView(f"c{model.serial}", queue, priority, model.now - event[2],
                        {"age_band": band, "language": language}, steps, required)
        model.calls[call.id] = call
        return router.add_call(call, model.now)
    if kind == "leave":
        if not model.calls:
            return router.advance(model.now)
        call_id = sorted(model.calls)[event[1] % len(model.calls)]
        del model.calls[call_id]
        router.remove_call(call_id)
        return router.advance(model.now)
    if kind == "agent":
        agent = agent_view(event[1], event[2], event[3], model.now)
        model.agents[agent.id] = agent
        return router.set_agent(agent, model.now)
    agent_id = f"a{event[1]}"
    model.agents.pop(agent_id, None)
    return router.remove_agent(agent_id, model.now)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=40))
def test_incremental_equals_full_recomputation(sequence):
    model, router = Model(), IncrementalRouter()
    for event in sequence:
        before_calls, before_agents = dict(model.calls), dict(model.agents)
        pairs = step_event(model, router, event)
        expected = assign(list(model.calls.values()), list(model.agents.values()), model.now)
        assert sorted(pairs) == sorted(expected), (event, before_calls.keys(), before_agents.keys())
        model.apply(pairs)
        # never a double offer, and the router's view of the world is the model's
        assert len({c for c, _ in pairs}) == len(pairs) and len({a for _, a in pairs}) == len(pairs)
        assert {c.id for c in router.waiting()} == set(model.calls)
        # the next wake-up is the full recomputation's
        full = next_wakeup(list(model.calls.values()), list(model.agents.values()), model.now)
        assert router.next_wakeup() == full


def test_a_freed_agent_at_10000_waiting_calls_examines_a_bounded_number_of_calls():
    """Work is counted, not timed: a freed agent looks at group heads, not at every call."""
    router = IncrementalRouter()
    bands = BANDS[:5]
    steps = default_steps("q1")
    now = 1000.0
    for i in range(10_000):     # 5 age bands x 2 priorities -> 10 groups, all far from relaxed
        call = CallView(f"c{i}", "q1", i % 2, now - (i % 7), {"age_band": bands[i % 5]}, steps, {})
        assert router.add_call(call, now) == []
    busy = [AgentView(f"b{i}", frozenset({"q1"}), {"q1": 3}, bands[i % 5], frozenset(), AgentState.ON_CALL,
                      0.0, True) for i in range(50)]
    for agent in busy:
        router.set_agent(agent, now)
    before = router.touched
    freed = dataclasses.replace(busy[0], state=AgentState.AVAILABLE, idle_since=now)
    pairs = router.set_agent(freed, now)
    examined = router.touched - before
    assert len(pairs) == 1 and pairs[0][1] == "b0"
    assert examined <= 2 * 10, f"a freed agent examined {examined} calls (10 groups)"


def test_an_offered_call_and_agent_leave_the_router_and_can_come_back():
    router = IncrementalRouter()
    agent = AgentView("a1", frozenset({"q"}), {"q": 3}, None, frozenset(), AgentState.AVAILABLE, 0.0, True)
    call = CallView("c1", "q", 0, 0.0, {}, (), {})
    router.set_agent(agent, 1.0)
    assert router.add_call(call, 1.0) == [("c1", "a1")]
    assert "c1" not in router and router.agents["a1"].state is AgentState.RINGING
    with pytest.raises(ModelError):                   # a call cannot be waiting twice
        router.add_call(CallView("c2", "q", 0, 0.0, {}, (), {}), 1.0)
        router.add_call(CallView("c2", "q", 0, 0.0, {}, (), {}), 1.0)
    assert router.set_agent(agent, 2.0) == [("c2", "a1")]   # the ring failed: back and re-offered


def test_a_step_expiry_is_an_event_of_its_own():
    router = IncrementalRouter()
    strict = (Step((SkillAtLeast("q", 5),), 10.0),)
    router.set_agent(AgentView("a1", frozenset({"q"}), {"q": 3, "x": 1}, None, frozenset(),
                               AgentState.AVAILABLE, 0.0, True), 0.0)
    router.set_agent(AgentView("a5", frozenset({"q"}), {"q": 5}, None, frozenset(),
                               AgentState.ON_CALL, 0.0, True), 0.0)
    assert router.add_call(CallView("c1", "q", 0, 0.0, {}, strict, {}), 0.0) == []
    assert router.next_wakeup() == 10.0
    assert router.advance(9.999) == []
    assert router.advance(10.0) == [("c1", "a1")]
    assert router.next_wakeup() is None


def test_a_freed_agent_takes_the_higher_priority_call_of_the_same_ticket_before_an_older_one():
    router = IncrementalRouter()
    agent = AgentView("a1", frozenset({"q"}), {"q": 3}, None, frozenset(), AgentState.ON_CALL, 0.0, True)
    router.set_agent(agent, 0.0)
    router.add_call(CallView("old", "q", 0, 0.0, {}, (), {}), 0.0)
    router.add_call(CallView("urgent", "q", 1, 5.0, {}, (), {}), 5.0)
    freed = dataclasses.replace(agent, state=AgentState.AVAILABLE, idle_since=6.0)
    assert router.set_agent(freed, 6.0) == [("urgent", "a1")]


def _free_agent(agent_id: str, idle_since: float, skill: int, band: str = "25-34") -> AgentView:
    return AgentView(agent_id, frozenset({"q"}), {"q": skill}, band, frozenset({"en"}),
                     AgentState.AVAILABLE, idle_since, True)


def test_a_later_idle_agent_matching_an_earlier_possible_step_still_wins():
    """The walk over free agents (longest idle first) stops early only once the best matched
    the earliest step anyone can meet (D36): here step 0 is impossible (no 55+ agent), the
    call waited into step 2, the longest idle agent meets only step 2, a later one meets
    step 1 and must be chosen."""
    steps = (Step((AttributeEquals("age_band"),), 20.0), Step((SkillAtLeast("q", 5),), 20.0),
             Step((SkillAtLeast("q", 1),), 30.0))
    agents = [_free_agent("long-idle", 1.0, 1), _free_agent("expert", 2.0, 5)]
    call = CallView("c1", "q", 0, 25.0, {"age_band": "55+"}, steps)
    router = IncrementalRouter()
    for agent in agents:
        router.set_agent(agent, 50.0)
    assert router.add_call(call, 50.0) == [("c1", "expert")] == assign([call], agents, 50.0)


def test_a_caller_no_agent_can_match_first_walks_one_free_agent(monkeypatch):
    """A caller without an age band (an unknown number) under the default steps: the first two
    steps are impossible, every agent matches the third, so the longest idle agent is the
    answer and the other nine are not looked at (they were: 10 checks per queue entry)."""
    import acd.policy.incremental as incremental
    checks: list[str] = []
    real = incremental.eligible_match

    def counted(call, agent, active, bands, first=0):
        checks.append(agent.id)
        return real(call, agent, active, bands, first)
    monkeypatch.setattr(incremental, "eligible_match", counted)
    agents = [_free_agent(f"a{i}", float(i), 3, ("<25", "25-34", "35-44")[i % 3]) for i in range(10)]
    router = IncrementalRouter()
    for agent in agents:
        router.set_agent(agent, 50.0)
    call = CallView("c1", "q", 0, 50.0, {}, default_steps("q"))
    checks.clear()
    assert router.add_call(call, 50.0) == [("c1", "a0")] == assign([call], agents, 50.0)
    assert checks == ["a0"]



def _offers_and_steps_evaluated(monkeypatch, call: CallView) -> tuple[list, list[int], list]:
    """The router's offers for ``call`` among ten free agents of three bands, the indexes of
    the steps it evaluated (in order), and :func:`assign`'s offers."""
    import acd.policy.select as select
    evaluated: list[int] = []
    real = select.step_holds

    def counted(step, attributes, agent, bands):
        evaluated.append(call.steps.index(step))
        return real(step, attributes, agent, bands)
    agents = [_free_agent(f"a{i}", float(i), 3, ("<25", "25-34", "35-44")[i % 3]) for i in range(10)]
    router = IncrementalRouter()
    for agent in agents:
        router.set_agent(agent, 50.0)
    with monkeypatch.context() as patch:
        patch.setattr(select, "step_holds", counted)
        offers = router.add_call(call, 50.0)
    return offers, evaluated, assign([call], agents, 50.0)


def test_steps_no_agent_can_meet_are_not_evaluated(monkeypatch):
    """The unknown caller: the agent looked at is tested against the third step only (the
    plan says no logged-in agent meets the first two), with assign's answer (D38)."""
    call = CallView("c1", "q", 0, 50.0, {}, default_steps("q"))
    offers, evaluated, assigned = _offers_and_steps_evaluated(monkeypatch, call)
    assert offers == [("c1", "a0")] == assigned
    assert evaluated == [2]


def test_a_known_caller_is_tested_from_the_first_step(monkeypatch):
    """A caller with an age band some agent shares: step 0 is possible, so it is evaluated
    first, and the same-band agent wins over longer idle ones (the floor is 0)."""
    call = CallView("c1", "q", 0, 50.0, {"age_band": "35-44"}, default_steps("q"))
    offers, evaluated, assigned = _offers_and_steps_evaluated(monkeypatch, call)
    assert offers == [("c1", "a2")] == assigned
    assert evaluated[0] == 0

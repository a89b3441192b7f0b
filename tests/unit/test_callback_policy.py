"""acd.policy.callbacks: release guards (hypothesis properties) and retry rules."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.model import AgentState, AgentView, CallView, ModelError
from acd.policy import assign, call_order_key, is_eligible
from acd.policy.callbacks import (
    PendingCallback,
    RetryRules,
    after_attempt,
    callbacks_ahead,
    due_callbacks,
    expired,
    release,
)
from tests.unit.test_policy_properties import FAST, agents_st, call_rows, moments

NUMBERS = ("+441632960001", "+441632960002", "+441632960003")

callback_rows = st.tuples(call_rows, st.sampled_from(NUMBERS), st.integers(50, 400).map(float),
                          st.one_of(st.none(), st.integers(0, 200).map(float)))


def _callback(index, row) -> PendingCallback:
    (queue, priority, enqueued_at, band, language, steps, required), number, expires, not_before = row
    view = CallView(f"cb{index}", queue, priority, enqueued_at, {"age_band": band, "language": language},
                    steps, required)
    return PendingCallback(f"cb{index}", number, view, expires, not_before)


def callbacks_st(max_size=6):
    return st.lists(callback_rows, max_size=max_size).map(lambda rows: [_callback(i, r) for i, r in enumerate(rows)])


def live_st(max_size=6):
    return st.lists(call_rows, max_size=max_size).map(lambda rows: [
        CallView(f"c{i}", q, p, t, {"age_band": b, "language": lang}, s, r)
        for i, (q, p, t, b, lang, s, r) in enumerate(rows)])


dialling = st.frozensets(st.sampled_from(NUMBERS), max_size=2)


@FAST
@given(live_st(), callbacks_st(), agents_st(), moments, dialling)
def test_release_guards(live, pending, agents, now, busy_numbers):
    released = release(live, pending, agents, now, dialling_numbers=busy_numbers)
    by_id = {cb.id: cb for cb in pending}
    by_agent = {a.id: a for a in agents}
    served = _served_live(live, pending, agents, now, busy_numbers)
    numbers = [by_id[cb_id].number for cb_id, _ in released]
    # never two calls to one number, never a number already being dialled
    assert len(set(numbers)) == len(numbers) and not set(numbers) & busy_numbers
    # never an agent twice; never more callbacks than available agents
    assert len({a for _, a in released}) == len(released)
    assert len(released) <= sum(1 for a in agents if a.state is AgentState.AVAILABLE)
    for cb_id, agent_id in released:
        callback, agent = by_id[cb_id], by_agent[agent_id]
        # only due callbacks, each to an agent eligible for its (original) ticket
        assert callback.due(now)
        assert is_eligible(callback.view, agent, agents, now)
        # no live caller ahead that could take this agent is left without one
        for call in live:
            if call_order_key(call) < call_order_key(callback.view) and is_eligible(call, agent, agents, now):
                assert call.id in served


def _served_live(live, pending, agents, now, busy):
    views = [cb.view for cb in due_callbacks(pending, now, busy)]
    return {call_id for call_id, _ in assign([*live, *views], agents, now)} & {call.id for call in live}


@FAST
@given(callbacks_st(), agents_st(), moments)
def test_callbacks_with_equal_tickets_leave_in_entry_order(pending, agents, now):
    """Same queue, same ticket, distinct numbers: the released ones are the oldest due ones."""
    same = [PendingCallback(cb.id, f"+4416329610{i:02d}",
                            CallView(cb.view.id, "q1", 0, cb.view.enqueued_at), cb.expires_at, cb.not_before)
            for i, cb in enumerate(pending)]
    released = {cb_id for cb_id, _ in release([], same, agents, now)}
    due = sorted((cb for cb in same if cb.due(now)), key=lambda cb: call_order_key(cb.view))
    assert released == {cb.id for cb in due[:len(released)]}


@FAST
@given(live_st(), callbacks_st(), moments)
def test_position_counts_the_callbacks_ahead(live, pending, now):
    for call in live:
        ahead = callbacks_ahead(call, pending)
        assert ahead == len([cb for cb in pending if cb.view.queue == call.queue
                             and (-cb.view.priority, cb.view.enqueued_at, cb.view.id)
                             < (-call.priority, call.enqueued_at, call.id)])


def _agent(name, state=AgentState.AVAILABLE, idle=0.0):
    return AgentView(name, frozenset({"cards"}), {"cards": 3}, None, frozenset({"en"}), state, idle,
                     state is not AgentState.LOGGED_OUT)


def _pending(name, number, entered, *, expires=1000.0, not_before=None, priority=0):
    return PendingCallback(name, number, CallView(name, "cards", priority, entered), expires, not_before)


def test_three_pending_one_free_agent_exactly_one_dialled():
    pending = [_pending(f"cb{i}", f"+44163296000{i}", float(i)) for i in range(3)]
    agents = [_agent("1001"), _agent("1002", AgentState.ON_CALL)]
    assert release([], pending, agents, 10.0) == [("cb0", "1001")]


def test_older_live_caller_keeps_the_agent_and_a_callback_beats_a_younger_one():
    agents = [_agent("1001")]
    older = CallView("c-old", "cards", 0, 1.0)
    younger = CallView("c-young", "cards", 0, 9.0)
    callback = _pending("cb", "+441632960001", 5.0)
    assert release([older, younger], [callback], agents, 10.0) == []
    assert release([younger], [callback], agents, 10.0) == [("cb", "1001")]


def test_same_number_guard_and_not_due_do_not_hold_an_agent_back():
    agents = [_agent("1001"), _agent("1002")]
    pending = [_pending("a", "+441632960001", 1.0), _pending("b", "+441632960001", 2.0),
               _pending("c", "+441632960002", 3.0, not_before=50.0), _pending("d", "+441632960003", 4.0)]
    assert release([], pending, agents, 10.0) == [("a", "1001"), ("d", "1002")]
    assert release([], pending, agents, 10.0, dialling_numbers=frozenset({"+441632960001"})) == [("d", "1001")]


def test_expired_ones_are_not_released_and_are_listed():
    pending = [_pending("a", "+441632960001", 1.0, expires=5.0), _pending("b", "+441632960002", 2.0)]
    assert release([], pending, [_agent("1001")], 10.0) == [("b", "1001")]
    assert expired(pending, 10.0) == ["a"]


def test_a_callback_id_clashing_with_a_live_call_is_refused():
    with pytest.raises(ModelError):
        release([CallView("x", "cards", 0, 1.0)], [_pending("x", "+441632960001", 2.0)], [_agent("1")], 3.0)


RULES = RetryRules(max_attempts=3, delays={"no_answer": 60.0, "busy": 30.0, "voicemail": 120.0,
                                           "invalid_number": None}, not_counted=frozenset({"agent_no_answer"}))


def test_retry_rules():
    assert after_attempt(RULES, "no_answer", 1, 100.0, 10_000.0).retry_at == 160.0
    assert after_attempt(RULES, "voicemail", 2, 100.0, 10_000.0).retry_at == 220.0
    assert after_attempt(RULES, "busy", 3, 100.0, 10_000.0).retry_at is None
    assert after_attempt(RULES, "invalid_number", 1, 100.0, 10_000.0).retry_at is None
    assert after_attempt(RULES, "no_answer", 1, 100.0, 150.0).retry_at is None     # past expiry
    assert after_attempt(RULES, "agent_no_answer", 3, 100.0, 150.0).retry_at == 100.0


@FAST
@given(st.sampled_from(["no_answer", "busy", "voicemail", "invalid_number", "agent_no_answer", "other"]),
       st.integers(0, 6), moments, st.integers(0, 600).map(float))
def test_retries_never_exceed_the_maximum_and_never_go_back_in_time(outcome, done, now, left):
    decision = after_attempt(RULES, outcome, done, now, now + left)
    if decision.retry_at is not None:
        assert decision.retry_at >= now
        if outcome != "agent_no_answer":
            assert done < RULES.max_attempts and decision.retry_at < now + left
    assert decision.why


def test_bad_rules_are_refused():
    with pytest.raises(ModelError):
        RetryRules(max_attempts=0)
    with pytest.raises(ModelError):
        RetryRules(delays={"busy": -1.0})

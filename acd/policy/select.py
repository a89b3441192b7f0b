"""Eligibility and orderings for one call or one freed agent.

* An agent is eligible for a call at ``now`` iff it is AVAILABLE, a member of the call's
  queue, meets the call's ``required_skills`` and satisfies some step from 0 up to the
  active one. Its *matched step* is the earliest step it satisfies; in the final phase an
  agent that satisfies no step gets ``len(call.steps)``.
* Agents for a call, best first: earliest matched step, longest idle (smallest
  ``idle_since``), highest level in the queue's skill, then id.
* Calls for a freed agent, best first: highest priority, oldest ``enqueued_at``, then id.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentView, CallView
from acd.policy.conditions import meets_required, step_holds
from acd.policy.timeline import active_step

logger = logging.getLogger(__name__)

AgentKey = tuple[int, float, int, str]
CallKey = tuple[int, float, str]


def call_order_key(call: CallView) -> CallKey:
    """Sort key, best call first: highest priority, then oldest queue entry, then id."""
    return (-call.priority, call.enqueued_at, call.id)


def agent_order_key(call: CallView, agent: AgentView, matched: int) -> AgentKey:
    """Sort key, best agent first: earliest matched step, longest idle, proficiency, id."""
    return (matched, agent.idle_since, -agent.skills.get(call.queue_skill, 0), agent.id)


def matched_step(call: CallView, agent: AgentView, active: int, bands: AgeBands = DEFAULT_AGE_BANDS,
                 first: int = 0) -> int | None:
    """Earliest step <= ``active`` that ``agent`` satisfies; ``len(steps)`` in the final
    phase when it satisfies none; None if it satisfies none of the allowed steps.

    Queue membership, availability and hard minimums are not checked here.  ``first``: the
    steps before it hold for no agent that could take the call (the incremental router's
    plan), so they are not evaluated.
    """
    for index in range(first, min(active + 1, len(call.steps))):
        if step_holds(call.steps[index], call.attributes, agent, bands):
            return index
    return len(call.steps) if active >= len(call.steps) else None


def could_take(call: CallView, agent: AgentView) -> bool:
    """Available, member of the call's queue and above the call's hard minimums."""
    return agent.available and call.queue in agent.queues and meets_required(call.required_skills, agent)


def eligible_match(call: CallView, agent: AgentView, active: int, bands: AgeBands = DEFAULT_AGE_BANDS,
                   first: int = 0) -> int | None:
    """The agent's matched step if it is eligible for ``call`` with step ``active``, else None
    (``first``: see :func:`matched_step`)."""
    return matched_step(call, agent, active, bands, first) if could_take(call, agent) else None


def is_eligible(call: CallView, agent: AgentView, agents: Iterable[AgentView], now: float,
                *, bands: AgeBands = DEFAULT_AGE_BANDS) -> bool:
    """Is ``agent`` eligible for ``call`` at ``now``? ``agents``: every agent (for step skipping)."""
    active = active_step(call, agents, now, bands=bands)
    return eligible_match(call, agent, active, bands) is not None


def rank_agents(call: CallView, candidates: Iterable[AgentView], active: int,
                bands: AgeBands = DEFAULT_AGE_BANDS) -> list[AgentView]:
    """The eligible agents among ``candidates`` for ``call`` with step ``active``, best first."""
    keyed = []
    for agent in candidates:
        matched = eligible_match(call, agent, active, bands)
        if matched is not None:
            keyed.append((agent_order_key(call, agent, matched), agent))
    keyed.sort(key=lambda pair: pair[0])
    return [agent for _, agent in keyed]


def eligible_agents(call: CallView, agents: Sequence[AgentView], now: float,
                    *, bands: AgeBands = DEFAULT_AGE_BANDS) -> list[AgentView]:
    """Agents eligible for ``call`` at ``now``, best first."""
    return rank_agents(call, agents, active_step(call, agents, now, bands=bands), bands)


def best_agent(call: CallView, agents: Sequence[AgentView], now: float,
               *, bands: AgeBands = DEFAULT_AGE_BANDS) -> AgentView | None:
    """The agent a waiting call should be offered to at ``now``, or None."""
    ranked = eligible_agents(call, agents, now, bands=bands)
    return ranked[0] if ranked else None


def eligible_calls(agent: AgentView, calls: Iterable[CallView], agents: Sequence[AgentView], now: float,
                   *, bands: AgeBands = DEFAULT_AGE_BANDS) -> list[CallView]:
    """Calls ``agent`` is eligible for at ``now``, best first. ``agents``: every agent."""
    mine = [call for call in calls if could_take(call, agent)]
    ok = [call for call in mine if is_eligible(call, agent, agents, now, bands=bands)]
    return sorted(ok, key=call_order_key)


def best_call(agent: AgentView, calls: Iterable[CallView], agents: Sequence[AgentView], now: float,
              *, bands: AgeBands = DEFAULT_AGE_BANDS) -> CallView | None:
    """The call a freed agent should take at ``now``, or None."""
    ranked = eligible_calls(agent, calls, agents, now, bands=bands)
    return ranked[0] if ranked else None

"""Adapter from live calls and agents to the pure policy's views (no I/O, no policy)."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from acd import policy
from acd.agents import IDLE_DEVICE_STATES, LiveAgent
from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentState, AgentView, CallView
from acd.state import LiveCall

logger = logging.getLogger(__name__)

UNREACHABLE_DEVICE_STATES = frozenset({"UNAVAILABLE", "UNKNOWN", "INVALID"})


def agent_view(agent: LiveAgent) -> AgentView:
    state = agent.state
    if agent.device_state in UNREACHABLE_DEVICE_STATES:
        state = AgentState.LOGGED_OUT  # phone unregistered: cannot serve, relaxes steps
    elif state is AgentState.AVAILABLE and agent.device_state not in IDLE_DEVICE_STATES:
        state = AgentState.ON_CALL     # phone busy outside the ACD: not offered a call
    logged_in = state is not AgentState.LOGGED_OUT
    return AgentView(id=agent.extension, queues=frozenset(agent.queues), skills=dict(agent.skills),
                     age_band=agent.age_band, languages=frozenset(agent.languages), state=state,
                     idle_since=agent.idle_since, logged_in=logged_in)


def call_view(call: LiveCall) -> CallView:
    """Built once per queue entry and kept on the call (the ticket does not change while
    the call waits), so a dispatch pass over 10,000 calls rebuilds nothing."""
    if call.view is None or call.view.queue != call.queue:
        call.view = _new_call_view(call)
    return call.view


def _new_call_view(call: LiveCall) -> CallView:
    return CallView(id=call.id, queue=call.queue or "", priority=call.priority,
                    enqueued_at=call.enqueued_mono, attributes=dict(call.attributes),
                    steps=tuple(call.steps), required_skills=dict(call.skills),
                    skill=call.skill or None)


def assign(calls: Iterable[LiveCall], agents: Iterable[LiveAgent], now: float, *,
           bands: AgeBands = DEFAULT_AGE_BANDS) -> list[tuple[str, str]]:
    views = [call_view(c) for c in calls]
    if not views:
        return []
    return policy.assign(views, [agent_view(a) for a in agents], now, bands=bands)


def next_wakeup(calls: Iterable[LiveCall], agents: Iterable[LiveAgent], now: float, *,
                bands: AgeBands = DEFAULT_AGE_BANDS) -> float | None:
    views = [call_view(c) for c in calls]
    if not views:
        return None
    return policy.next_wakeup(views, [agent_view(a) for a in agents], now, bands=bands)

"""Adapter from live calls and agents to the pure policy's views (no I/O, no policy).

:class:`LiveRouting` is what the dispatcher uses: it feeds the incremental router
(:mod:`acd.policy.incremental`) only what changed since the last pass, so a pass costs what
the changes touch, not the size of the floor.  :func:`assign` / :func:`next_wakeup` are the
full recomputation (kept for comparison in the benchmark)."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from acd import policy
from acd.agents import IDLE_DEVICE_STATES, AgentRoster, LiveAgent
from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentState, AgentView, CallView
from acd.policy.incremental import IncrementalRouter
from acd.state import CallState, LiveCall

logger = logging.getLogger(__name__)

UNREACHABLE_DEVICE_STATES = frozenset({"UNAVAILABLE", "UNKNOWN", "INVALID"})


def agent_view(agent: LiveAgent) -> AgentView:
    state = agent.state
    if agent.device_state in UNREACHABLE_DEVICE_STATES:
        state = AgentState.LOGGED_OUT  # phone unregistered: cannot serve, relaxes steps
    elif state is AgentState.AVAILABLE and (agent.device_state not in IDLE_DEVICE_STATES
                                            or agent.held_by is not None):
        state = AgentState.ON_CALL     # phone busy outside the ACD, or on another node's call
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
                    enqueued_at=call.enqueued_mono, attributes=call.attributes,   # (the view
                    steps=tuple(call.steps), required_skills=call.skills,        # copies them)
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


class LiveRouting:
    """The incremental router behind the dispatcher.

    The dispatcher reports calls whose QUEUED-ness, queue or ticket changed
    (:meth:`call_changed`); agents report themselves through the roster's change log.
    :meth:`offers` applies those changes (calls that left, then agents, then calls that
    entered, then the clock) and returns the offers the policy makes.  An offered call
    leaves the router and its agent is held as ringing there: when the dispatcher cannot
    make the offer it calls :meth:`handed_back`, and the next pass looks at both again.
    """

    def __init__(self, roster: AgentRoster, *, bands: AgeBands = DEFAULT_AGE_BANDS) -> None:
        self.roster = roster
        self.router = IncrementalRouter(bands=bands)
        self._dirty_calls: set[str] = set()
        self._entered: dict[str, CallView] = {}     # call id -> the view the router holds
        self._agent_views: dict[str, AgentView] = {}
        self._virtual: dict[str, CallView] = {}      # due callbacks: view id -> the view held

    def call_changed(self, call_id: str) -> None:
        self._dirty_calls.add(call_id)

    def handed_back(self, call_id: str, extension: str) -> None:
        """An offer the router made was not made: its call and agent are looked at again."""
        self._entered.pop(call_id, None)
        self._agent_views.pop(extension, None)
        self._dirty_calls.add(call_id)
        self.roster.touch(extension)

    def next_wakeup(self) -> float | None:
        return self.router.next_wakeup()

    def offers(self, calls: Mapping[str, LiveCall], now: float,
               virtual: Mapping[str, CallView] | None = None) -> list[tuple[str, str]]:
        """``virtual``: waiting entries without a live call (due callbacks), by view id; the
        set given replaces the previous one."""
        dirty, self._dirty_calls = self._dirty_calls, set()
        entering = [calls[i] for i in dirty if i in calls and calls[i].state is CallState.QUEUED]
        for call_id in dirty.difference(c.id for c in entering):
            self._leave(call_id)
        pairs = self._sync_agents(now)
        for call in entering:
            pairs += self._enter(call, now)
        pairs += self._sync_virtual(virtual or {}, now)
        pairs += self.router.advance(now)
        for call_id, extension in pairs:        # the router now holds them as offered
            self._entered.pop(call_id, None)
            self._virtual.pop(call_id, None)
            self._agent_views.pop(extension, None)
        return pairs

    def _sync_virtual(self, virtual: Mapping[str, CallView], now: float) -> list[tuple[str, str]]:
        """O(pending callbacks): gone or changed entries leave, new ones enter."""
        for view_id in [v for v, view in self._virtual.items() if virtual.get(v) != view]:
            del self._virtual[view_id]
            self.router.remove_call(view_id)
        pairs: list[tuple[str, str]] = []
        for view_id, view in virtual.items():
            if view_id not in self._virtual:
                self._virtual[view_id] = view
                pairs += self.router.add_call(view, now)
        return pairs

    def _leave(self, call_id: str) -> None:
        self._entered.pop(call_id, None)
        self.router.remove_call(call_id)

    def _enter(self, call: LiveCall, now: float) -> list[tuple[str, str]]:
        view = call_view(call)
        if self._entered.get(call.id) is view and call.id in self.router:
            return []
        self.router.remove_call(call.id)
        self._entered[call.id] = view
        return self.router.add_call(view, now)

    def _sync_agents(self, now: float) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for extension in self.roster.take_changed():
            agent = self.roster.get(extension)
            if agent is None:
                self._agent_views.pop(extension, None)
                pairs += self.router.remove_agent(extension, now)
                continue
            view = agent_view(agent)
            if self._agent_views.get(extension) != view:
                self._agent_views[extension] = view
                pairs += self.router.set_agent(view, now)
        return pairs
